"""Fit jobs are kept by the service that accepted them: the station and the models folder it fits into, so
that a restarted service reads back its own jobs, and two services on one database each only theirs.

Revision ID: 0003
Revises: 0002
Create Date: 2025-02-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("fit_jobs") as batch:
        batch.add_column(sa.Column("station", sa.String(200), nullable=False, server_default=""))
        batch.add_column(sa.Column("models", sa.String(4096), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("fit_jobs") as batch:
        batch.drop_column("models")
        batch.drop_column("station")
