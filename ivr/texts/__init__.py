"""Built-in texts, one module per language (en)."""
