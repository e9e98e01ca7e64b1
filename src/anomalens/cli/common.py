"""What every command shares: the app, consoles, options, progress bars, finding images and output folders,
and which inspector the options ask for (through the inspection service)."""

from __future__ import annotations

import time
from contextlib import contextmanager
from importlib.resources import files
from pathlib import Path
from typing import Annotated, NoReturn, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ..backbones import BACKBONES
from ..data import IMAGE_SUFFIXES, load_split
from ..data.datasets import image_folder, list_categories
from ..inspector import Inspector
from ..model_file import ModelFileError
from ..service import InspectionService

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="AnomaLens: find defects in product images, with no hand-set threshold.",
)
console = Console()
err = Console(stderr=True, soft_wrap=True)  # paths in messages stay whole, never folded

BackboneOpt = Annotated[str, typer.Option(help=f"Feature network: {', '.join(BACKBONES)}.")]
WeightsOpt = Annotated[Optional[Path], typer.Option(help="Backbone weights file (.pth state dict or .safetensors).")]
ExpertOpt = Annotated[
    str,
    typer.Option(
        help="memory or auto (few-shot memory bank up to 16 images, else "
        "PatchCore), memory_bank, patchcore, decoder (trained on synthetic "
        "anomalies) or both (memory and decoder fused)."
    ),
]
SizeOpt = Annotated[int, typer.Option(help="Images are resized to this square size.")]
ZeroShotOpt = Annotated[
    bool,
    typer.Option(
        "--zero-shot",
        help="No normal images. Route B (default): score the "
        "images against each other (needs at least 2). Route "
        "A, with --clip-weights or --clip-model: CLIP and text "
        "prompts about the --class.",
    ),
]
ClipWeightsOpt = Annotated[
    Optional[Path],
    typer.Option(
        help="Zero-shot route A: a CLIP checkpoint file (OpenAI, "
        "OpenCLIP or transformers layout; .safetensors or state dict)."
    ),
]
ClipModelOpt = Annotated[
    Optional[str],
    typer.Option(
        help="Zero-shot route A: ViT-B-16, ViT-B-32, ViT-L-14 or ViT-L-14-336 "
        "(without --clip-weights: downloaded from the Hugging Face hub)."
    ),
]
ClassOpt = Annotated[
    Optional[str],
    typer.Option("--class", help="What the product is, e.g. 'metal nut' (zero-shot prompts and answers)."),
]


def sample_root() -> Path:
    """The bundled battery-weld sample (MVTec layout) that ships inside the package."""
    return Path(str(files("anomalens") / "sample"))


def fail(message: str) -> NoReturn:
    err.print(f"[bold red]error:[/] {escape(message)}")
    raise typer.Exit(2)


@contextmanager
def progress_bars():
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    ) as progress:
        yield progress


def stage_bars(progress: Progress, prefix: str = ""):
    """A `(stage, done, total)` callback that shows one bar per stage, added when the stage first reports."""
    bars = {}

    def report(stage: str, done: int, total: int) -> None:
        if stage not in bars:
            bars[stage] = progress.add_task(prefix + stage, total=total)
        progress.update(bars[stage], completed=done)

    return report


def image_paths(inputs: list[Path]) -> list[Path]:
    """Files as given (a bad one is reported later, with the rest), folders expanded to their images."""
    paths = []
    for item in inputs:
        if item.is_dir():
            found = sorted(p for p in item.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
            if not found:
                err.print(f"[yellow]warning:[/] {escape(str(item))}: no images found in this folder")
            paths += found
        else:
            paths.append(item)
    return paths


def normal_images(data: Path, category: str | None) -> list[Path]:
    """Normal images from a folder of images, an MVTec/VisA category (its train split) or a dataset root."""
    if category:
        return [s.path for s in load_split(data, category, "train")]
    if (data / "train" / "good").is_dir():
        return [s.path for s in load_split(data.parent, data.name, "train")]
    if data.is_dir():
        paths = [s.path for s in image_folder(data)]
        if paths:
            return paths
        cats = list_categories(data)
        if cats:
            fail(f"{data} is a dataset root: name one of its categories with --category ({', '.join(cats)})")
    fail(f"{data}: no normal images found (give a folder of images or an MVTec-layout category)")


def fresh_output_dir(out: Path | None, overwrite: bool, prefix: str) -> Path:
    """A new folder for results; an existing non-empty one is only reused with --overwrite."""
    if out is None:
        out = Path("anomalens-out") / f"{prefix}-{time.strftime('%Y%m%d-%H%M%S')}"
    if out.exists() and any(out.iterdir()) and not overwrite:
        fail(f"{out} already holds files; choose another --out or pass --overwrite")
    out.mkdir(parents=True, exist_ok=True)
    return out


def fit_with_progress(service: InspectionService, paths: list[Path], **options) -> Inspector:
    """A fitted inspector, with a progress bar per stage; skipped images are reported."""
    with progress_bars() as progress:
        task = progress.add_task("fitting on normal images", total=len(paths))
        inspector = service.fit(
            paths, progress=lambda n: progress.advance(task, n), train_progress=stage_bars(progress), **options
        )
    for problem in inspector.skipped:
        err.print(f"[yellow]skipped:[/] {escape(problem)}")
    return inspector


def chosen_inspector(
    service: InspectionService,
    model: Path | None,
    refs: Path | None,
    zero_shot: bool,
    clip: bool = False,
    class_name: str | None = None,
    defects: tuple[str, ...] = (),
) -> Inspector:
    """The inspector a command asked for: a model file, few-shot references, or a zero-shot route."""
    if zero_shot and (model or refs):
        fail("--zero-shot uses no model and no references: drop --model/--refs")
    if not zero_shot and (model is None) == (refs is None):
        fail("give exactly one of --model MODEL or --refs DIR, or --zero-shot")
    if clip and not zero_shot:
        fail("--clip-weights/--clip-model are for --zero-shot (route A)")
    try:
        if zero_shot:
            return service.zero_shot(class_name, defects)
        if model:
            return service.load(model)
        assert refs is not None  # exactly one of model and refs
        return fit_with_progress(service, normal_images(refs, None))
    except (ModelFileError, ValueError, FileNotFoundError) as error:
        fail(str(error))


def results_table(records: list[dict], truth: dict[str, str] | None = None) -> Table:
    """One row per inspected image, from the results' JSON records."""
    table = Table(title="Inspection")
    table.add_column("image")
    if truth:
        table.add_column("truth")
    for name in ("verdict", "confidence", "score", "where"):
        table.add_column(name)
    for r in records:
        truth_cell = [truth.get(r["source"], "")] if truth else []
        name = escape(Path(r["source"]).name)
        if not r["ok"]:
            table.add_row(name, *truth_cell, "[red]unreadable[/]", "", "", escape(r["error"] or ""))
            continue
        verdict = "[bold red]DEFECT[/]" if r["anomalous"] else "[green]ok[/]"
        table.add_row(name, *truth_cell, verdict, f"{r['confidence']:.0%}", f"{r['score']:.3g}", r["location"])
    return table
