"""Call flows: one module per AGI route, and the runner that ends every call defined."""
