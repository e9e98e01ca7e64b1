"""`anomalens detect --ray`: a batch inspected on Ray Data (`distributed.inspect_dataset`), with progress and
the summary `detect` gives."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.markup import escape

from .common import console, err, fail
from .files import fresh_output_dir
from .records import open_records

if TYPE_CHECKING:  # Ray and pyarrow are imported by the command that runs them
    from ..distributed import RaySummary


def detect_on_ray(
    images: list[str],
    model: Path,
    out: Path | None,
    overwrite: bool,
    address: str,
    workers: int | None,
    batch_size: int,
    weights: Path | None,
    max_pixels: int | None,
    class_name: str | None,
    records: str | None,
) -> None:
    """`detect --ray`: the images (folders, globs, list files) inspected on Ray Data into Parquet rows and
    overlays in --out; an --out that already holds rows is resumed (its images skipped)."""
    import importlib.util

    if importlib.util.find_spec("ray") is None or importlib.util.find_spec("pyarrow") is None:
        fail("--ray needs the scale extra: pip install 'anomalens[scale]'")
    if not model.is_file():
        fail(f"{model}: no such model file")
    from ..distributed import PARTS, RUN, inspect_dataset, source_paths

    resumed = out is not None and ((out / RUN).is_file() or any(out.glob(f"{PARTS}*.parquet")))
    out = out if resumed else fresh_output_dir(out, overwrite, "detect")
    assert out is not None
    store = open_records(records) if records else None
    try:
        total = len(source_paths(images))
    except (OSError, ValueError) as error:  # a path or URI that names nothing, a URI pyarrow cannot open
        fail(str(error))
    if not total:
        fail("no images to inspect")
    with _bars(address) as advance:
        try:
            summary = inspect_dataset(
                images, model, out, address=None if address == "local" else address, records=store,
                batch_size=batch_size, num_workers=workers, weights=weights, max_pixels=max_pixels,
                class_name=class_name or "", progress=advance,
            )  # fmt: skip
        except ConnectionError as error:
            fail(f"Ray cluster {address!r}: {error}")
        finally:
            if store is not None:
                store.close()
    _print_summary(summary, out, store)
    if summary.inspected and summary.errors == summary.inspected:
        raise typer.Exit(1)


@contextmanager
def _bars(address: str) -> Iterator[Callable[[int, int], None]]:
    """A progress bar of the images inspected on Ray, with their rate; yields `progress(done, todo)`."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    started = time.perf_counter()
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeRemainingColumn(),
        console=err,
        transient=True,
    ) as bars:
        task = bars.add_task(f"inspecting on Ray ({address})", total=None, rate="")

        def advance(done: int, todo: int) -> None:
            seconds = time.perf_counter() - started
            bars.update(task, completed=done, total=todo, rate=f"{done / seconds:.1f} img/s" if seconds else "")

        yield advance


def _print_summary(summary: RaySummary, out: Path, store) -> None:
    inspected = summary.inspected - summary.errors
    console.print(
        f"{summary.defective} of {inspected} images defective"
        + (f", {summary.errors} not inspected" if summary.errors else "")
        + (f"; {summary.skipped} already done, skipped" if summary.skipped else "")
        + f"; {summary.inspected} in {summary.seconds:.1f} s ({summary.rate:.1f} img/s)"
        + f"; Parquet rows and overlays in {escape(str(out))}"
        + (f"; {summary.inspected} records in {escape(repr(store))}" if store is not None else "")
    )
