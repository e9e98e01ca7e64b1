"""AnomaLens: industrial visual anomaly inspection — vision experts, calibrated decisions and
plain-language answers, offline on a CPU.

The names below are imported when first used, so that `anomalens.deploy` (the ONNX runtime) loads without
torch, which the experts and the inspector need."""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

from .version import __version__

if TYPE_CHECKING:
    from .experts import Expert, ExpertInput, ExpertSettings, NormalEvidence, NormalImages
    from .experts import register as register_expert
    from .inspector import InspectionResult, Inspector
    from .regions import Region

_WHERE = {  # public name → (module, its name there)
    "Expert": (".experts", "Expert"),
    "ExpertInput": (".experts", "ExpertInput"),
    "ExpertSettings": (".experts", "ExpertSettings"),
    "NormalEvidence": (".experts", "NormalEvidence"),
    "NormalImages": (".experts", "NormalImages"),
    "register_expert": (".experts", "register"),
    "InspectionResult": (".inspector", "InspectionResult"),
    "Inspector": (".inspector", "Inspector"),
    "Region": (".regions", "Region"),
}

__all__ = [
    "Expert",
    "ExpertInput",
    "ExpertSettings",
    "InspectionResult",
    "Inspector",
    "NormalEvidence",
    "NormalImages",
    "Region",
    "__version__",
    "register_expert",
]


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module 'anomalens' has no attribute {name!r}")
    module, attribute = _WHERE[name]
    return getattr(import_module(module, __name__), attribute)
