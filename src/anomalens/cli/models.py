"""`anomalens fit`, `anomalens info` and `anomalens export`: model files."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape

from ..names import DEFAULT_BACKBONE
from .common import app, console, expert_settings, fail, fit_with_progress, resolution
from .files import check_writable, normal_images
from .options import BackboneOpt, ExpertOpt, ExpertSettingOpt, FalseAlarmsOpt, ScaleOpt, SizeOpt, TileOpt, WeightsOpt


@app.command()
def fit(
    data: Annotated[Path, typer.Argument(help="Folder of normal images, or an MVTec/VisA category folder.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Model file to write (.safetensors).")],
    category: Annotated[Optional[str], typer.Option(help="Category, when DATA is a dataset root.")] = None,
    shots: Annotated[Optional[int], typer.Option(min=1, help="Use only the first K normal images.")] = None,
    backbone: BackboneOpt = DEFAULT_BACKBONE,
    weights: WeightsOpt = None,
    expert: ExpertOpt = "auto",
    expert_setting: ExpertSettingOpt = None,
    image_size: SizeOpt = 256,
    scale: ScaleOpt = "squash",
    tile: TileOpt = None,
    max_false_alarms: FalseAlarmsOpt = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing model file.")] = False,
):
    """Fit an inspector on normal images and save it as a model file."""
    if output.is_dir():
        fail(f"{output} is a folder; -o names the model file to write")
    if output.exists() and not overwrite:
        fail(f"{output} already exists; choose another name or pass --overwrite")
    settings = expert_settings(expert, expert_setting)
    paths = normal_images(data, category)[:shots]
    check_writable(output.parent)  # made by the save, after fitting
    from ..service import InspectionService  # the models: imported once the options are known to be usable

    started = time.perf_counter()
    try:
        inspector = fit_with_progress(
            InspectionService(weights=weights),
            paths,
            backbone=backbone,
            expert=expert,
            expert_settings=settings,
            max_false_alarms=max_false_alarms,
            **resolution(image_size, scale, tile),
        )
    except (ValueError, FileNotFoundError) as error:
        fail(str(error))
    try:
        inspector.save(output, overwrite=overwrite)
    except OSError as error:  # the disk filled, or the file appeared meanwhile
        fail(f"{output}: the model could not be written ({error})")
    cal = inspector.calibration
    assert inspector.expert is not None and cal is not None  # saved, so fitted
    for tried, separated, seconds in inspector.scale_probes:
        console.print(f"scale auto: {tried} found {separated:.0%} of the synthetic defects ({seconds:.0f}s)")
    if inspector.scale_probes:
        from ..scale import scale_reason  # the model code is loaded by now (fitted above)

        console.print(f"scale auto chose {inspector.config.scale}: {scale_reason(inspector.scale_probes)}")
    console.print(
        f"fitted [bold]{inspector.expert.name}[/] on {len(paths) - len(inspector.skipped)} normal images "
        f"in {time.perf_counter() - started:.1f}s → {escape(str(output))}"
    )
    console.print(f"scale {inspector.config.scale} at {inspector.config.image_size} px; {cal.words()}")


@app.command()
def info(
    model: Annotated[Path, typer.Argument(help="Model file.")],
    lineage: Annotated[
        bool, typer.Option("--lineage", help="Only its versions: the teaching steps that made it, one a line.")
    ] = False,
):
    """Print a model file's description (configuration, backbone, thresholds, its lineage when taught), once it
    is sure the file is a usable model (header, tensors and expert checked)."""
    from ..model_file import ModelFileError, read_model

    try:
        stored = read_model(model)
    except ModelFileError as error:
        fail(str(error))
    if not lineage:
        console.print_json(json.dumps(stored.header))
        return
    console.print("v1: fitted" + ("" if stored.lineage else " (never taught)"))
    for step in stored.lineage:
        console.print(escape(step.summary()))
        for flag in step.flags:
            console.print(f"  [yellow]warned:[/] {escape(flag)}")


@app.command()
def export(
    model: Annotated[Path, typer.Argument(help="Fitted model file.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="ONNX file to write (.onnx).")],
    overwrite: Annotated[bool, typer.Option(help="Replace an existing file.")] = False,
    weights: WeightsOpt = None,
):
    """Export a model's tensor part to ONNX: pixels → smoothed anomaly map and image score; the calibration
    and configuration travel in its metadata."""
    from ..model_file import ModelFileError
    from ..service import InspectionService

    try:
        from ..export import export_onnx

        path = export_onnx(InspectionService(weights=weights).load(model), output, overwrite)
    except ModuleNotFoundError:
        fail("export needs the onnx package (a dependency of anomalens): pip install onnx")
    except (ModelFileError, ValueError, FileExistsError, NotImplementedError) as error:
        fail(str(error))
    console.print(f"exported {escape(str(model))} → {escape(str(path))}")
