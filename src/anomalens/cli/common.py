"""What every command shares: the app, consoles, options, progress bars, finding images and output folders,
and which inspector the options ask for (through the inspection service).

Light on purpose: `anomalens --help`, a command's help and the series commands import no torch. What needs
the models (the service, the inspector, image decoding) is imported inside the function that uses it."""

from __future__ import annotations

import tempfile
import time
from contextlib import contextmanager
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ..names import BACKBONE_NAMES

if TYPE_CHECKING:
    from ..inspector import Inspector
    from ..service import InspectionService

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="AnomaLens: find defects in product images, with no hand-set threshold.",
)
console = Console()
err = Console(stderr=True, soft_wrap=True)  # paths in messages stay whole, never folded
MAX_NOTES = 20  # skipped entries reported one by one; past these, a count

BackboneOpt = Annotated[str, typer.Option(help=f"Feature network: {', '.join(BACKBONE_NAMES)}.")]
WeightsOpt = Annotated[Optional[Path], typer.Option(help="Backbone weights file (.pth state dict or .safetensors).")]
ExpertOpt = Annotated[
    str,
    typer.Option(
        help="memory or auto (few-shot memory bank up to 16 images, else "
        "PatchCore), memory_bank, patchcore, decoder (trained on synthetic "
        "anomalies) or both (memory and decoder fused)."
    ),
]
SizeOpt = Annotated[
    int,
    typer.Option(
        min=32,
        max=2048,
        help="The network's input side: each image's short side (--scale aspect), the square it is squashed to "
        "(squash) or each tile's side (a number). At least 32, since features lie on a grid 8 to 16 times coarser "
        "(32 gives 2×2 to 4×4 patches); at most 2048 (memory grows with its square).",
    ),
]
ScaleOpt = Annotated[
    str,
    typer.Option(
        help="How images meet the input size: squash (the whole image to a square, distorted; the only layout "
        "`export` takes), aspect (short side to --image-size, aspect kept, overlapping tiles along the long side), "
        "a number: the image resized by it (1 = native pixels) and cut into overlapping --image-size tiles, for "
        "small defects in large images; or auto: the coarsest of these that still finds a synthetic defect of "
        "0.05 % of the image in a few normal images (when fitting).",
    ),
]
TileOpt = Annotated[
    Optional[int],
    typer.Option(
        min=32, max=2048, help="Inspect native pixels in overlapping tiles of this side: --image-size N --scale 1."
    ),
]
SeedOpt = Annotated[int, typer.Option(min=0, help="Seed of the random draws.")]


def false_alarm_share(text: str | None) -> float | None:
    """ "1%" or "0.01" → 0.01: a share of normal images, above 0 and below 1."""
    if text is None:
        return None
    try:
        share = float(text.removesuffix("%")) / (100 if text.endswith("%") else 1)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not a share such as 1% or 0.01") from None
    if not 0 < share < 1:
        raise typer.BadParameter(f"{text!r} must lie above 0 and below 100%")
    return share


FalseAlarmsOpt = Annotated[
    Optional[float],
    typer.Option(
        parser=false_alarm_share,
        metavar="SHARE",
        help="Operating point: at most this share of normal images flagged (e.g. 1%), the threshold placed "
        "from the normal references alone. Default: the threshold between normal and synthetic anomalies.",
    ),
]
BatchEvidenceOpt = Annotated[
    bool,
    typer.Option(
        "--batch-evidence",
        help="Decide the images as one batch: the threshold may move on the batch's own scores where they are "
        "clearly two groups (at least 16 images; never raised). Default: each image alone, its verdict "
        "depending on it and the model only. Each result's decision.mode says which.",
    ),
]
# the default before batch evidence was asked for; accepted, and changes nothing
PerImageOpt = Annotated[bool, typer.Option("--per-image", hidden=True, help="Deprecated: the default now.")]
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
MaxPixelsOpt = Annotated[
    int,
    typer.Option(
        min=1,
        help="Largest image accepted, in pixels (width × height); larger ones are refused from "
        "their header, before decoding.",
    ),
]
ClassOpt = Annotated[
    Optional[str],
    typer.Option("--class", help="What the product is, e.g. 'metal nut' (zero-shot prompts and answers)."),
]


def sample_root() -> Path:
    """The bundled battery-weld sample (MVTec layout) that ships inside the package."""
    return Path(str(files("anomalens") / "sample"))


def fail(message: str, code: int = 2) -> NoReturn:
    """Says what is wrong and exits: 2 bad usage or input, 1 nothing could be inspected (README: exit codes)."""
    err.print(f"[bold red]error:[/] {escape(message)}")
    raise typer.Exit(code)


def warn(message: str, label: str = "warning") -> None:
    err.print(f"[yellow]{label}:[/] {escape(message)}")


def report_skipped(problems: list[str]) -> None:
    """One line per skipped input, with why; past MAX_NOTES, only how many more."""
    for problem in problems[:MAX_NOTES]:
        warn(problem, "skipped")
    if len(problems) > MAX_NOTES:
        warn(f"{len(problems) - MAX_NOTES} more (the first {MAX_NOTES} are listed above)", "skipped")


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
            bars[stage] = progress.add_task(escape(prefix + stage), total=total)
        progress.update(bars[stage], completed=done)

    return report


def image_paths(inputs: list[Path]) -> list[Path]:
    """Files as given (a bad one is reported later, with the rest), folders expanded to their images and
    those of their subfolders; what a folder holds besides is reported."""
    from ..data.datasets import scan_folder

    paths = []
    for item in inputs:
        if item.is_dir():
            found, skipped = scan_folder(item, recursive=True)
            report_skipped(skipped)
            if not found:
                warn(f"{item}: no images found in this folder")
            paths += found
        else:
            paths.append(item)
    return paths


def normal_images(data: Path, category: str | None) -> list[Path]:
    """Normal images from a folder of images, an MVTec/VisA category (its train split) or a dataset root."""
    from ..data.datasets import list_categories, load_split, scan_folder

    if category:
        return [s.path for s in load_split(data, category, "train")]
    if (data / "train" / "good").is_dir():
        return [s.path for s in load_split(data.parent, data.name, "train")]
    if data.is_dir():
        paths, skipped = scan_folder(data)
        cats = [] if paths else list_categories(data)
        if cats:
            fail(f"{data} is a dataset root: name one of its categories with --category ({', '.join(cats)})")
        report_skipped(skipped)
        if paths:
            return paths
    fail(f"{data}: no normal images found (give a folder of images or an MVTec-layout category)")


def fresh_output_dir(out: Path | None, overwrite: bool, prefix: str) -> Path:
    """A folder for results, checked before any work and made when the first result is written; an existing
    non-empty one is only reused with --overwrite."""
    if out is None:
        out = Path("anomalens-out") / f"{prefix}-{time.strftime('%Y%m%d-%H%M%S')}"
    if out.exists() and not out.is_dir():
        fail(f"{out} is a file; --out names a folder")
    if out.exists() and any(out.iterdir()) and not overwrite:
        fail(f"{out} already holds files; choose another --out or pass --overwrite")
    check_writable(out)
    return out


def check_writable(folder: Path) -> None:
    """Files can be written in the folder, or in the closest existing one above it, where it will be made.
    Checked before any work, so a long fit never ends in a write error; nothing is created here."""
    existing = next(p for p in (folder, *folder.parents) if p.exists())
    if not existing.is_dir():
        fail(f"{folder}: cannot write there ({existing} is a file)")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as error:
        fail(f"{folder}: cannot write there ({error.strerror or error})")


def resolution(image_size: int, scale: str, tile: int | None) -> dict:
    """The inspector options that --image-size, --scale and --tile (which wins) ask for; the defaults are left
    out, so the service shares its default inspector's backbone."""
    from ..config import InspectorConfig
    from ..preprocessing import checked_scale

    try:
        options = (
            dict(image_size=tile, scale=1.0)
            if tile
            else dict(image_size=image_size, scale=checked_scale(scale, auto=True))
        )
    except ValueError as error:
        fail(f"--{error}")  # the message begins "scale must be"
    defaults = InspectorConfig()
    return {name: value for name, value in options.items() if value != getattr(defaults, name)}


def fit_with_progress(service: InspectionService, paths: list[Path], **options) -> Inspector:
    """A fitted inspector, with a progress bar per stage; skipped images are reported."""
    with progress_bars() as progress:
        task = progress.add_task("fitting on normal images", total=len(paths))
        inspector = service.fit(
            paths, progress=lambda n: progress.advance(task, n), train_progress=stage_bars(progress), **options
        )
    report_skipped(inspector.skipped)
    return inspector


def check_route(model: Path | None, refs: Path | None, zero_shot: bool, clip: bool) -> None:
    """The options name exactly one way to an inspector (checked before any other work)."""
    if zero_shot and (model or refs):
        fail("--zero-shot uses no model and no references: drop --model/--refs")
    if not zero_shot and (model is None) == (refs is None):
        fail("give exactly one of --model MODEL or --refs DIR, or --zero-shot")
    if clip and not zero_shot:
        fail("--clip-weights/--clip-model are for --zero-shot (route A)")


def chosen_inspector(
    service: InspectionService,
    model: Path | None,
    refs: list[Path],
    zero_shot: bool,
    clip: bool = False,
    class_name: str | None = None,
    defects: tuple[str, ...] = (),
    **options,
) -> Inspector:
    """The inspector a command asked for: a model file, few-shot references (`refs`: the images of --refs,
    `normal_images`; fitted with `options`, the Inspector's), or a zero-shot route (the route checked first)."""
    from ..model_file import ModelFileError

    try:
        if zero_shot:
            return service.zero_shot(class_name, defects)
        if model:
            return service.load(model)
        return fit_with_progress(service, refs, **options)
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
    from ..result import uncertain, uncertain_note  # here, not above: `--help` imports no numpy

    for r in records:
        truth_cell = [truth.get(r["source"], "")] if truth else []
        name = escape(Path(r["source"]).name)
        if not r["ok"]:
            table.add_row(name, *truth_cell, "[red]not inspected[/]", "", "", escape(r["error"] or ""))
            continue
        verdict = "[bold red]DEFECT[/]" if r["anomalous"] else "[green]ok[/]"
        sure = f"{r['confidence']:.0%}"
        if r["probability"] is not None and uncertain(r["probability"]):
            sure = f"[yellow]{uncertain_note(r['probability'])}[/]"
        cells = (verdict, sure, f"{r['score']:.3g}", escape(r["location"]))
        table.add_row(name, *truth_cell, *cells)
    return table


ExpertSettingOpt = Annotated[
    Optional[list[str]],
    typer.Option(
        "--expert-setting",
        metavar="KEY=VALUE",
        help="One of the expert's own settings (repeatable), e.g. coreset_ratio=0.05 for patchcore; "
        "a value that reads as a JSON number, true/false or null is taken so, else as text.",
    ),
]


def expert_settings(expert: str, given: list[str] | None) -> dict:
    """The --expert-setting options as settings, once the expert takes them (else exit 2 saying why)."""
    import json  # here: the module's imports are being reorganised (cli/options.py) beside this change

    settings: dict = {}
    for item in given or []:
        key, equals, text = item.partition("=")
        if not equals or not key.strip():
            fail(f"--expert-setting takes KEY=VALUE, not {item!r}")
        try:
            value = json.loads(text)
        except ValueError:
            value = text
        settings[key.strip()] = value if isinstance(value, (bool, int, float, str, type(None))) else text
    if settings:
        from ..experts.base import checked_settings  # here, not above: `--help` imports no torch

        try:
            checked_settings(expert, settings)
        except ValueError as error:  # a SettingError, or an unknown expert
            fail(str(error))
    return settings
