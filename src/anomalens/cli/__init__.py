"""Command line: ``anomalens fit | teach | detect | inspect | eval | chat | serve | synth | demo | info | records | series``, a module per
command group; each calls the inspection service and wires nothing itself."""

from . import chat, evaluate, inspect, models, records, routes, series, serve, synth, teach  # noqa: F401  (each registers its commands)
from .common import app
from .files import sample_root

__all__ = ["app", "sample_root"]
