"""Alembic migrations of the controller's schema (run by Database.create: upgrade head)."""
