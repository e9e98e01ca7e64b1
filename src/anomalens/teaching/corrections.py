"""What a person says about an image, as teaching takes it: a `Correction` (the image, its verdict, for a defect
its type and where it lies — a mask, a box, or nothing), and the append-only JSON-lines log beside a model in
which corrections are kept where no records database is given (`CorrectionLog`: lines are only ever added)."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ..preprocessing import ImageInput

VERDICTS = ("normal", "defective")
LOG_SUFFIX = ".corrections.jsonl"


class TeachingError(ValueError):
    """Input teaching cannot use; the message names the file (or correction) at fault."""


@dataclass(frozen=True)
class Correction:
    """One image's verdict, given by a person. A defect may carry its `type`, and where it lies: a `mask`
    (an image, nonzero on the defect, the size of the image) or a `box` (x0, y0, x1, y1 in the image's pixels
    as given, x1 and y1 excluded); with neither, only that the image is defective. `inspection` is the
    inspection it corrects, `id` its own (given one by `teach` where it has none); `confirmed`: the person
    confirmed it after it was flagged against strong evidence."""

    image: ImageInput
    verdict: str
    type: str | None = None
    box: tuple[int, int, int, int] | None = None
    mask: ImageInput | None = None
    inspection: str | None = None
    id: str | None = None
    confirmed: bool = False  # the person confirmed it when it was flagged: no guard rail holds it back

    def __post_init__(self):
        if self.verdict not in VERDICTS:
            raise TeachingError(f"{self.name}: verdict must be normal or defective, not {self.verdict!r}")
        if self.verdict == "normal" and (self.type or self.box is not None or self.mask is not None):
            raise TeachingError(f"{self.name}: a normal image has no defect type, box or mask")
        if self.box is not None and self.mask is not None:
            raise TeachingError(f"{self.name}: give a box or a mask, not both")
        if self.box is not None:
            x0, y0, x1, y1 = self.box
            if not 0 <= x0 < x1 or not 0 <= y0 < y1:
                raise TeachingError(f"{self.name}: a box is x0, y0, x1, y1 with x0 < x1 and y0 < y1, not {self.box}")
        if self.type is not None and not self.type.strip():
            raise TeachingError(f"{self.name}: a defect type is a name, not {self.type!r}")

    @property
    def name(self) -> str:
        """The image's file name (an array: "array")."""
        return Path(self.image).name if isinstance(self.image, str | Path) else "array"

    @property
    def where(self) -> str | None:
        """What is known of where the defect lies: "mask", "box" or "image" (None: a normal image)."""
        if self.verdict == "normal":
            return None
        return "mask" if self.mask is not None else "box" if self.box is not None else "image"

    def identified(self) -> Correction:
        return self if self.id else replace(self, id=uuid.uuid4().hex[:12])

    def to_dict(self) -> dict:
        """JSON-ready (images and masks by path; an array is not kept)."""

        def path(item: ImageInput | None) -> str | None:
            return str(item) if isinstance(item, str | Path) else None

        box = list(self.box) if self.box is not None else None
        return {
            "id": self.id, "image": path(self.image), "verdict": self.verdict, "type": self.type,
            "box": box, "mask": path(self.mask), "inspection": self.inspection, "confirmed": self.confirmed,
        }  # fmt: skip

    @classmethod
    def from_dict(cls, data: dict, where: str = "") -> Correction:
        """A correction from JSON (`where`: what to name in an error, e.g. "corrections.jsonl line 3")."""
        at = f"{where}: " if where else ""
        if not isinstance(data, dict) or not isinstance(data.get("image"), str):
            raise TeachingError(f"{at}a correction is an object with an image path")
        box = data.get("box")
        if box is not None and (not isinstance(box, list) or len(box) != 4 or not all(type(v) is int for v in box)):
            raise TeachingError(f"{at}box must be four whole numbers [x0, y0, x1, y1], not {box!r}")
        text = {key: data.get(key) for key in ("verdict", "type", "mask", "inspection", "id")}
        for key, value in text.items():
            if value is not None and not isinstance(value, str):
                raise TeachingError(f"{at}{key} must be text, not {value!r}")
        confirmed = data.get("confirmed", False)
        if not isinstance(confirmed, bool):
            raise TeachingError(f"{at}confirmed must be true or false, not {confirmed!r}")
        try:
            return cls(data["image"], text["verdict"] or "", text["type"], tuple(box) if box else None,
                       text["mask"], text["inspection"], text["id"], confirmed)  # fmt: skip
        except TeachingError as error:
            raise TeachingError(f"{at}{error}") from None


def feedback_verdict(feedback) -> str | None:
    """The verdict an operator's feedback (as the records keep it) gives: its own, else "defective" where it
    names a defect type, a box or a mask (a place or a kind is said of a defect), else None (a note only)."""
    places = feedback.get("defect_type") or feedback.get("box") or feedback.get("mask_path")
    return feedback.get("verdict") or ("defective" if places else None)


def read_corrections(path: str | Path) -> list[Correction]:
    """Corrections from a JSON-lines file (one object a line, as `CorrectionLog` writes them); image and mask
    paths are relative to the file's folder."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise TeachingError(f"{path}: cannot be read ({error})") from None
    corrections = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as error:
            raise TeachingError(f"{path} line {number}: not JSON ({error.msg})") from None
        for key in ("image", "mask"):
            if isinstance(data, dict) and isinstance(data.get(key), str):
                data[key] = str(path.parent / data[key])
        corrections.append(Correction.from_dict(data, f"{path} line {number}"))
    return corrections


class CorrectionLog:
    """The corrections a model was taught, beside it (`<model>.corrections.jsonl`): one JSON object a line,
    with the version it made; appended to, never rewritten."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def append(self, corrections: list[Correction], version: int, at: str) -> None:
        lines = [json.dumps(c.to_dict() | {"version": version, "at": at}) + "\n" for c in corrections]
        with self.path.open("a", encoding="utf-8") as log:
            log.writelines(lines)

    def read(self) -> list[dict]:
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text(encoding="utf-8").splitlines() if line.strip()]


def mask_array(correction: Correction, shape: tuple[int, int]) -> np.ndarray:
    """The correction's mask as a bool (H, W) array of the image's `shape` (height, width)."""
    from ..data import ImageError, load_mask

    mask = correction.mask
    if isinstance(mask, np.ndarray):
        if mask.shape[:2] != shape:
            raise TeachingError(f"{correction.name}: its mask is {mask.shape[:2]}, its image {shape} (height, width)")
        return np.asarray(mask.reshape(shape[0], shape[1], -1).any(axis=2))
    try:
        return load_mask(str(mask), shape)
    except ImageError as error:
        raise TeachingError(f"{error} (the mask of {correction.name})") from None
