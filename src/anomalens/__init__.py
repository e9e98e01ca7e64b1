"""AnomaLens: industrial visual anomaly inspection — vision experts, calibrated decisions and
plain-language answers, offline on a CPU."""

__version__ = "0.1.0"

from .inspector import InspectionResult, Inspector  # noqa: E402
from .regions import Region  # noqa: E402

__all__ = ["InspectionResult", "Inspector", "Region", "__version__"]
