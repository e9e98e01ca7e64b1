"""Batch inspection on Ray Data (issue 31): `inspect_dataset(source, model, out)` inspects a folder, a glob or a
list file of images on a Ray cluster (a local one by default) and writes one Parquet row per image, with
overlays beside them; `anomalens detect SOURCE --model M --ray [ADDRESS]` runs it from the command line.

Each worker is an actor of Ray Data's pool (`map_batches` with a callable class) that loads the model once,
torch or the ONNX engine (`predictor.load_predictor`), and decodes its own images from their paths (the
images are read where the workers run: a shared file system on a cluster of several machines). Each image is
decided alone, by the model only, so a row equals what `anomalens detect` says of that image.

What is done is kept: each batch the driver receives is written as its own Parquet file (written under a
temporary name, then renamed: a file is whole or absent), so a run that stops keeps what it finished and a
rerun into the same folder skips the images its Parquet files already hold. An unreadable image is a row
with its error, never a failed job; a worker that dies mid-batch is restarted and the batch retried (nothing
is written before the driver has the whole batch, so nothing is lost or written twice). The records of a
batch are written before its Parquet file, and once: a driver that dies between the two leaves records that
its rerun (the same output: the same run) does not write again. Needs the scale extra: pip install
'anomalens[scale]'."""

from __future__ import annotations

import hashlib
import json
import math
import os
import socket
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from .data.sources import fetched, is_uri, source_paths
from .result import InspectionResult
from .service import Inspection

__all__ = [
    "MISSING_EXTRA",
    "RaySummary",
    "done_sources",
    "inspect_dataset",
    "output_run",
    "record_rows",
    "row_schema",
    "source_paths",
]
MISSING_EXTRA = "batch inspection on Ray needs the scale extra: pip install 'anomalens[scale]'"
PARTS = "part-"  # Parquet files of rows: part-<hash of the batch's sources>.parquet
OVERLAYS = "overlays"  # the overlay PNGs, beside the Parquet files
RUN = "run-id"  # the output's run id: its records are written once, however often a rerun sends them
Progress = Callable[[int, int], None]  # (images done, images to do) as each batch is written


def row_schema():
    """The Parquet schema of a row: one image's inspection, what made it, when and where."""
    import pyarrow as pa

    region = pa.struct(
        [
            ("box", pa.list_(pa.int32())),  # x0, y0, x1, y1 in the image's pixels (x1, y1 exclusive)
            ("area_fraction", pa.float64()),
            ("peak", pa.float64()),
            ("centroid", pa.list_(pa.float64())),  # x, y
            ("location", pa.string()),
        ]
    )
    return pa.schema(
        [
            ("source", pa.string()),  # the image's absolute path, or its URI
            ("image_sha256", pa.string()),  # of the image's bytes, taken by the worker that read them (null: unread)
            ("width", pa.int32()),
            ("height", pa.int32()),
            ("score", pa.float64()),
            ("verdict", pa.string()),  # anomalous | normal | error
            ("anomalous", pa.bool_()),
            ("probability", pa.float64()),
            ("confidence", pa.float64()),
            ("location", pa.string()),
            ("regions", pa.list_(region)),
            ("defect_type", pa.string()),
            ("error", pa.string()),
            ("model_id", pa.string()),
            ("model_version", pa.string()),  # SHA-256 of the model file
            ("engine", pa.string()),
            ("expert", pa.string()),
            ("decision_mode", pa.string()),
            ("overlay", pa.string()),
            ("time", pa.timestamp("us", tz="UTC")),
            ("worker", pa.string()),  # host:pid of the actor that inspected it
            ("result", pa.string()),  # the result's JSON, as `detect` writes it (the records keep it)
            ("findings", pa.string()),  # JSON: what a chat about it is rebuilt from (null: unreadable)
        ]
    )


@dataclass
class RaySummary:
    """What a run did: images found, skipped (already in the output), inspected now, of those defective and
    not inspected (errors); its wall time and the Parquet files it wrote."""

    total: int = 0
    skipped: int = 0
    inspected: int = 0
    defective: int = 0
    errors: int = 0
    seconds: float = 0.0
    files: list[Path] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.inspected / self.seconds if self.seconds > 0 else 0.0


def done_sources(out: str | os.PathLike) -> set[str]:
    """The sources the Parquet files in `out` already hold (a resumed run skips them)."""
    import pyarrow.parquet as pq

    done: set[str] = set()
    for part in sorted(Path(out).glob(f"{PARTS}*.parquet")):
        done.update(pq.read_table(part, columns=["source"]).column("source").to_pylist())
    return done


class InspectWorker:
    """One actor of the pool: loads the model once, then inspects batches of image paths (decoded here) into
    rows, and draws each readable image's overlay beside the Parquet files."""

    def __init__(self, model: str, weights: str | None, overlays: str, max_pixels: int | None, class_name: str):
        from .predictor import load_predictor, model_identity
        from .service import InspectionService

        self.service = InspectionService(weights=weights)
        self.predictor = load_predictor(model, weights)
        self.metadata = self.predictor.metadata  # the model file hashed once per actor
        self.model_id, self.model_version = model_identity(self.predictor)  # what `detect --records` records
        self.overlays = Path(overlays)
        self.overlays.mkdir(parents=True, exist_ok=True)
        self.max_pixels, self.class_name = max_pixels, class_name
        self.worker = f"{socket.gethostname()}:{os.getpid()}"

    def __call__(self, batch: dict[str, np.ndarray]):
        import pyarrow as pa

        sources = [str(p) for p in batch["source"]]
        with tempfile.TemporaryDirectory(prefix="anomalens-fetched-") as folder:
            local = [self._read(source, Path(folder)) for source in sources]
            readable = [path for path, _, error in local if error is None]
            inspected = iter(
                self.service.inspect(self.predictor, readable, class_name=self.class_name, max_pixels=self.max_pixels)
            )
            rows = [
                self._row(source, _named(next(inspected), path, source), digest)
                if error is None
                else self._row(source, Inspection(InspectionResult(source=source, error=error), None), None)
                for source, (path, digest, error) in zip(sources, local)
            ]
        return pa.Table.from_pylist(rows, schema=row_schema())

    @staticmethod
    def _read(source: str, folder: Path) -> tuple[str, str | None, str | None]:
        """(local path, SHA-256 of its bytes, error): a remote image fetched into `folder`, a local one hashed
        here, where its bytes are read anyway, not again by the driver."""
        from .records import sha256_file

        try:
            if is_uri(source):
                path, digest = fetched(source, folder)
                return str(path), digest, None
            return source, sha256_file(source), None
        except (OSError, ValueError) as error:
            return source, None, f"{source}: cannot be read ({error})"

    def _row(self, path: str, inspection, digest: str | None) -> dict[str, Any]:
        overlay = None
        if inspection.ok:
            digest = hashlib.sha1(path.encode()).hexdigest()[:10]
            file = self.overlays / f"{Path(path).stem}-{digest}_overlay.png"
            try:
                inspection.overlay().save(file)
                overlay = str(file)
            except Exception as error:  # noqa: BLE001 - this image's failure alone, as `detect` reports it
                file.unlink(missing_ok=True)
                inspection = inspection.failed(error)
        result = inspection.result
        record = result.to_dict() | ({"overlay": overlay} if overlay else {})
        guess = inspection.findings.defect_type if inspection.findings else None
        width, height = result.image_size or (None, None)
        meta = self.metadata
        return {
            "source": path,
            "image_sha256": digest,
            "width": width,
            "height": height,
            "score": result.score,
            "verdict": "error" if not result.ok else "anomalous" if result.anomalous else "normal",
            "anomalous": result.anomalous,
            "probability": result.probability,
            "confidence": result.confidence,
            "location": result.location,
            "regions": [region.to_dict() for region in result.regions],
            "defect_type": guess.name if guess else None,
            "error": result.error,
            "model_id": self.model_id,
            "model_version": self.model_version,
            "engine": meta.engine,
            "expert": result.expert or meta.expert,
            "decision_mode": result.decision.mode if result.decision else None,
            "overlay": overlay,
            "time": datetime.now(UTC),
            "worker": self.worker,
            "result": json.dumps(_plain(record)),
            "findings": json.dumps(_plain(asdict(inspection.findings))) if inspection.findings else None,
        }


def _named(inspection, path: str, source: str):
    """A fetched image's inspection, its error naming the URI rather than the local copy."""
    error = inspection.result.error
    if path == source or error is None:
        return inspection
    return Inspection(replace(inspection.result, source=source, error=error.replace(path, source)), None)


def inspect_dataset(
    source: str | os.PathLike | Sequence[str | os.PathLike],
    model: str | os.PathLike,
    out: str | os.PathLike,
    *,
    address: str | None = None,
    records: Any = None,
    batch_size: int = 16,
    num_workers: int | None = None,
    weights: str | os.PathLike | None = None,
    max_pixels: int | None = 40_000_000,
    class_name: str = "",
    progress: Progress | None = None,
) -> RaySummary:
    """Inspect every image of `source` (`source_paths`) with the model file `model` (.safetensors: torch;
    .onnx: an exported model) on Ray Data, into `out`: Parquet files of rows (`row_schema`) and overlays in
    `out/overlays`. Images whose rows `out` already holds are skipped (resume).

    `address`: a Ray cluster's address ("auto": the one this machine belongs to); None or "local": a local
    cluster started here (and stopped at the end). If Ray is already initialised, that cluster is used.
    `records`: a `RecordStore` or its URL: each row goes there too. `batch_size` images per task;
    `num_workers` actors (default: one per CPU of the cluster). `progress(done, total)` after each batch."""
    import ray

    started = time.perf_counter()
    out = Path(out)
    paths = source_paths(source)
    done = done_sources(out) if out.is_dir() else set()
    todo = [str(p) for p in paths if str(p) not in done]
    summary = RaySummary(total=len(paths), skipped=len(paths) - len(todo))
    if not todo:
        summary.seconds = time.perf_counter() - started
        return summary
    out.mkdir(parents=True, exist_ok=True)
    store = _store(records)
    run = output_run(out)
    ours = _connect(address)
    try:
        from ray.data import DataContext

        DataContext.get_current().enable_progress_bars = False
        workers = num_workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
        blocks = max(1, -(-len(todo) // batch_size))
        dataset = ray.data.from_items([{"source": s} for s in todo], override_num_blocks=blocks).map_batches(
            InspectWorker,
            fn_constructor_kwargs={
                "model": str(Path(model).absolute()),
                "weights": str(weights) if weights else None,
                "overlays": str((out / OVERLAYS).absolute()),
                "max_pixels": max_pixels,
                "class_name": class_name,
            },
            batch_size=batch_size,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=workers),  # Ray Data restarts a dead actor, retries its batch
            num_cpus=1,
        )
        batch: Any
        for batch in dataset.iter_batches(batch_size=None, batch_format="pyarrow"):
            table = batch.select(row_schema().names).cast(row_schema())
            if store is not None:
                record_rows(store, table, class_name, run)
            summary.files.append(_write_part(out, table))
            verdicts = table.column("verdict").to_pylist()
            summary.inspected += len(verdicts)
            summary.defective += verdicts.count("anomalous")
            summary.errors += verdicts.count("error")
            if progress is not None:
                progress(summary.inspected, len(todo))
    finally:
        if ours:
            ray.shutdown()
        if store is not None and store is not records:
            store.close()
    summary.seconds = time.perf_counter() - started
    return summary


def _connect(address: str | None) -> bool:
    """Ray initialised for this run; True if it was started here (and is to be stopped at the end). A local
    cluster's workers import AnomaLens from where this process does."""
    import ray

    if ray.is_initialized():
        return False
    if address in (None, "", "local"):
        import anomalens

        here = str(Path(anomalens.__file__).resolve().parents[1])
        path = os.pathsep.join(p for p in (here, os.environ.get("PYTHONPATH", "")) if p)
        ray.init(include_dashboard=False, runtime_env={"env_vars": {"PYTHONPATH": path}}, log_to_driver=False)
    else:
        ray.init(address=address, log_to_driver=False)
    return True


def _store(records: Any):
    if records is None or hasattr(records, "add_inspections"):
        return records
    from .records import RecordStore

    return RecordStore(records)


def output_run(out: Path) -> str:
    """The run an output folder holds: made by its first run, read again by every rerun into it."""
    file = out / RUN
    if not file.is_file():
        partial = out / f".{RUN}.{os.getpid()}.tmp"
        partial.write_text(uuid.uuid4().hex)
        os.replace(partial, file)
    return file.read_text().strip()


def record_rows(store, table, class_name: str, run: str) -> None:
    """The batch's rows in the records, in one transaction, before its Parquet file: a row the output holds
    is always in the records, and a batch recorded by a driver that died before writing its file is not
    recorded twice when the rerun inspects it again (the records keep one inspection per run, image and
    model version)."""
    from .records import inspection_record

    entries = []
    for row in table.to_pylist():
        entries.append(
            inspection_record(
                json.loads(row["result"]),
                image_path=row["source"],
                image_sha256=row["image_sha256"],
                expert=row["expert"] or "",
                findings=json.loads(row["findings"]) if row["findings"] else None,
                defect_type=row["defect_type"],
                class_name=class_name,
                model_id=row["model_id"],
                model_version=row["model_version"],
                created=row["time"].timestamp(),
                run=run,
            )
        )
    store.add_inspections(entries)


def _write_part(out: Path, table) -> Path:
    """The batch's rows as one Parquet file, named by its sources (a batch written again replaces itself),
    written under a temporary name and renamed: whole or absent."""
    import pyarrow.parquet as pq

    digest = hashlib.sha256("\n".join(table.column("source").to_pylist()).encode()).hexdigest()[:20]
    file = out / f"{PARTS}{digest}.parquet"
    partial = out / f".{file.name}.{os.getpid()}.tmp"
    pq.write_table(table, partial)
    os.replace(partial, file)
    return file


def _plain(value: Any) -> Any:
    """Plain JSON, as the records keep it (`records.chats.findings_json`, without needing the records extra):
    numpy numbers and arrays as Python's, tuples as lists, non-finite floats as None."""
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, np.ndarray | np.generic):
        return _plain(value.tolist())
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, str | bool | int):
        return value
    return str(value)


def read_rows(out: str | os.PathLike, columns: Iterable[str] | None = None) -> list[dict]:
    """Every row the Parquet files in `out` hold (tests, small outputs)."""
    import pyarrow.parquet as pq

    rows: list[dict] = []
    for part in sorted(Path(out).glob(f"{PARTS}*.parquet")):
        rows += pq.read_table(part, columns=list(columns) if columns else None).to_pylist()
    return rows
