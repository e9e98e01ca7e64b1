"""A taught model's history, kept in its file: every teaching step that made it, oldest first — which version it
came from (and that file's exact bytes), when, which images were taught with which verdict, from which
inspection and correction, and what the person was warned of. A fitted model has none: it is version 1."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel

from .fields import FieldError, validated

Version = Annotated[int, Field(ge=1)]
STRICT = ConfigDict(strict=True, allow_inf_nan=False, extra="ignore", frozen=True)


class TaughtImage(BaseModel):
    """One image taught: its name, the verdict given, the defect's type and what was known of where it lies
    (its mask, a box, or only the image), and the inspection and correction it came from, where known."""

    model_config = STRICT
    image: str
    verdict: Literal["normal", "defective"]
    type: str | None = None
    where: Literal["mask", "box", "image"] | None = None
    inspection: str | None = None
    correction: str | None = None
    confirmed: bool = False  # confirmed by the person after it was flagged


class Step(BaseModel):
    """One teaching step: the version it made, from which (`parent`, whose file's SHA-256 is `parent_sha256`),
    when (UTC, ISO 8601), what it taught, or which earlier version it `restored`."""

    model_config = STRICT
    version: Version
    parent: Version
    parent_sha256: str
    at: str
    taught: list[TaughtImage] = []
    restored: Version | None = None
    flags: list[str] = []  # what the person was warned of (a correction against strong evidence)
    # parts the line passed that the taught model scored for its decision (`teaching.teach`)
    passed: Annotated[int, Field(ge=0)] = 0

    def summary(self) -> str:
        """One line: "v3 from v2, 2024-05-01T09:30:00Z: 2 normal, 3 defective (crack 2) — 1 warning"."""
        if self.restored is not None:
            what = f"v{self.restored} restored"
        else:
            normal = sum(t.verdict == "normal" for t in self.taught)
            typed = sorted({t.type for t in self.taught if t.type})
            counts = ", ".join(f"{name} {sum(t.type == name for t in self.taught)}" for name in typed)
            what = f"{normal} normal, {len(self.taught) - normal} defective" + (f" ({counts})" if counts else "")
        warned = f" — {len(self.flags)} warning{'s' * (len(self.flags) != 1)}" if self.flags else ""
        scored = f"; {self.passed} passed parts scored" if self.passed else ""
        return f"v{self.version} from v{self.parent}, {self.at}: {what}{scored}{warned}"


class Lineage(RootModel[list[Step]]):
    model_config = ConfigDict(strict=True, frozen=True)


def lineage_of(data: object) -> tuple[Step, ...]:
    """The lineage a model file's header holds (None: a fitted model's, empty), checked field by field and in
    order: each step was taught from the version before it, into a later one (versions taught from an older one
    skip the numbers its siblings took)."""
    if data is None:
        return ()
    steps = tuple(validated(Lineage, data).root)
    for n, step in enumerate(steps):
        before = steps[n - 1].version if n else 1
        if step.parent != before or step.version <= before:
            raise FieldError(f"{n}.version", f"v{step.version} from v{step.parent} cannot follow v{before}")
    return steps


def version_of(lineage: tuple[Step, ...]) -> int:
    return lineage[-1].version if lineage else 1


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
