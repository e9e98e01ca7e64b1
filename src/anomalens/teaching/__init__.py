"""Teaching a fitted model from what people say about its results: `teach(model, corrections)` gives a new
model version, in memory, the model given unchanged — normal images join its memory, labelled defects train
its head and move its decision, typed defects teach it their names (`steps`). `save_version` writes it beside
its parent, never over it, with its lineage; `restore` brings an earlier version back as a new one
(`versions`). Where no records database keeps the corrections, they are appended to a JSON-lines log beside
the model (`corrections.CorrectionLog`).

    model = Inspector.load("line.safetensors")
    taught = teach(model, [Correction("false_alarm.png", "normal"),
                           Correction("missed.png", "defective", type="crack", box=(40, 10, 90, 30))])
    save_version(taught, "line.safetensors")   # line.v2.safetensors, with its lineage"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass

from ..experts import EXPERTS
from ..inspector import Inspector
from ..lineage import Step, TaughtImage, now, version_of
from ..preprocessing import ImageInput
from .corrections import Correction, CorrectionLog, TeachingError, read_corrections
from .steps import MAX_PASSED, defect_step, normal_step, passed_scores, refresh_synthetic
from .versions import log_path, restore, save_version, versions

__all__ = [
    "MAX_PASSED",
    "Correction",
    "CorrectionLog",
    "Taught",
    "TeachingError",
    "log_path",
    "read_corrections",
    "restore",
    "save_version",
    "teach",
    "versions",
]


@dataclass
class Taught:
    """A model version made by teaching: the inspector, the lineage step that made it, and the corrections
    it was taught (each with its id)."""

    inspector: Inspector
    step: Step
    corrections: list[Correction]

    @property
    def flags(self) -> list[str]:
        """What the person should be told: corrections that went against strong evidence."""
        return self.step.flags


def teach(
    model: Inspector, corrections: Sequence[Correction], *, refresh: bool = True, passed: Sequence[ImageInput] = ()
) -> Taught:
    """A new version of `model` taught by `corrections`; `model` itself is not changed. `refresh`: synthetic
    anomalies are scored again against the memory as it now is (seconds, as a fit does); without, the decision
    is calibrated again on the evidence it kept (milliseconds: for a stream of corrections). `passed`: images of
    parts the line passed and no one corrected, oldest first: the latest MAX_PASSED are scored by the taught
    model, and its decision reads them as new normal parts (`calibration.normal_evidence`)."""
    if not corrections:
        raise TeachingError("nothing to teach: no corrections given")
    if model.expert is None or model.evidence is None or model.calibration is None:
        raise TeachingError(
            "this model keeps no evidence of its decision to calibrate it again (saved by an AnomaLens before "
            "teaching, or zero-shot): fit it again to teach it"
        )
    corrections = [c.identified() for c in corrections]
    inspector = _copy(model)
    normal = [c for c in corrections if c.verdict == "normal"]
    defects = [c for c in corrections if c.verdict == "defective"]
    flags = (normal_step(inspector, normal) if normal else []) + (
        defect_step(inspector, defects, passed) if defects else []
    )
    if refresh:
        refresh_synthetic(inspector)
    assert inspector.evidence is not None  # kept by every step
    if passed:
        inspector.evidence = inspector.evidence.with_passed(passed_scores(inspector, passed))
    inspector.calibration = inspector.evidence.calibrated(inspector.config.max_false_alarms)
    parent = version_of(model.lineage)
    step = Step(
        version=parent + 1,
        parent=parent,
        parent_sha256=model.metadata.model_version or "",
        at=now(),
        taught=[_taught_image(c) for c in corrections],
        flags=flags,
        passed=inspector.evidence.passed_scores.size if passed else 0,
    )
    inspector.lineage = (*model.lineage, step)
    return Taught(inspector, step, corrections)


def _copy(model: Inspector) -> Inspector:
    """The model with an expert of its own (rebuilt from its state: teaching replaces tensors, never writes
    into them), sharing the backbone; an unsaved version of no file."""
    assert model.expert is not None
    inspector = copy.copy(model)
    config, tensors = model.expert.state()
    inspector.expert = EXPERTS[config["kind"]].from_state(config, tensors)
    inspector.model_file = None
    return inspector


def _taught_image(correction: Correction) -> TaughtImage:
    return TaughtImage(
        image=correction.name,
        verdict=correction.verdict,  # type: ignore[arg-type]
        type=correction.type,
        where=correction.where,  # type: ignore[arg-type]
        inspection=correction.inspection,
        correction=correction.id,
        confirmed=correction.confirmed,
    )
