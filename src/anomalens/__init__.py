"""AnomaLens: industrial visual anomaly inspection — vision experts, calibrated decisions and
plain-language answers, offline on a CPU."""

from .experts import Expert, ExpertInput, NormalEvidence, NormalImages
from .experts import register as register_expert
from .inspector import InspectionResult, Inspector
from .regions import Region
from .version import __version__

__all__ = [
    "Expert",
    "ExpertInput",
    "InspectionResult",
    "Inspector",
    "NormalEvidence",
    "NormalImages",
    "Region",
    "__version__",
    "register_expert",
]
