"""Inspections of a run are written once: `run` (the batch run that wrote it: a `detect` invocation, a Ray
output folder) and `run_key` (unique: the hash of the run, the image's path and hash and the model version),
so a rerun that sends a record again (a driver that died between a batch's records and its Parquet file)
leaves the one already kept.

Revision ID: 0002
Revises: 0001
Create Date: 2025-02-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("inspections") as batch:
        batch.add_column(sa.Column("run", sa.String(64), nullable=True))
        batch.add_column(sa.Column("run_key", sa.String(64), nullable=True))
        batch.create_index("uq_inspections_run_key", ["run_key"], unique=True)


def downgrade() -> None:
    with op.batch_alter_table("inspections") as batch:
        batch.drop_index("uq_inspections_run_key")
        batch.drop_column("run_key")
        batch.drop_column("run")
