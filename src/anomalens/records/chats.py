"""Findings kept with a record, so that a chat about an inspection goes on after the service restarts: the
findings as JSON (every field, the calibration's numbers included) and back. Imported by the interfaces that
chat (it loads the language layer, hence torch); the store itself never needs it."""

from __future__ import annotations

import math
from dataclasses import asdict
from typing import Any

from ..language.chat import ChatSession, Turn
from ..language.corrections import ChatCorrection
from ..language.criteria import Criteria, DefectType
from ..language.findings import DefectGuess, Findings
from ..language.models import LanguageModel
from ..regions import Region
from .feedback import FEEDBACK_VERDICTS
from .values import jsonable


def findings_json(findings: Findings | None) -> dict | None:
    return None if findings is None else jsonable(asdict(findings))


def findings_from_json(data: dict) -> Findings:
    """Findings as `findings_json` kept them (a number that was not finite, kept as null, is NaN again)."""

    def number(key: str) -> float:
        value = data.get(key)
        return float(value) if value is not None else math.nan

    criteria = data.get("criteria")
    guess = data.get("defect_type")
    return Findings(
        source=data["source"],
        anomalous=bool(data["anomalous"]),
        probability=number("probability"),
        confidence=number("confidence"),
        score=number("score"),
        threshold=number("threshold"),
        scale=number("scale"),
        regions=tuple(
            Region(
                box=tuple(r["box"]),
                area_fraction=r["area_fraction"],
                peak=r["peak"] if r["peak"] is not None else math.nan,
                centroid=tuple(r["centroid"]),
                location=r["location"],
            )
            for r in data.get("regions") or []
        ),
        peak_location=data.get("peak_location") or "center",
        image_size=tuple(data["image_size"]),
        expert=data.get("expert") or "",
        n_normal=int(data.get("n_normal") or 0),
        references=tuple(data.get("references") or ()),
        nearest_reference=data.get("nearest_reference") or "",
        normal_peak=data.get("normal_peak"),
        class_name=data.get("class_name") or "",
        criteria=None
        if criteria is None
        else Criteria(
            criteria["name"],
            criteria.get("description") or "",
            tuple(DefectType(d["name"], d.get("description") or "") for d in criteria.get("defects") or []),
        ),
        defect_type=None if guess is None else DefectGuess(guess["name"], guess["similarity"], guess.get("runner_up")),
    )


def restored_session(
    record: dict[str, Any], model: LanguageModel | None = None, guard: str = "correct"
) -> ChatSession | None:
    """The chat about a recorded inspection, its turns as they were (None: no findings were kept). The turns
    are asked again of the grounded composer first, so "it" and "the other one" point where they pointed."""
    if not record.get("findings"):
        return None
    session = ChatSession(findings_from_json(record["findings"]), None, guard=guard)
    for turn in record.get("chat") or []:
        session.ask(turn["question"])
    session.turns = [
        Turn(
            str(t.get("question", "")),
            str(t.get("answer", "")),
            str(t.get("backend") or "grounded"),
            str(t.get("grounded_answer") or t.get("answer", "")),
            t.get("model_answer"),
            None,
            t.get("model_error"),
            _correction(t.get("correction")),
            t.get("taught") if isinstance(t.get("taught"), dict) else None,
        )
        for t in record.get("chat") or []
    ]
    session.model = model
    return session


def _correction(said: Any) -> ChatCorrection | None:
    """A turn's correction as `ChatCorrection.to_dict` kept it (None: it made none, or it cannot be read)."""
    if not isinstance(said, dict) or said.get("verdict") not in FEEDBACK_VERDICTS:
        return None
    cell, kind = said.get("cell"), said.get("defect_type")
    return ChatCorrection(
        said["verdict"], cell if isinstance(cell, str) else None, kind if isinstance(kind, str) else None
    )
