"""`anomalens teach`: a model taught by what people said about its results (images marked normal, defects with
their masks and types, or a file of corrections), written as its next version beside it; `--restore` brings an
earlier version back. `anomalens info --lineage` shows a model's versions."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer
from rich.markup import escape

from .common import app, console, fail, warn
from .files import image_paths
from .options import WeightsOpt
from .records import SinceOpt, UntilOpt

if TYPE_CHECKING:
    from ..teaching import Correction

MASK_ENDINGS = ("", "_mask")  # x.png's mask in --masks: x.<suffix> or x_mask.<suffix> (MVTec's name)


# the command's options (typer reads them from `teach`'s signature)
NormalOpt = Annotated[
    Optional[list[Path]],
    typer.Option(metavar="PATH", help="Images (or folders of them) a person marked normal: false alarms."),
]
DefectOpt = Annotated[
    Optional[list[Path]],
    typer.Option(metavar="PATH", help="Images (or folders of them) a person marked defective."),
]
MasksOpt = Annotated[
    Optional[Path],
    typer.Option(
        help="Folder of defect masks, nonzero on the defect: <image stem>.png or <image stem>_mask.png. "
        "A defect without one is taught by its verdict alone."
    ),
]
TypesOpt = Annotated[
    Optional[Path],
    typer.Option(help="Defect types: a JSON object, or CSV lines, of image file name → type (e.g. crack)."),
]
CorrectionsOpt = Annotated[
    Optional[Path],
    typer.Option(
        help="Corrections as JSON lines: {image, verdict (normal/defective), type, box as \\[x0, y0, x1, y1], "
        "mask, inspection, id}, paths relative to the file (the log beside a model holds them so)."
    ),
]
OutOpt = Annotated[
    Optional[Path],
    typer.Option("-o", "--out", help="File to write. Default: the next version beside MODEL (line.v2.safetensors)."),
]
ConfirmOpt = Annotated[
    bool,
    typer.Option(
        "--confirm",
        help="The images marked normal are sure: taught whole even where the model is sure of a defect "
        "(without, what it outlines there is held back, and you are told).",
    ),
]
PassedOpt = Annotated[
    Optional[list[Path]],
    typer.Option(
        metavar="PATH",
        help="Images (or folders of them) of parts the line passed and no one corrected, oldest first (a folder's "
        "by name): the latest 64 place the line, and a model fitted on one reference learns defects' look beside "
        "them.",
    ),
]
FromRecordsOpt = Annotated[
    Optional[str],
    typer.Option(
        "--from-records",
        help="Teach the feedback kept in these inspection records (a SQLite file or a database URL) on "
        "inspections this model (any of its versions) made of image files; feedback taught before is skipped.",
    ),
]
RestoreOpt = Annotated[
    Optional[int],
    typer.Option(min=1, help="Bring back this earlier version of MODEL as its next one, instead of teaching."),
]


@app.command()
def teach(
    model: Annotated[Path, typer.Argument(help="Fitted (or taught) model file.")],
    normal: NormalOpt = None,
    defect: DefectOpt = None,
    masks: MasksOpt = None,
    types: TypesOpt = None,
    corrections: CorrectionsOpt = None,
    out: OutOpt = None,
    confirm: ConfirmOpt = False,
    passed: PassedOpt = None,
    from_records: FromRecordsOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    restore: RestoreOpt = None,
    weights: WeightsOpt = None,
):
    """Teach a model: false alarms marked normal join its memory, labelled defects train its maps and move its
    decision, typed defects teach it their names. Writes a new version beside it, never over it."""
    if restore is not None:
        if normal or defect or corrections:
            fail("--restore brings back a version: give no images or corrections with it")
        _restore(model, restore, out, weights)
        return
    taught = _corrections(normal or [], defect or [], masks, types, corrections, confirm)
    let_stand = [str(path) for path in image_paths(passed or [])]
    if from_records:
        taught += _from_records(from_records, model, since, until)
        let_stand += _passed_from_records(from_records, model, since, until)
    if not taught:
        fail(
            "nothing to teach: give --normal, --defect, --corrections or --from-records (with feedback not yet taught)"
        )
    _taught_version(model, taught, out, weights, let_stand)


def _taught_version(
    model: Path, taught: list[Correction], out: Path | None, weights: Path | None, passed: list[str]
) -> None:
    """MODEL taught the corrections (and the parts it `passed` that no one corrected) and saved as its next
    version (or `out`); what changed is printed."""
    from ..model_file import ModelFileError
    from ..service import InspectionService
    from ..teaching import TeachingError, save_version
    from ..teaching import teach as taught_model

    try:
        inspector = InspectionService(weights=weights).load(model)
        before = inspector.calibration
        result = taught_model(inspector, taught, passed=passed)
        path = save_version(result, model, out)
    except (ModelFileError, TeachingError, ValueError, FileExistsError) as error:
        fail(str(error))
    after = result.inspector.calibration
    assert before is not None and after is not None  # a fitted model, taught
    for flag in result.flags:
        warn(flag, "check")
    console.print(f"{escape(result.step.summary())} → {escape(str(path))}")
    if result.inspector.expert_name != inspector.expert_name:
        console.print(
            f"expert {inspector.expert_name} → {result.inspector.expert_name}: a head beside its memory learns the "
            "labelled defects (image scores are now in normal spreads)"
        )
    console.print(
        f"image threshold {before.image_threshold:.4g} → {after.image_threshold:.4g} ({after.rule}, "
        f"{after.n_normal} normal images" + (f", {after.n_passed} passed parts)" if after.n_passed else ")")
    )


def _restore(model: Path, version: int, out: Path | None, weights: Path | None) -> None:
    from ..model_file import ModelFileError
    from ..teaching import TeachingError, restore

    try:
        path = restore(model, version, out, weights)
    except (ModelFileError, TeachingError, FileExistsError) as error:
        fail(str(error))
    console.print(f"v{version} restored → {escape(str(path))}")


def _corrections(
    normal: list[Path], defect: list[Path], masks: Path | None, types: Path | None, listed: Path | None, sure: bool
) -> list[Correction]:
    """The corrections the options give, each file checked before any model is loaded."""
    from ..teaching import Correction, TeachingError, read_corrections

    if masks is not None and not masks.is_dir():
        fail(f"{masks}: not a folder of masks")
    defects = image_paths(defect)
    named = _types(types, {p.name for p in defects}) if types else {}
    found = [Correction(p, "normal", confirmed=sure) for p in image_paths(normal)]
    found += [Correction(p, "defective", named.get(p.name), mask=_mask(masks, p)) for p in defects]
    try:
        return found + (read_corrections(listed) if listed else [])
    except TeachingError as error:
        fail(str(error))


def _passed_from_records(target: str, model: Path, since: str | None, until: str | None) -> list[str]:
    """The image files of the latest parts the model's family passed that no one gave feedback on (at most
    MAX_PASSED of those still on disk), oldest first: its decision's normal side, as the records keep it."""
    from ..teaching import MAX_PASSED
    from ..teaching.versions import family
    from .records import open_records

    stem = family(model)[1]
    rows = open_records(target).passed_uncorrected(8 * MAX_PASSED, since=since, until=until)
    ours = [r for r in rows if r["model_id"] and family(Path(r["model_id"] + model.suffix))[1] == stem]
    files = [r["image_path"] for r in ours if r["image_path"] and Path(r["image_path"]).is_file()]
    return files[-MAX_PASSED:]


def _from_records(target: str, model: Path, since: str | None, until: str | None) -> list[Correction]:
    """The feedback in the records on inspections the model's family made of image files, as corrections (each
    named by its feedback row, so that what the family's log shows taught is not taught again)."""
    from ..teaching import Correction, TeachingError
    from ..teaching.corrections import CorrectionLog, feedback_verdict
    from ..teaching.versions import family, log_path
    from .records import open_records

    stem = family(model)[1]
    taught = {line.get("id") for line in CorrectionLog(log_path(model)).read()}
    kept, rows, offset = open_records(target), [], 0
    while page := kept.list_feedback(since=since, until=until, limit=1000, offset=offset):
        rows += [r for r in page if r["model_id"] and family(Path(r["model_id"] + model.suffix))[1] == stem]
        offset += len(page)
    found, unusable = [], {"no image file": 0, "no verdict": 0, "taught before": 0}
    for row in rows:
        verdict = feedback_verdict(row)
        why = "taught before" if f"feedback-{row['id']}" in taught else None
        why = why or ("no image file" if not row["image_path"] else "no verdict" if verdict is None else None)
        if why:
            unusable[why] += 1
            continue
        given = {"image": row["image_path"], "verdict": verdict, "type": row["defect_type"], "box": row["box"],
                 "mask": row["mask_path"], "inspection": row["inspection_id"], "id": f"feedback-{row['id']}"}  # fmt: skip
        try:
            found.append(Correction.from_dict(given, f"feedback {row['id']} on inspection {row['inspection_id']}"))
        except TeachingError as error:
            fail(str(error))
    skipped = ", ".join(f"{n} with {why}" for why, n in unusable.items() if n)
    console.print(
        f"{len(found)} of {len(rows)} feedback rows on {stem}'s inspections to teach"
        + (f" ({skipped})" if skipped else "")
    )
    return found


def _mask(folder: Path | None, image: Path) -> Path | None:
    """The image's mask in `folder`, if there is one."""
    from ..data import IMAGE_SUFFIXES

    if folder is None:
        return None
    for ending in MASK_ENDINGS:
        for suffix in sorted(IMAGE_SUFFIXES):
            if (candidate := folder / f"{image.stem}{ending}{suffix}").is_file():
                return candidate
    return None


def _types(path: Path, images: set[str]) -> dict[str, str]:
    """Image file name → defect type, from a JSON object or CSV lines; every name one of the `images`."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        fail(f"{path}: cannot be read ({error})")
    if path.suffix.lower() == ".json":
        try:
            named = json.loads(text)
        except json.JSONDecodeError as error:
            fail(f"{path}: not JSON ({error.msg}, line {error.lineno})")
        if not isinstance(named, dict) or not all(isinstance(v, str) and v.strip() for v in named.values()):
            fail(f"{path}: a JSON object of image file name → type name is expected")
    else:
        rows = [(n, row) for n, row in enumerate(csv.reader(text.splitlines()), 1) if "".join(row).strip()]
        bad = next((n for n, row in rows if len(row) != 2 or not row[1].strip()), None)
        if bad is not None:
            fail(f"{path}: line {bad} is not 'image file name,type'")
        named = {row[0].strip(): row[1].strip() for _, row in rows}
    unknown = sorted(set(named) - images)
    if unknown:
        fail(f"{path}: {unknown[0]!r} is not one of the --defect images")
    return named
