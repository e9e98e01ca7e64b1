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
import os
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..data.sources import source_paths
from .worker import InspectWorker, row_schema

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
        dataset = _dataset(todo, model, out, batch_size, num_workers, weights, max_pixels, class_name)
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


def _dataset(
    todo: list[str],
    model: str | os.PathLike,
    out: Path,
    batch_size: int,
    num_workers: int | None,
    weights: str | os.PathLike | None,
    max_pixels: int | None,
    class_name: str,
):
    """The Ray dataset of `todo`'s rows: its sources in blocks of `batch_size`, mapped by a pool of
    `InspectWorker` actors (one per CPU of the cluster unless `num_workers`)."""
    import ray
    from ray.data import DataContext

    DataContext.get_current().enable_progress_bars = False
    workers = num_workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
    blocks = max(1, -(-len(todo) // batch_size))
    return ray.data.from_items([{"source": s} for s in todo], override_num_blocks=blocks).map_batches(
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
    from ..records import RecordStore

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
    from ..records import inspection_record

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


def read_rows(out: str | os.PathLike, columns: Iterable[str] | None = None) -> list[dict]:
    """Every row the Parquet files in `out` hold (tests, small outputs)."""
    import pyarrow.parquet as pq

    rows: list[dict] = []
    for part in sorted(Path(out).glob(f"{PARTS}*.parquet")):
        rows += pq.read_table(part, columns=list(columns) if columns else None).to_pylist()
    return rows
