"""`anomalens detect` and `anomalens demo`: inspect images, write per-image JSON and heatmap overlays."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer
from rich.markup import escape

from .common import (
    app,
    check_route,
    chosen_inspector,
    console,
    fail,
    fit_with_progress,
    progress_bars,
    resolution,
    results_table,
    warn,
)
from .files import fresh_output_dir, image_paths, normal_images, sample_root
from .options import (
    BatchEvidenceOpt,
    ClassOpt,
    ClipModelOpt,
    ClipWeightsOpt,
    MaxPixelsOpt,
    PerImageOpt,
    ScaleOpt,
    SizeOpt,
    TileOpt,
    WeightsOpt,
    ZeroShotOpt,
)
from .records import RecordsOpt, open_records, recorder

if TYPE_CHECKING:  # the models are imported by the commands that run them (`--help` needs none)
    from ..calibration import Calibration
    from ..predictor import Predictor
    from ..records import RecordStore
    from ..service import Inspection, InspectionService

OutOpt = Annotated[Optional[Path], typer.Option(help="Output folder (default: a new one under anomalens-out/).")]
OverwriteOpt = Annotated[bool, typer.Option(help="Write into a non-empty --out folder.")]


def write_inspections(
    service: InspectionService,
    inspector: Predictor,
    paths: list[Path],
    out: Path,
    max_pixels: int | None = None,
    batch_evidence: bool = False,
    keep: Callable[[Path, dict, Inspection], None] | None = None,
) -> list[dict]:
    """Inspect every image; write its JSON and overlay (from the image decoded for the model: no second
    decode); one unreadable image never stops the rest. Returns the JSON records, results.json too.
    `batch_evidence`: all are decided as one batch (files are written once all are scored). `keep(path, record,
    inspection)` is called with each image's record once its files are written (the inspection records)."""
    from ..result import shift_note  # here: the CLI's start stays light (names.py)

    records: list[dict] = []
    scored: list[tuple[Calibration, float]] = []
    used: set[str] = set()
    out.mkdir(parents=True, exist_ok=True)
    with progress_bars() as progress:
        task = progress.add_task("inspecting", total=len(paths))
        inspections = service.inspect(
            inspector,
            paths,
            max_pixels=max_pixels,
            batch_evidence=batch_evidence,
            scored=lambda: progress.advance(task),
        )
        for path, inspection in zip(paths, inspections):
            record = inspection.result.to_dict()
            if inspection.ok:
                stem = _unique_stem(path, used)
                files = out / f"{stem}_overlay.png", out / f"{stem}.json"
                try:
                    inspection.overlay().save(files[0])
                    record["overlay"] = str(files[0])
                    files[1].write_text(json.dumps(record, indent=2))
                except Exception as error:  # noqa: BLE001 - one image's failure: reported as an unreadable one
                    for file in files:
                        file.unlink(missing_ok=True)
                    inspection = inspection.failed(error)
                    record = inspection.result.to_dict()
            if not inspection.ok:
                warn(str(inspection.result.error), "skipped")
            if keep is not None:
                keep(path, record, inspection)
            records.append(record)
            if inspection.ok and inspection.result.calibration is not None:  # a score, not its image: memory
                scored.append((inspection.result.calibration, float(inspection.result.score or 0.0)))
    (out / "results.json").write_text(json.dumps(records, indent=2))
    note = shift_note(scored)
    if note is not None:
        warn(note, "note")
    return records


def _unique_stem(path: Path, used: set[str]) -> str:
    stem, n = path.stem, 1
    while stem in used:
        n += 1
        stem = f"{path.stem}-{n}"
    used.add(stem)
    return stem


# long: only by its 25 options (typer reads them from this signature); the work is in the steps it calls
@app.command()
def detect(
    images: Annotated[
        list[str],
        typer.Argument(
            metavar="IMAGES",
            help="Image files or folders (with --ray also globs, list files and URIs: s3://…, gs://…, file://…; "
            "time series: `anomalens series detect`).",
        ),
    ],
    model: Annotated[Optional[Path], typer.Option(help="Fitted model file.")] = None,
    refs: Annotated[
        Optional[Path], typer.Option(help="Folder of normal reference images (few-shot, no model).")
    ] = None,
    out: OutOpt = None,
    overwrite: OverwriteOpt = False,
    weights: WeightsOpt = None,
    zero_shot: ZeroShotOpt = None,
    class_name: ClassOpt = None,
    clip_weights: ClipWeightsOpt = None,
    clip_model: ClipModelOpt = None,
    max_pixels: MaxPixelsOpt = 40_000_000,
    image_size: SizeOpt = 256,
    scale: ScaleOpt = "squash",
    tile: TileOpt = None,
    batch_evidence: BatchEvidenceOpt = False,
    per_image: PerImageOpt = False,
    engine: Annotated[
        Optional[str],
        typer.Option(
            help="What runs --model: torch, onnx (an exported MODEL.onnx, anomalens export, on onnxruntime) or a "
            "registered engine. Default: the one that reads the model file's kind (.onnx: onnx, else torch)."
        ),
    ] = None,
    records: RecordsOpt = None,
    ray: Annotated[
        bool,
        typer.Option(
            "--ray",
            help="Inspect on Ray Data (--model only), on a local cluster unless --ray-address names one. Writes "
            "Parquet rows and overlays; a rerun into the same --out skips what is done. Needs anomalens[scale].",
        ),
    ] = False,
    ray_address: Annotated[
        Optional[str], typer.Option(help="--ray: a Ray cluster's address (host:port, or auto); implies --ray.")
    ] = None,
    workers: Annotated[Optional[int], typer.Option(min=1, help="--ray: worker actors (default: one per CPU).")] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="--ray: images per batch (and per Parquet file).")] = 16,
):
    """Inspect images: verdict, confidence, regions and location; writes JSON and heatmap overlays.
    With --ray, on a Ray cluster. Time series have their own command: `anomalens series detect`."""
    if ray or ray_address:
        if refs or zero_shot or model is None:
            fail(
                "--ray inspects with a fitted model: give --model MODEL (.safetensors, or .onnx from anomalens export)"
            )
        from .on_ray import detect_on_ray

        ray_options = (ray_address or "local", workers, batch_size, weights, max_pixels, class_name, records)
        detect_on_ray(images, model, out, overwrite, *ray_options)
        return
    check_route(model, refs, zero_shot, bool(clip_weights or clip_model))
    check_engine(engine, model)
    paths = image_paths([Path(image) for image in images])  # a URI is Ray's alone: pyarrow reads it
    if not paths:
        fail("no images to inspect")
    store = open_records(records) if records else None  # before any work: a bad URL ends it
    out = fresh_output_dir(out, overwrite, "detect")
    from ..service import InspectionService  # the models: imported once the options are known to be usable

    service = InspectionService(weights=weights, clip_weights=clip_weights, clip_model=clip_model)
    ref_paths = normal_images(refs, None) if refs else []
    options = resolution(image_size, scale, tile)
    inspector = detect_predictor(service, engine, model, ref_paths, zero_shot, class_name, options)
    keep = recorder(store, inspector, ref_paths, class_name or "") if store is not None else None
    try:
        results = write_inspections(service, inspector, paths, out, max_pixels, batch_evidence, keep)
    except ValueError as error:  # a zero-shot route that compares images, with fewer than 2 readable ones
        fail(str(error))
    report_detected(results, out, store, zero_shot)


def detect_predictor(
    service: InspectionService,
    engine: str | None,
    model: Path | None,
    refs: list[Path],
    zero_shot: str | None,
    class_name: str | None,
    options: dict,
) -> Predictor:
    """What inspects: a model file on the engine that reads it (named, or by the file's kind), else the
    inspector the options name (few-shot references, a zero-shot route, or a model file on torch)."""
    if model is not None:
        from ..predictor import engine_for, load_predictor

        runs_on = engine_for(model, engine).name  # checked already (check_engine)
        if runs_on != "torch":
            try:
                return load_predictor(model, engine=runs_on)
            except (ValueError, OSError) as error:  # the engine's words for a file it cannot load
                fail(str(error))
    return chosen_inspector(service, model, refs, zero_shot, class_name, **options)


def report_detected(results: list[dict], out: Path, store: RecordStore | None, zero_shot: str | None) -> None:
    """The results table and a line of totals (the zero-shot route, where one was used); exit code 1 when no
    image could be inspected."""
    console.print(results_table(results))
    n_bad = sum(1 for r in results if r["ok"] and r["anomalous"])
    n_err = sum(1 for r in results if not r["ok"])
    console.print(
        f"{n_bad} of {len(results) - n_err} images defective"
        + (f" (zero-shot route {escape(zero_shot)})" if zero_shot else "")
        + (f", {n_err} not inspected" if n_err else "")
        + f"; results and overlays in {escape(str(out))}"
        + (f"; {len(results)} records in {escape(repr(store))}" if store is not None else "")
    )
    if n_err == len(results):
        raise typer.Exit(1)


def check_engine(engine: str | None, model: Path | None) -> None:
    """An engine runs a model file of its kind, and nothing else (checked before any other work)."""
    if engine is None or engine == "torch" and model is None:
        return
    if model is None:
        fail(f"--engine {engine} runs a model file: give --model MODEL (an exported one: anomalens export)")
    from ..predictor import engine_for

    try:
        engine_for(model, engine)
    except ValueError as error:
        fail(f"{error}" + (" (anomalens export writes one)" if engine == "onnx" else ""))


@app.command()
def demo(out: OutOpt = None, overwrite: OverwriteOpt = False):
    """Fit on the bundled battery-weld sample and inspect its test images (offline, about a minute)."""
    from ..data import load_split
    from ..service import InspectionService

    root = sample_root()
    train = [s.path for s in load_split(root, "battery_weld", "train")]
    test = load_split(root, "battery_weld", "test")
    console.print(
        f"Bundled sample: {len(train)} normal weld images to learn from, {len(test)} test images "
        f"(source and licence: {escape(str(root / 'README.md'))})"
    )
    out = fresh_output_dir(out, overwrite, "demo")
    service = InspectionService()
    inspector = fit_with_progress(service, train)
    records = write_inspections(service, inspector, [s.path for s in test], out)
    truth = {str(s.path): "defect" if s.label else "good" for s in test}
    console.print(results_table(records, truth))
    correct = sum(1 for r, s in zip(records, test) if r["ok"] and r["anomalous"] == bool(s.label))
    console.print(
        f"{correct} of {len(test)} verdicts match the ground truth. Heatmap overlays and per-image JSON: "
        + escape(str(out))
    )
