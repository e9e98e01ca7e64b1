"""Operator feedback on a recorded inspection (the "Teach it" work, issue 32), checked before it is kept: a
verdict (normal or defective), a defect type, where the defect is (a box in the image's pixels, or a mask
file's path), a note, where it was given (chat, page, api, cli) and by whom. A value that cannot be right is
refused with a ValueError that names it; feedback on an inspection the records do not hold is
`UnknownInspection`."""

from __future__ import annotations

import numbers
import time
from collections.abc import Sequence
from typing import Any

from .schema import FeedbackRow
from .values import clean, fitting

FEEDBACK_VERDICTS = ("normal", "defective")
FEEDBACK_SOURCES = ("chat", "page", "api", "cli")
MAX_NOTE = 10_000  # characters


class UnknownInspection(LookupError):
    """Feedback on an inspection the records do not hold."""


def feedback_row(
    inspection_id: str,
    image_size: Sequence[int] | None,
    *,
    verdict: str | None = None,
    defect_type: str | None = None,
    box: Any = None,
    mask_path: str | None = None,
    note: str = "",
    source: str = "api",
    author: str = "",
) -> dict:
    """The feedback row, every value checked; `image_size` (width, height) of the inspected image, which a box
    must lie in (None: not known, e.g. an image that could not be read)."""
    if verdict is not None and verdict not in FEEDBACK_VERDICTS:
        raise ValueError(f"verdict is {' or '.join(FEEDBACK_VERDICTS)} (or none), not {_shown(verdict)}")
    if source not in FEEDBACK_SOURCES:
        raise ValueError(f"source is one of {', '.join(FEEDBACK_SOURCES)}, not {_shown(source)}")
    defect_type, mask_path = _text("defect_type", defect_type), _text("mask_path", mask_path)
    note, author = _text("note", note) or "", _text("author", author) or ""
    if mask_path is not None and clean(mask_path) != mask_path:
        raise ValueError("mask_path: holds a NUL character or a lone surrogate, which no file name does")
    if len(note) > MAX_NOTE:
        raise ValueError(f"note: {len(note)} characters, at most {MAX_NOTE}")
    if not (verdict or defect_type or box is not None or mask_path or note.strip()):
        raise ValueError("the feedback says nothing: give a verdict, a defect type, a box, a mask path or a note")
    if verdict == "normal" and (defect_type or box is not None or mask_path):
        raise ValueError("a defect type, a box or a mask marks a defect: not with the verdict normal")
    row = {
        "inspection_id": inspection_id,
        "created": time.time(),
        "verdict": verdict,
        "defect_type": defect_type,
        "box": checked_box(box, image_size),
        "mask_path": mask_path,
        "note": note,
        "source": source,
        "author": author,
    }
    return fitting({key: clean(value) for key, value in row.items()}, FeedbackRow.__table__)


def checked_box(box: Any, image_size: Sequence[int] | None) -> list[int] | None:
    """[x0, y0, x1, y1]: four whole numbers of pixels, 0 ≤ x0 < x1 and 0 ≤ y0 < y1, within the image (x1 and
    y1 exclusive: at most its width and height, where it is known)."""
    if box is None:
        return None
    whole = isinstance(box, list | tuple) and all(
        isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in box
    )
    if not whole or len(box) != 4:
        raise ValueError(f"box is [x0, y0, x1, y1], four whole numbers of pixels, not {_shown(box)}")
    x0, y0, x1, y1 = (int(v) for v in box)
    if not (0 <= x0 < x1 and 0 <= y0 < y1):
        raise ValueError(f"box {_shown([x0, y0, x1, y1])}: needs 0 ≤ x0 < x1 and 0 ≤ y0 < y1")
    if image_size and (x1 > image_size[0] or y1 > image_size[1]):
        width, height = image_size[:2]
        raise ValueError(f"box {_shown([x0, y0, x1, y1])} reaches outside the image ({width} × {height} pixels)")
    return [x0, y0, x1, y1]


def _text(name: str, value: Any) -> str | None:
    """Text as given, stripped (nothing left: None); anything but text is an error."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"{name} is text, not {_shown(value)}")
    return value.strip() or None


def _shown(value: Any) -> str:
    """A value as an error message shows it: at most 80 characters of it."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
