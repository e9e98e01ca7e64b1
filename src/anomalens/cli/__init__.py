"""Command line: ``anomalens fit | teach | detect | inspect | eval | chat | serve | synth | demo | info | records | series``, a module per
command group; each calls the inspection service and wires nothing itself."""

from rich.markup import escape

from ..routes import load_plugins
from . import chat, evaluate, inspect, models, records, routes, series, serve, synth, teach  # noqa: F401  (each registers its commands)
from .common import app, err
from .files import sample_root

try:
    load_plugins()  # what ANOMALENS_PLUGINS names is registered before any command runs
except ValueError as error:  # before any command: no typer context to exit through
    err.print(f"[bold red]error:[/] {escape(str(error))}")
    raise SystemExit(2) from None

__all__ = ["app", "sample_root"]
