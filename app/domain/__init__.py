"""Business rules of the service, as plain async functions over a SQLAlchemy AsyncSession."""
