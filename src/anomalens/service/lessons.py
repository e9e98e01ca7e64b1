"""Feedback that teaches (issue 32): an operator's word on an inspection made with a stored model — from the
API, the page or the chat — becomes a correction of that model, taught at once as its next version (the
store's id serves it from then on), and the image is decided again by it. What was taught is kept: the image
as the service held it (`<models>/<model id>.taught/<inspection id>.png`), the correction in the model's log
and lineage. A box places the defect; a mask path is kept on record but never read here (it names a file on
the operator's side: `anomalens teach --from-records` reads it where it lies). Feedback that cannot teach (no stored model, the image no longer held, a note
only) is kept all the same, and the answer says why nothing was taught."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from PIL import Image

from ..teaching import Correction, TeachingError
from ..teaching.corrections import feedback_verdict
from ..teaching.versions import NUMBERED
from .store import ModelStore, StoreError

TAUGHT_SUFFIX = ".taught"  # the folder beside a model that keeps the images feedback taught it


@dataclass
class Lesson:
    """What a piece of feedback did to the model: `taught` (the version it made) and `reinspected` (the image
    decided again by that version), or `not_taught`, why not."""

    taught: dict | None = None
    reinspected: dict | None = None
    not_taught: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    def words(self) -> str:
        """One or two sentences for the person who gave the feedback."""
        if self.taught is None:
            return f"Kept on record; the model was not taught: {self.not_taught}."
        again = self.reinspected or {}
        said = f"Taught: model {self.taught['model_id']} is now version {self.taught['version']}"
        verdict = "anomalous" if again.get("anomalous") else "normal"
        decided = f"; this image is now decided {verdict} (probability of a defect {again.get('probability', 0):.2f})."
        return said + decided + "".join(f" Check: {flag}" for flag in self.taught["flags"])


def learn(
    store: ModelStore,
    inspection_id: str,
    record: dict,
    feedback: dict,
    picture: Image.Image | None,
    passed: Sequence[Image.Image] = (),
) -> Lesson:
    """Teaches the stored model that made the inspection `record` (as the records keep it) what `feedback`
    (as kept) says about it; `picture`: the image as the service still holds it (None: no longer held);
    `passed`: those it holds of the parts the model passed and no one corrected (its decision's normal side)."""
    model_id = _stored_model(store, record.get("model_id"))
    verdict = feedback_verdict(feedback)
    if model_id is None:
        return Lesson(not_taught=f"the inspection was made with {record.get('model_id') or 'no model'}, not a "
                      "model this service stores: only a stored model is taught")  # fmt: skip
    if verdict is None:
        return Lesson(not_taught="the feedback gives no verdict, defect type or place: kept, nothing to teach")
    if picture is None:
        return Lesson(not_taught="the service no longer holds this image (it keeps recent inspections in memory, "
                      "none across a restart): teach with `anomalens teach MODEL --normal/--defect FILE`")  # fmt: skip
    try:
        correction = _correction(store, model_id, inspection_id, record, feedback, verdict, picture)
        taught, saved = store.teach(model_id, [correction], [np.asarray(p.convert("RGB")) for p in passed])
    except (TeachingError, StoreError, ValueError) as error:
        return Lesson(not_taught=f"not taught: {error}")
    after = taught.inspector.calibration
    assert after is not None  # a taught model is calibrated
    again = taught.inspector.predict([np.asarray(picture.convert("RGB"))])[0]
    return Lesson(
        taught={
            "model_id": model_id,
            "version": taught.step.version,
            "file": saved.name,
            "summary": taught.step.summary(),
            "flags": taught.flags,
            "image_threshold": after.image_threshold,
            "rule": after.rule,
        },  # fmt: skip
        reinspected={
            "anomalous": again.anomalous,
            "score": again.score,
            "probability": again.probability,
            "decision": again.decision.to_dict() if again.decision else None,  # the page's score among the normal
        },
    )


def _stored_model(store: ModelStore, model_id: str | None) -> str | None:
    """The stored model's id an inspection names (a taught version, "line.v3", is its model's: "line")."""
    if not model_id:
        return None
    numbered = NUMBERED.match(model_id)
    family = numbered["stem"] if numbered else model_id
    return family if family in store.ids() else None


def _correction(
    store: ModelStore,
    model_id: str,
    inspection_id: str,
    record: dict,
    feedback: dict,
    verdict: str,
    picture: Image.Image,
) -> Correction:
    """The correction, on the image kept beside the model; a box given on the image as inspected is brought to
    the size the service holds it at."""
    folder = store.folder / f"{model_id}{TAUGHT_SUFFIX}"
    folder.mkdir(exist_ok=True)
    image = folder / f"{inspection_id}.png"
    if not image.exists():  # taught before: the same image, kept once
        picture.convert("RGB").save(image)
    width, height = (record.get("result") or {}).get("image_size") or picture.size
    scale = (picture.width / width, picture.height / height)
    box = _scaled(feedback.get("box"), scale, picture.size) if verdict == "defective" else None
    kind = feedback.get("defect_type") if verdict == "defective" else None
    named = f"feedback-{feedback['id']}" if feedback.get("id") is not None else None  # as --from-records names it
    return Correction(str(image), verdict, kind, box, None, inspection_id, named)


def _scaled(box, scale: tuple[float, float], size: tuple[int, int]) -> tuple[int, int, int, int] | None:
    """A box in the image's pixels as one in the held picture's (at least a pixel a side, within it)."""
    if not box:
        return None
    x0, y0 = (min(int(v * s), n - 1) for v, s, n in zip(box[:2], scale, size))
    x1, y1 = (max(min(round(v * s), n), c + 1) for v, s, n, c in zip(box[2:], scale, size, (x0, y0)))
    return x0, y0, x1, y1
