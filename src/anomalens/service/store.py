"""Fitted models on disk (one model file per id in the models folder: `ID.safetensors`, or `ID.onnx` written
by `anomalens export` and run by onnxruntime), a small cache of loaded ones, and fit jobs that run one at a
time in the background with their progress.

A fit job outlives the process that accepted it: a journal keeps it (`JobFiles`, `.jobs/<job id>.json` in the
models folder, by default; the records database with `serve --records`), and `.jobs/<job id>/` holds its
normal images (.npz, exactly as decoded) until the fit ends. A new store on the folder resumes the jobs left
queued or running, or reports them failed when their images are gone."""

from __future__ import annotations

import builtins
import json
import re
import shutil
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from ..deploy import OnnxInspector, OnnxModelError
from ..inspector import Inspector
from ..model_file import ModelFileError, read_header
from ..predictor import Predictor, load_predictor
from ..preprocessing import Decoded

MODEL_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")  # matched whole (fullmatch)
SUFFIX = ".safetensors"  # what fits write
SUFFIXES = (SUFFIX, ".onnx")  # what the store serves
JOBS = ".jobs"


class StoreError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


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


class ModelStore:
    def __init__(self, folder: str | Path, cache_size: int = 4, jobs: JobJournal | None = None):
        """`jobs`: where fit jobs are kept (default: `JobFiles` in the folder's `.jobs`)."""
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._cache: OrderedDict[str, Predictor] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()
        self._jobs: dict[str, FitJob] = {}
        self._fitting = ThreadPoolExecutor(max_workers=1, thread_name_prefix="anomalens-fit")
        self._jobs_folder = self.folder / JOBS
        self._jobs_folder.mkdir(exist_ok=True)
        self._journal = jobs if jobs is not None else JobFiles(self._jobs_folder)
        self._recover_jobs()

    def path(self, model_id: str) -> Path:
        """Where a fit writes the model (the id checked first)."""
        if not MODEL_ID.fullmatch(model_id or ""):
            raise StoreError(400, f"invalid model id {model_id!r}: use letters, digits, '.', '_' or '-' (at most 64)")
        return self.folder / f"{model_id}{SUFFIX}"

    def _files(self, model_id: str) -> builtins.list[Path]:
        """The model's files on disk, of either suffix."""
        fitted = self.path(model_id)
        return [file for suffix in SUFFIXES if (file := fitted.with_suffix(suffix)).is_file()]

    def _file(self, model_id: str) -> Path:
        """The one file of a stored model; an unknown id is a 404, an id with two files a 409."""
        files = self._files(model_id)
        if not files:
            raise StoreError(404, f"unknown model {model_id!r}")
        if len(files) > 1:
            names = " and ".join(file.name for file in files)
            raise StoreError(409, f"model id {model_id!r} names two files, {names}: keep one")
        return files[0]

    def ids(self) -> list[str]:
        """The stored models' ids (file names only: no model file is read)."""
        stems = {p.name[: -len(suffix)] for suffix in SUFFIXES for p in self.folder.glob(f"*{suffix}")}
        return sorted(i for i in stems if MODEL_ID.fullmatch(i))

    def list(self) -> list[dict]:
        return [self.describe(model_id) for model_id in self.ids()]

    def describe(self, model_id: str) -> dict:
        try:
            path = self._file(model_id)
        except StoreError as error:
            if error.status != 409:
                raise
            return {"id": model_id, "ok": False, "error": str(error)}
        try:
            if path.suffix == ".onnx":
                model = OnnxInspector(path)
                expert, n_normal, backbone = model.expert_name, model.calibration.n_normal, model.config["backbone"]
            else:
                header = read_header(path)
                expert, n_normal = header["expert"]["kind"], header["calibration"]["n_normal"]
                backbone = header["config"]["backbone"]
        except (ModelFileError, OnnxModelError, KeyError) as error:
            return {"id": model_id, "ok": False, "error": str(error)}
        return {
            "id": model_id,
            "ok": True,
            "engine": "onnx" if path.suffix == ".onnx" else "torch",
            "expert": expert,
            "n_normal": n_normal,
            "backbone": backbone,
            "bytes": path.stat().st_size,
            "created": path.stat().st_mtime,
        }

    def get(self, model_id: str) -> Predictor:
        with self._lock:
            if model_id in self._cache:
                self._cache.move_to_end(model_id)
                return self._cache[model_id]
        path = self._file(model_id)
        try:
            inspector = load_predictor(path)
        except (ModelFileError, OnnxModelError, FileNotFoundError, ValueError) as error:
            raise StoreError(422, f"model {model_id!r} cannot be loaded: {error}") from None
        with self._lock:
            self._cache[model_id] = inspector
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return inspector

    def delete(self, model_id: str) -> None:
        files = self._files(model_id)
        if not files:
            raise StoreError(404, f"unknown model {model_id!r}")
        with self._lock:
            self._cache.pop(model_id, None)
        for file in files:
            file.unlink()

    # ---- fit jobs ------------------------------------------------------------------------------
    def start_fit(
        self, model_id: str | None, images: Sequence[np.ndarray | Decoded], skipped: builtins.list[str]
    ) -> FitJob:
        """Accepts a fit: its images and record are on disk before this returns, so a restart loses nothing."""
        model_id = model_id or f"model-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
        stored = self._files(model_id)
        with self._lock:
            busy = any(j.model_id == model_id and j.status in ("queued", "running") for j in self._jobs.values())
            if stored or busy:
                raise StoreError(409, f"model {model_id!r} already exists; delete it first or choose another id")
            job = FitJob(uuid.uuid4().hex[:12], model_id, total=len(images), skipped=skipped)
            self._jobs[job.id] = job
        try:
            self._images(job).mkdir()
            for i, image in enumerate(images):
                _keep(self._images(job) / f"{i:05d}.npz", image)
            self._record(job)
        except OSError as error:
            with self._lock:
                del self._jobs[job.id]
            shutil.rmtree(self._images(job), ignore_errors=True)
            raise StoreError(507, f"cannot keep the fit's images in {self._jobs_folder}: {error}") from None
        self._fitting.submit(self._fit, job)
        return job

    def job(self, job_id: str) -> FitJob:
        try:
            return self._jobs[job_id]
        except KeyError:
            raise StoreError(404, f"unknown job {job_id!r}") from None

    def _fit(self, job: FitJob) -> None:
        job.status = "running"
        self._record(job)

        def advance(n: int) -> None:
            job.done += n

        try:
            images = [_restore(p) for p in sorted(self._images(job).glob("*.npz"))]
            inspector = Inspector().fit(images, progress=advance)
            inspector.save(self.path(job.model_id))
            job.status = "done"
        except Exception as error:  # noqa: BLE001 - a failed job reports why; the server goes on
            job.status, job.error = "failed", f"{type(error).__name__}: {error}"
        self._record(job)
        shutil.rmtree(self._images(job), ignore_errors=True)

    def _images(self, job: FitJob) -> Path:
        return self._jobs_folder / job.id

    def _record(self, job: FitJob) -> None:
        self._journal.save(asdict(job))

    def _recover_jobs(self) -> None:
        """Jobs a previous process accepted: finished ones are answered again, unfinished ones resumed."""
        for saved in self._journal.load():
            job = FitJob(**saved)
            self._jobs[job.id] = job
            if job.status not in ("queued", "running"):
                continue
            if self.path(job.model_id).is_file():  # saved just before the restart
                job.status, job.done = "done", job.total
            elif len(builtins.list(self._images(job).glob("*.npz"))) == job.total:
                job.status, job.done = "queued", 0
                self._fitting.submit(self._fit, job)
                continue
            else:
                job.status, job.error = "failed", "the service restarted during the fit and its images are gone"
            self._record(job)
            shutil.rmtree(self._images(job), ignore_errors=True)
        for folder in self._jobs_folder.iterdir():  # images whose job was never accepted (no record)
            if folder.is_dir() and folder.name not in self._jobs:
                shutil.rmtree(folder, ignore_errors=True)


def _keep(file: Path, image: np.ndarray | Decoded) -> None:
    """One normal image on disk, exactly as it was decoded (and, for an upload, its name and size)."""
    if isinstance(image, Decoded):
        np.savez(file, image=image.image, size=np.asarray(image.size), source=np.asarray(image.source))
    else:
        np.savez(file, image=image)


def _restore(file: Path) -> np.ndarray | Decoded:
    with np.load(file, allow_pickle=False) as kept:
        if "source" not in kept:
            return kept["image"]
        width, height = kept["size"].tolist()
        return Decoded(str(kept["source"]), kept["image"], (width, height))
