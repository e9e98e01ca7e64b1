"""Alembic migrations of the records database, run by `RecordStore` when it opens one (never by hand)."""
