"""Persistence: SQLAlchemy 2 models, the engine, and the call repository."""
