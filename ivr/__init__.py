"""After-hours medical answering service: the controller package."""

__version__ = "0.1.0"
