"""Fitted models on disk (one model file per id in the models folder: `ID.safetensors`, or `ID.onnx` written
by `anomalens export` and run by onnxruntime), a small cache of loaded ones, and fit jobs that run one at a
time in the background with their progress. A model taught from feedback gets versions beside it
(`ID.v2.safetensors`, …: `teaching.versions`); its id serves the newest.

A fit job outlives the process that accepted it: a journal keeps it (`JobFiles`, `.jobs/<job id>.json` in the
models folder, by default; the records database with `serve --records`), and `.jobs/<job id>/` holds its
normal images (.npz, exactly as decoded) until the fit ends. A new store on the folder resumes the jobs left
queued or running, or reports them failed when their images are gone."""

from __future__ import annotations

import builtins
import re
import shutil
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path

import numpy as np

from ..calibration import Calibration
from ..deploy import OnnxInspector, OnnxModelError
from ..inspector import Inspector
from ..lineage import Step, lineage_of, version_of
from ..model_file import ModelFileError, read_header
from ..predictor import Predictor, load_predictor
from ..preprocessing import Decoded
from ..teaching import Correction, Taught, save_version, teach, versions
from ..teaching.versions import NUMBERED, glob_escaped
from .jobs import FitJob, JobFiles, JobJournal, keep_image, restored_image

MODEL_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")  # matched whole (fullmatch)
SUFFIX = ".safetensors"  # what fits write
SUFFIXES = (SUFFIX, ".onnx")  # what the store serves
JOBS = ".jobs"


class StoreError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class ModelStore:
    def __init__(self, folder: str | Path, cache_size: int = 4, jobs: JobJournal | None = None):
        """`jobs`: where fit jobs are kept (default: `JobFiles` in the folder's `.jobs`)."""
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._cache: OrderedDict[str, tuple[Path, Predictor]] = OrderedDict()  # id → (its newest file, model)
        self._cache_size = cache_size
        self._lock = threading.Lock()
        self._teaching = threading.Lock()  # one lesson at a time: versions are numbered in turn
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
        """The one file of a stored model, its newest version where it was taught; an unknown id is a 404, an
        id with two files a 409."""
        files = self._files(model_id)
        if not files:
            raise StoreError(404, f"unknown model {model_id!r}")
        if len(files) > 1:
            names = " and ".join(file.name for file in files)
            raise StoreError(409, f"model id {model_id!r} names two files, {names}: keep one")
        return _newest(files[0])

    def ids(self) -> list[str]:
        """The stored models' ids (file names only: no model file is read); a taught version is its model's."""
        stems = {p.name[: -len(suffix)] for suffix in SUFFIXES for p in self.folder.glob(f"*{suffix}")}
        versioned = {i for i in stems if (numbered := NUMBERED.match(i)) and numbered["stem"] in stems}
        return sorted(i for i in stems - versioned if MODEL_ID.fullmatch(i))

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
                expert, calibration, config = model.expert_name, model.calibration, model.config
                lineage: tuple[Step, ...] = ()  # an exported model is not taught
            else:
                header = read_header(path)
                expert, calibration = header["expert"]["kind"], Calibration(**header["calibration"])
                config, lineage = header["config"], lineage_of(header.get("lineage"))
        except (ModelFileError, OnnxModelError, KeyError, ValueError) as error:
            return {"id": model_id, "ok": False, "error": str(error)}
        return {
            "id": model_id,
            "ok": True,
            "engine": "onnx" if path.suffix == ".onnx" else "torch",
            "expert": expert,
            "n_normal": calibration.n_normal,
            "backbone": config["backbone"],
            "scale": f"{config['scale']} at {config['image_size']} px",
            "calibration": calibration.words(),
            "version": version_of(lineage) if path.suffix == SUFFIX else None,
            "lineage": [step.summary() for step in lineage],  # what each taught version learned, oldest first
            "file": path.name,
            "bytes": path.stat().st_size,
            "created": path.stat().st_mtime,
        }

    def get(self, model_id: str) -> Predictor:
        path = self._file(model_id)
        with self._lock:
            cached = self._cache.get(model_id)
            if cached is not None and cached[0] == path:
                self._cache.move_to_end(model_id)
                return cached[1]
        try:
            inspector = load_predictor(path)
        except (ModelFileError, OnnxModelError, FileNotFoundError, ValueError) as error:
            raise StoreError(422, f"model {model_id!r} cannot be loaded: {error}") from None
        self._cached(model_id, path, inspector)
        return inspector

    def _cached(self, model_id: str, path: Path, inspector: Predictor) -> None:
        with self._lock:
            self._cache[model_id] = (path, inspector)
            self._cache.move_to_end(model_id)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)

    def teach(
        self, model_id: str, corrections: Sequence[Correction], passed: Sequence[np.ndarray] = ()
    ) -> tuple[Taught, Path]:
        """The stored model's next version, taught by `corrections` and saved beside it (its id serves it from
        now on): what teaching did, and the file written. The decision is calibrated again on the evidence the
        model kept (milliseconds), as for a stream of corrections, and on `passed`, parts it passed and no one
        corrected, scored by the taught model."""
        with self._teaching:
            path = self._file(model_id)
            if path.suffix != SUFFIX:
                raise StoreError(409, f"model {model_id!r} is an exported ONNX file: teach its .safetensors model")
            model = self.get(model_id)
            assert isinstance(model, Inspector)  # a .safetensors file loads as one
            taught = teach(model, corrections, refresh=False, passed=passed)
            saved = save_version(taught, path)
        self._cached(model_id, saved, taught.inspector)  # saved: its results name that file and its hash
        return taught, saved

    def delete(self, model_id: str) -> None:
        """The model and every version taught from it."""
        files = self._files(model_id)
        if not files:
            raise StoreError(404, f"unknown model {model_id!r}")
        with self._lock:
            self._cache.pop(model_id, None)
        for file in files + [v for v in versions(files[0]).values() if v not in files]:
            file.unlink(missing_ok=True)

    # ---- fit jobs ------------------------------------------------------------------------------
    def start_fit(
        self, model_id: str | None, images: Sequence[np.ndarray | Decoded], skipped: builtins.list[str]
    ) -> FitJob:
        """Accepts a fit: its images and record are on disk before this returns, so a restart loses nothing."""
        model_id = model_id or f"model-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
        if NUMBERED.match(model_id):
            raise StoreError(400, f"model id {model_id!r} ends like a taught version's name (.v2): choose another")
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
                keep_image(self._images(job) / f"{i:05d}.npz", image)
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
            images = [restored_image(p) for p in sorted(self._images(job).glob("*.npz"))]
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


def _newest(path: Path) -> Path:
    """The newest version of the model at `path` (itself where it was never taught: no header is read)."""
    folder, stem, suffix = path.parent, path.stem, path.suffix
    if suffix != SUFFIX or not any(folder.glob(f"{glob_escaped(stem)}.v*{suffix}")):
        return path
    found = versions(path)
    return found[max(found)] if found else path
