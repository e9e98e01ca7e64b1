"""`anomalens inspect`: any kind of data, each file through the route that reads its kind (images, time series,
or a route registered from outside the package); formatted here, routed by `routes.inspect_files`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape
from rich.table import Table

from .common import app, console, fail
from .files import fresh_output_dir


def listed_files(inputs: list[Path]) -> list[Path]:
    """Files as given, folders expanded to the files they hold (each routed by its kind)."""
    files: list[Path] = []
    for item in inputs:
        files += sorted(p for p in item.iterdir() if p.is_file()) if item.is_dir() else [item]
    return files


@app.command("inspect")
def inspect_any(
    inputs: Annotated[list[Path], typer.Argument(metavar="FILES", help="Files or folders, of any kind a route reads.")],
    reference: Annotated[
        Optional[Path],
        typer.Option(
            help="What normal looks like, in the route's terms: a model file or normal images (images), "
            "a normal recording (series). Default: zero-shot (images), each series' own start."
        ),
    ] = None,
    route: Annotated[Optional[str], typer.Option(help="A route's name (default: each file's by its kind).")] = None,
    out: Annotated[Optional[Path], typer.Option(help="Folder for findings.json.")] = None,
    overwrite: Annotated[bool, typer.Option(help="Write into a non-empty --out folder.")] = False,
) -> None:
    """Inspect files of any kind: a verdict, how sure and where for each, by the route that reads it."""
    from ..routes import inspect_files

    folder = fresh_output_dir(out, overwrite, "inspect")
    try:
        findings = [f.to_dict() for f in inspect_files(listed_files(inputs), reference, route)]
    except ValueError as error:
        fail(str(error))
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "findings.json").write_text(json.dumps(findings, indent=1, default=str))
    console.print(findings_table(findings))
    console.print(f"findings in {escape(str(folder / 'findings.json'))}")
    if not any(f["ok"] for f in findings):
        raise typer.Exit(1)


def findings_table(findings: list[dict]) -> Table:
    table = Table("file", "route", "verdict", "P(defect)", "where")
    for f in findings:
        if not f["ok"]:
            table.add_row(escape(f["source"]), f["route"], "[red]error[/red]", "", escape(f["error"] or ""))
            continue
        verdict = "[red]anomalous[/red]" if f["anomalous"] else "[green]normal[/green]"
        chance = f"{f['probability']:.2f}" if f["probability"] is not None else ""
        table.add_row(escape(f["source"]), f["route"], verdict, chance, escape(f["where"]))
    return table
