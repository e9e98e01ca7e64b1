"""Series inspections say what image inspections say: a verdict (anomalous, normal, error: the same words,
the same filter), the score and probability, and the error of a file that could not be inspected, in place
of a bare `anomalous` flag.

Revision ID: 0004
Revises: 0003
Create Date: 2025-02-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("series_inspections") as batch:
        batch.add_column(sa.Column("verdict", sa.String(16), nullable=False, server_default="error"))
        batch.add_column(sa.Column("score", sa.Double(), nullable=True))
        batch.add_column(sa.Column("probability", sa.Double(), nullable=True))
        batch.add_column(sa.Column("error", sa.Text(), nullable=True))
    op.execute(
        "UPDATE series_inspections SET verdict = "
        "CASE WHEN anomalous THEN 'anomalous' WHEN NOT anomalous THEN 'normal' ELSE 'error' END"
    )
    with op.batch_alter_table("series_inspections") as batch:
        batch.alter_column("verdict", server_default=None)
        batch.drop_column("anomalous")
        batch.create_index("ix_series_inspections_verdict", ["verdict"])


def downgrade() -> None:
    with op.batch_alter_table("series_inspections") as batch:
        batch.add_column(sa.Column("anomalous", sa.Boolean(), nullable=True))
    op.execute(
        "UPDATE series_inspections SET anomalous = "
        "CASE verdict WHEN 'anomalous' THEN TRUE WHEN 'normal' THEN FALSE ELSE NULL END"
    )
    with op.batch_alter_table("series_inspections") as batch:
        batch.drop_index("ix_series_inspections_verdict")
        for column in ("error", "probability", "score", "verdict"):
            batch.drop_column(column)
