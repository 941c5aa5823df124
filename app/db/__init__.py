"""Persistence: typed SQLAlchemy models and the engine/session factory."""
