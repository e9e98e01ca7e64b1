"""The records' tables, as SQLAlchemy 2 ORM models. Times are UTC seconds since the epoch (a float: the same
on SQLite and PostgreSQL, and ordered); what varies in shape (regions, the whole result, the findings a chat
is rebuilt from) is JSON. The migrations (`migrations/versions`) create exactly these tables; a test compares
the two."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, Double, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class InspectionRow(Base):
    """One image's inspection: when, where, by which model (id and a hash of its file), of which image, and
    what was decided."""

    __tablename__ = "inspections"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    created: Mapped[float] = mapped_column(Double, nullable=False)
    station: Mapped[str] = mapped_column(String(200), nullable=False, default="")
    source: Mapped[str] = mapped_column(String(1000), nullable=False, default="")  # file name or path
    image_path: Mapped[str | None] = mapped_column(String(4096))
    image_sha256: Mapped[str | None] = mapped_column(String(64))
    model_id: Mapped[str | None] = mapped_column(String(200))
    model_version: Mapped[str | None] = mapped_column(String(64))  # sha256 of the model file's contents
    expert: Mapped[str] = mapped_column(String(64), nullable=False, default="")
    verdict: Mapped[str] = mapped_column(String(16), nullable=False)  # anomalous | normal | error
    score: Mapped[float | None] = mapped_column(Double)
    probability: Mapped[float | None] = mapped_column(Double)
    confidence: Mapped[float | None] = mapped_column(Double)
    location: Mapped[str] = mapped_column(String(100), nullable=False, default="")
    defect_type: Mapped[str | None] = mapped_column(String(200))
    class_name: Mapped[str] = mapped_column(String(200), nullable=False, default="")
    error: Mapped[str | None] = mapped_column(Text)
    regions: Mapped[Any] = mapped_column(JSON, nullable=False, default=list)
    result: Mapped[Any] = mapped_column(JSON, nullable=False, default=dict)  # the result as it was answered
    findings: Mapped[Any] = mapped_column(JSON, nullable=True)  # what a chat about it is rebuilt from (None: not kept)
    run: Mapped[str | None] = mapped_column(String(64))  # the batch run that wrote it (None: the service)
    run_key: Mapped[str | None] = mapped_column(String(64))  # unique: a run writes an inspection once (`run_key`)

    __table_args__ = (
        Index("ix_inspections_created", "created", "id"),
        Index("ix_inspections_model", "model_id"),
        Index("ix_inspections_verdict", "verdict"),
        Index("uq_inspections_run_key", "run_key", unique=True),
    )


class ChatTurnRow(Base):
    """A question asked about an inspection and the answer given."""

    __tablename__ = "chat_turns"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    inspection_id: Mapped[str] = mapped_column(ForeignKey("inspections.id", ondelete="CASCADE"), nullable=False)
    turn: Mapped[int] = mapped_column(Integer, nullable=False)  # 1, 2, … within the inspection
    created: Mapped[float] = mapped_column(Double, nullable=False)
    question: Mapped[str] = mapped_column(Text, nullable=False)
    answer: Mapped[str] = mapped_column(Text, nullable=False)
    backend: Mapped[str] = mapped_column(String(64), nullable=False, default="grounded")
    detail: Mapped[Any] = mapped_column(JSON, nullable=False, default=dict)  # the turn as answered (guard, …)

    __table_args__ = (UniqueConstraint("inspection_id", "turn", name="uq_chat_turns_turn"),)


class FeedbackRow(Base):
    """An operator's word on an inspection (the "Teach it" work, issue 32): the verdict they give (normal or
    defective), the defect type, where (a box, or a mask file), a note, where it was given and by whom."""

    __tablename__ = "feedback"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    inspection_id: Mapped[str] = mapped_column(ForeignKey("inspections.id", ondelete="CASCADE"), nullable=False)
    created: Mapped[float] = mapped_column(Double, nullable=False)
    author: Mapped[str] = mapped_column(String(200), nullable=False, default="")
    verdict: Mapped[str | None] = mapped_column(String(16))  # normal | defective (None: not said)
    defect_type: Mapped[str | None] = mapped_column(String(200))
    box: Mapped[Any] = mapped_column(JSON, nullable=True)  # [x0, y0, x1, y1] in the image's pixels
    mask_path: Mapped[str | None] = mapped_column(String(4096))
    note: Mapped[str] = mapped_column(Text, nullable=False, default="")
    source: Mapped[str] = mapped_column(String(16), nullable=False)  # chat | page | api | cli

    __table_args__ = (Index("ix_feedback_inspection", "inspection_id"),)


class FitJobRow(Base):
    """A fit the service accepted, as last reported, and whose it is: the station and the models folder."""

    __tablename__ = "fit_jobs"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    station: Mapped[str] = mapped_column(String(200), nullable=False, server_default="")
    models: Mapped[str] = mapped_column(String(4096), nullable=False, server_default="")  # the folder it fits into
    model_id: Mapped[str] = mapped_column(String(200), nullable=False, default="")
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    done: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    total: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    skipped: Mapped[Any] = mapped_column(JSON, nullable=False, default=list)
    started: Mapped[float] = mapped_column(Double, nullable=False)
    updated: Mapped[float] = mapped_column(Double, nullable=False)


class SeriesInspectionRow(Base):
    """A time series' inspection: the file, the verdict (as an image's), its anomalous windows and the whole
    result."""

    __tablename__ = "series_inspections"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    created: Mapped[float] = mapped_column(Double, nullable=False)
    station: Mapped[str] = mapped_column(String(200), nullable=False, default="")
    source: Mapped[str] = mapped_column(String(1000), nullable=False, default="")
    verdict: Mapped[str] = mapped_column(String(16), nullable=False)  # anomalous | normal | error
    score: Mapped[float | None] = mapped_column(Double)  # the highest anomaly score
    probability: Mapped[float | None] = mapped_column(Double)
    error: Mapped[str | None] = mapped_column(Text)
    windows: Mapped[Any] = mapped_column(JSON, nullable=False, default=list)
    result: Mapped[Any] = mapped_column(JSON, nullable=False, default=dict)

    __table_args__ = (
        Index("ix_series_inspections_created", "created", "id"),
        Index("ix_series_inspections_verdict", "verdict"),
    )
