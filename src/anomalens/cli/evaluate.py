"""`anomalens eval`: benchmark on labelled data in MVTec-AD or VisA layout."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape
from rich.table import Table

from ..names import DEFAULT_BACKBONE
from .common import (
    app,
    console,
    err,
    expert_settings,
    fail,
    progress_bars,
    resolution,
    stage_bars,
    warn,
    zero_shot_route,
)
from .files import fresh_output_dir
from .options import (
    BackboneOpt,
    BatchEvidenceOpt,
    ClipModelOpt,
    ClipWeightsOpt,
    ExpertOpt,
    ExpertSettingOpt,
    FalseAlarmsOpt,
    PerImageOpt,
    ScaleOpt,
    SeedOpt,
    SizeOpt,
    TileOpt,
    WeightsOpt,
    ZeroShotOpt,
)

ShotsOpt = Annotated[Optional[int], typer.Option(min=1, help="Fit on the first K normal images only (few-shot).")]
EvalSizeOpt = Annotated[
    Optional[int],
    typer.Option(
        min=1,
        help="Score pixels on maps and masks resized to this square size (anomalib's protocol); default: native.",
    ),
]


@app.command("eval")
def evaluate_cmd(
    root: Annotated[Path, typer.Argument(help="Dataset root in MVTec-AD or VisA layout.")],
    category: Annotated[Optional[list[str]], typer.Option(help="Category (repeatable); default: all.")] = None,
    shots: ShotsOpt = None,
    backbone: BackboneOpt = DEFAULT_BACKBONE,
    weights: WeightsOpt = None,
    expert: ExpertOpt = "auto",
    expert_setting: ExpertSettingOpt = None,
    image_size: SizeOpt = 256,
    scale: ScaleOpt = "squash",
    tile: TileOpt = None,
    eval_size: EvalSizeOpt = None,
    seed: SeedOpt = 0,
    max_false_alarms: FalseAlarmsOpt = None,
    batch_evidence: BatchEvidenceOpt = False,
    per_image: PerImageOpt = False,
    out: Annotated[Optional[Path], typer.Option(help="Folder for metrics.json and metrics.csv.")] = None,
    overwrite: Annotated[bool, typer.Option(help="Write into a non-empty --out folder.")] = False,
    zero_shot: ZeroShotOpt = None,
    clip_weights: ClipWeightsOpt = None,
    clip_model: ClipModelOpt = None,
):
    """Benchmark on labelled data: image/pixel AUROC, AUPRO, F1-max, verdict quality, speed.
    Time series have their own command: `anomalens series eval`."""
    from ..data.datasets import list_categories

    categories = category or list_categories(root)
    if not categories:
        fail(f"{root}: no categories found (expected MVTec-AD or VisA layout)")
    route = zero_shot_route(zero_shot, bool(clip_weights or clip_model))  # checked before any work
    out = fresh_output_dir(out, overwrite, "eval")
    options: dict = dict(
        backbone=backbone, weights=weights, expert=expert, seed=seed, **resolution(image_size, scale, tile)
    )
    if max_false_alarms is not None:
        options["max_false_alarms"] = max_false_alarms
    if expert_setting:
        options["expert_settings"] = expert_settings(expert, expert_setting)
    if route is not None and "text" in route.needs:
        options |= dict(clip_weights=clip_weights, clip_model=clip_model)
    rows = _evaluated(root, categories, shots, options, eval_size, zero_shot, batch_evidence)
    if not rows:
        raise typer.Exit(1)
    _write_metrics(out, rows)
    _print_table(rows, f"zero-shot, {zero_shot}" if zero_shot else f"{shots}-shot" if shots else "full-shot")
    _shift_notes(rows)
    console.print(f"metrics written to {escape(str(out / 'metrics.json'))} and {escape(str(out / 'metrics.csv'))}")


def _evaluated(root: Path, categories, shots, options: dict, eval_size, route, batch_evidence: bool) -> list[dict]:
    """One row of metrics per category; a category that fails is reported and left out."""
    from ..evaluation import evaluate_category

    rows = []
    for name in categories:
        with progress_bars() as progress:
            try:
                rows.append(
                    evaluate_category(
                        root, name, shots, options, stage_bars(progress, f"{name}: "), eval_size, route, batch_evidence
                    )
                )
            except (FileNotFoundError, ValueError) as error:
                err.print(f"[red]{escape(name)}: {escape(str(error))}[/]")
    return rows


def _write_metrics(out: Path, rows: list[dict]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(rows, indent=2))
    columns = [k for k in rows[0] if k != "skipped"]
    with open(out / "metrics.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def _print_table(rows: list[dict], setting: str) -> None:
    table = Table(title=f"AnomaLens eval ({setting})")
    shown = [
        "image_auroc",
        "pixel_auroc",
        "aupro",
        "image_f1max",
        "verdict_accuracy",
        "fit_seconds",
        "detect_images_per_second",
    ]
    table.add_column("category")
    for key in shown:
        table.add_column(key.replace("_", " "), justify="right")
    for row in rows:
        table.add_row(escape(row["category"]), *(fmt(row.get(key)) for key in shown))
    console.print(table)


def _shift_notes(rows: list[dict]) -> None:
    """A note for each category whose normal-looking test images sit SHIFT_NOTE spreads or more from the
    references."""
    from ..result import SHIFT_NOTE

    for row in rows:
        shift = row.get("reference_shift")
        if shift is not None and abs(shift) >= SHIFT_NOTE:
            warn(f"{row['category']}: the test set's normal-looking images score {shift:+.1f} normal spreads from "
                 "the references (verdicts unchanged; see `reference_shift` in metrics.json)", "note")  # fmt: skip


def fmt(value) -> str:
    return "n/a" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)
