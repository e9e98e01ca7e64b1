"""A model's versions, side by side: the fitted `line.safetensors` is version 1, teaching writes
`line.v2.safetensors`, `line.v3.safetensors`, … (a version's number is in its lineage; the name only
follows it), never over a file that exists. Restoring an earlier version writes it again as the next one, so
the history only grows. The corrections log of the family is `line.corrections.jsonl`."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from ..inspector import Inspector
from ..lineage import Step, lineage_of, now, version_of
from ..model_file import ModelFileError, read_header
from ..result import file_version
from .corrections import LOG_SUFFIX, CorrectionLog, TeachingError

if TYPE_CHECKING:
    from . import Taught

NUMBERED = re.compile(r"^(?P<stem>.+)\.v(?P<version>[0-9]+)$")


def family(path: str | Path) -> tuple[Path, str, str]:
    """(folder, stem, suffix) the versions of this model share: "line.v3.safetensors" → (…, "line", ".safetensors")."""
    path = Path(path)
    numbered = NUMBERED.match(path.stem)
    return path.parent, numbered["stem"] if numbered else path.stem, path.suffix


def sibling(path: str | Path, version: int) -> Path:
    folder, stem, suffix = family(path)
    return folder / f"{stem}.v{version}{suffix}"


def log_path(path: str | Path) -> Path:
    folder, stem, _ = family(path)
    return folder / f"{stem}{LOG_SUFFIX}"


def versions(path: str | Path) -> dict[int, Path]:
    """The versions beside this model (its own included) by number, read from each file's lineage; a file of
    the family that is not a usable model is passed over."""
    folder, stem, suffix = family(path)
    found = {}
    for candidate in sorted(folder.glob(f"{glob_escaped(stem)}*{suffix}")):
        if family(candidate)[1] != stem:  # "line2.safetensors" is another model's
            continue
        try:
            found[version_of(lineage_of(read_header(candidate).get("lineage")))] = candidate
        except (ModelFileError, ValueError):
            continue
    return found


def glob_escaped(text: str) -> str:
    return re.sub(r"([\[\]*?])", r"[\1]", text)


def save_version(taught: Taught, parent: str | Path, out: str | Path | None = None, log: bool = True) -> Path:
    """Writes the taught model beside `parent` as the next free version (or to `out`, never over a file), and,
    with `log`, appends its corrections to the family's log. Returns the file written."""
    taken = versions(parent)
    number = max([*taken, taught.step.version - 1]) + 1
    step = taught.step.model_copy(update={"version": number})
    taught.step, taught.inspector.lineage = step, (*taught.inspector.lineage[:-1], step)
    path = taught.inspector.save(Path(out) if out is not None else sibling(parent, number))
    taught.inspector.model_file = path  # it is that file now: what it inspects is recorded as that version's
    if log:
        CorrectionLog(log_path(parent)).append(taught.corrections, number, step.at)
    return path


def restore(path: str | Path, version: int, out: str | Path | None = None, weights=None) -> Path:
    """Brings back `version` of the model at `path` as a new version (its tensors and decision, the lineage of
    `path` with a step that says so). Returns the file written."""
    taken = versions(path)
    if version not in taken:
        known = ", ".join(f"v{n}" for n in sorted(taken)) or "none"
        raise TeachingError(f"{path}: no version {version} beside it (versions found: {known})")
    lineage = lineage_of(read_header(path).get("lineage"))
    number = max(taken) + 1
    step = Step(
        version=number, parent=version_of(lineage), parent_sha256=file_version(path), at=now(), restored=version
    )
    model = Inspector.load(taken[version], weights=weights)
    model.lineage = (*lineage, step)
    return model.save(Path(out) if out is not None else sibling(path, number))
