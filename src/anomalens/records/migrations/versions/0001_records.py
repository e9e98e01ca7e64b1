"""The records' first tables: inspections, chat turns, feedback, fit jobs and series inspections.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


# long: the first schema, every table and column listed as Alembic records it
def upgrade() -> None:
    op.create_table(
        "inspections",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("created", sa.Double(), nullable=False),
        sa.Column("station", sa.String(200), nullable=False),
        sa.Column("source", sa.String(1000), nullable=False),
        sa.Column("image_path", sa.String(4096), nullable=True),
        sa.Column("image_sha256", sa.String(64), nullable=True),
        sa.Column("model_id", sa.String(200), nullable=True),
        sa.Column("model_version", sa.String(64), nullable=True),
        sa.Column("expert", sa.String(64), nullable=False),
        sa.Column("verdict", sa.String(16), nullable=False),
        sa.Column("score", sa.Double(), nullable=True),
        sa.Column("probability", sa.Double(), nullable=True),
        sa.Column("confidence", sa.Double(), nullable=True),
        sa.Column("location", sa.String(100), nullable=False),
        sa.Column("defect_type", sa.String(200), nullable=True),
        sa.Column("class_name", sa.String(200), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("regions", sa.JSON(), nullable=False),
        sa.Column("result", sa.JSON(), nullable=False),
        sa.Column("findings", sa.JSON(), nullable=True),
    )
    op.create_index("ix_inspections_created", "inspections", ["created", "id"])
    op.create_index("ix_inspections_model", "inspections", ["model_id"])
    op.create_index("ix_inspections_verdict", "inspections", ["verdict"])
    op.create_table(
        "chat_turns",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("inspection_id", sa.String(64), sa.ForeignKey("inspections.id", ondelete="CASCADE"), nullable=False),
        sa.Column("turn", sa.Integer(), nullable=False),
        sa.Column("created", sa.Double(), nullable=False),
        sa.Column("question", sa.Text(), nullable=False),
        sa.Column("answer", sa.Text(), nullable=False),
        sa.Column("backend", sa.String(64), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.UniqueConstraint("inspection_id", "turn", name="uq_chat_turns_turn"),
    )
    op.create_table(
        "feedback",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("inspection_id", sa.String(64), sa.ForeignKey("inspections.id", ondelete="CASCADE"), nullable=False),
        sa.Column("created", sa.Double(), nullable=False),
        sa.Column("author", sa.String(200), nullable=False),
        sa.Column("verdict", sa.String(16), nullable=True),
        sa.Column("defect_type", sa.String(200), nullable=True),
        sa.Column("box", sa.JSON(), nullable=True),
        sa.Column("mask_ref", sa.String(4096), nullable=True),
        sa.Column("note", sa.Text(), nullable=False),
    )
    op.create_index("ix_feedback_inspection", "feedback", ["inspection_id"])
    op.create_table(
        "fit_jobs",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("model_id", sa.String(200), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("done", sa.Integer(), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("skipped", sa.JSON(), nullable=False),
        sa.Column("started", sa.Double(), nullable=False),
        sa.Column("updated", sa.Double(), nullable=False),
    )
    op.create_table(
        "series_inspections",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("created", sa.Double(), nullable=False),
        sa.Column("station", sa.String(200), nullable=False),
        sa.Column("source", sa.String(1000), nullable=False),
        sa.Column("anomalous", sa.Boolean(), nullable=True),
        sa.Column("windows", sa.JSON(), nullable=False),
        sa.Column("result", sa.JSON(), nullable=False),
    )
    op.create_index("ix_series_inspections_created", "series_inspections", ["created", "id"])


def downgrade() -> None:
    op.drop_table("series_inspections")
    op.drop_table("fit_jobs")
    op.drop_index("ix_feedback_inspection", table_name="feedback")
    op.drop_table("feedback")
    op.drop_table("chat_turns")
    op.drop_index("ix_inspections_verdict", table_name="inspections")
    op.drop_index("ix_inspections_model", table_name="inspections")
    op.drop_index("ix_inspections_created", table_name="inspections")
    op.drop_table("inspections")
