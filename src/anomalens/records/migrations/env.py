"""Alembic's environment: the store hands over its open connection (in `config.attributes`), inside a
transaction that holds the database's write lock, so two processes opening one database migrate it once.
SQLite cannot alter most of a table in place: its migrations run in batch mode (copy and move)."""

from __future__ import annotations

from alembic import context

from anomalens.records.schema import Base

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
