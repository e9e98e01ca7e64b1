"""Fit jobs as the model store keeps them across restarts: a job's record (`FitJob`), where records are kept
(`JobJournal`: JSON files by default, `JobFiles`; the records database with `serve --records`), and a job's
normal images on disk exactly as decoded until its fit ends."""

from __future__ import annotations

import builtins
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from ..preprocessing import Decoded


@dataclass
class FitJob:
    id: str
    model_id: str
    total: int
    done: int = 0
    status: str = "queued"  # queued → running → done | failed
    error: str | None = None
    skipped: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.time)

    def to_dict(self) -> dict:
        return {
            "job_id": self.id,
            "model_id": self.model_id,
            "status": self.status,
            "done": self.done,
            "total": self.total,
            "error": self.error,
            "skipped": self.skipped,
        }


class JobJournal(Protocol):
    """Where fit jobs are kept across restarts: each job saved whole as it changes (`FitJob` as a dict of its
    fields), all of them loaded when a store starts."""

    def save(self, job: dict) -> None: ...

    def load(self) -> builtins.list[dict]: ...


class JobFiles:
    """Fit jobs as JSON files in a folder, `<job id>.json`, each written whole (a reader never sees half)."""

    def __init__(self, folder: Path):
        self.folder = folder

    def save(self, job: dict) -> None:
        file = self.folder / f"{job['id']}.json"
        file.with_suffix(".partial").write_text(json.dumps(job))
        file.with_suffix(".partial").replace(file)

    def load(self) -> builtins.list[dict]:
        """The jobs, an unreadable file a failed job that says why."""
        jobs = []
        for file in sorted(self.folder.glob("*.json")):
            try:
                job = FitJob(**json.loads(file.read_text()))
            except (OSError, ValueError, TypeError) as error:
                job = FitJob(file.stem, "", 0, status="failed", error=f"the job's record is unreadable: {error}")
            jobs.append(asdict(job))
        return jobs


def keep_image(file: Path, image: np.ndarray | Decoded) -> None:
    """One normal image on disk, exactly as it was decoded (and, for an upload, its name and size)."""
    if isinstance(image, Decoded):
        np.savez(file, image=image.image, size=np.asarray(image.size), source=np.asarray(image.source))
    else:
        np.savez(file, image=image)


def restored_image(file: Path) -> np.ndarray | Decoded:
    with np.load(file, allow_pickle=False) as kept:
        if "source" not in kept:
            return kept["image"]
        width, height = kept["size"].tolist()
        return Decoded(str(kept["source"]), kept["image"], (width, height))
