"""Feedback as the "Teach it" work (issue 32) fills it: where it was given (`source`: chat, page, api, cli) and
the mask as a file path (`mask_path`, was `mask_ref`).

Revision ID: 0005
Revises: 0004
Create Date: 2025-02-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("feedback") as batch:
        batch.alter_column("mask_ref", new_column_name="mask_path", existing_type=sa.String(4096))
        batch.add_column(sa.Column("source", sa.String(16), nullable=False, server_default="api"))
    with op.batch_alter_table("feedback") as batch:
        batch.alter_column("source", server_default=None, existing_type=sa.String(16), existing_nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("feedback") as batch:
        batch.drop_column("source")
        batch.alter_column("mask_path", new_column_name="mask_ref", existing_type=sa.String(4096))
