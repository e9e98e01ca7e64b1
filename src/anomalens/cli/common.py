"""What every command shares: the app, consoles, messages, progress bars, which inspector the options ask for
(through the inspection service) and the results table. Options are in `options`, files and folders in `files`.

Light on purpose: `anomalens --help`, a command's help and the series commands import no torch. What needs
the models (the service, the inspector, image decoding) is imported inside the function that uses it."""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

if TYPE_CHECKING:
    from ..experts import Expert
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


def check_route(model: Path | None, refs: Path | None, zero_shot: str | None, clip: bool) -> type[Expert] | None:
    """The options name exactly one way to an inspector (checked before any other work); the zero-shot
    route's expert, if they name one (`zero_shot_route`)."""
    if zero_shot and (model or refs):
        fail("--zero-shot uses no model and no references: drop --model/--refs")
    if not zero_shot and (model is None) == (refs is None):
        fail("give exactly one of --model MODEL or --refs DIR, or --zero-shot ROUTE")
    return zero_shot_route(zero_shot, clip)


def zero_shot_route(route: str | None, clip: bool) -> type[Expert] | None:
    """The expert of the zero-shot route named, once it is registered and has a CLIP exactly where it reads
    text (`clip`: --clip-weights or --clip-model given); None where no route is named."""
    if route is None:
        if clip:
            fail("--clip-weights/--clip-model are for --zero-shot clip")
        return None
    from ..experts import expert_class  # here: `--help` imports no torch

    try:
        kind = expert_class(route, zero_shot=True)
    except ValueError as error:
        fail(str(error))
    reads_text = "text" in kind.needs
    if reads_text and not clip:
        fail(f"--zero-shot {route} reads text with CLIP: give --clip-weights PATH or --clip-model NAME")
    if clip and not reads_text:
        fail(f"--clip-weights/--clip-model are for a route that reads text (--zero-shot clip), not {route}")
    return kind


def chosen_inspector(
    service: InspectionService,
    model: Path | None,
    refs: list[Path],
    zero_shot: str | None,
    class_name: str | None = None,
    defects: tuple[str, ...] = (),
    **options,
) -> Inspector:
    """The inspector a command asked for: a model file, few-shot references (`refs`: the images of --refs,
    `normal_images`; fitted with `options`, the Inspector's), or a zero-shot route (the route checked first)."""
    from ..model_file import ModelFileError

    try:
        if zero_shot:
            return service.zero_shot(zero_shot, class_name, defects)
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


def expert_settings(expert: str, given: list[str] | None) -> dict:
    """The --expert-setting options as settings, once the expert takes them (else exit 2 saying why)."""
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
