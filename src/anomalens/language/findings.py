"""The facts an answer may state about one image, taken from an inspection result: the verdict, how
sure, where (regions on AnomalyGPT's 3×3 grid), how large, what the decision was calibrated on, and the
product's class and normality criteria. Every backend is given these and only these."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..experts.defect_types import DefectGuess
from ..regions import Region, grid_location
from ..result import InspectionResult
from .criteria import Criteria


@dataclass(frozen=True)
class Findings:
    source: str
    anomalous: bool
    probability: float
    confidence: float
    score: float
    threshold: float  # image threshold calibrated on normal images
    scale: float  # spread (σ) of normal image scores
    regions: tuple[Region, ...]
    peak_location: str  # grid cell of the map's maximum, defect or not
    image_size: tuple[int, int]  # width, height
    expert: str = ""
    n_normal: int = 0  # normal images the decision was calibrated on (0: zero-shot)
    references: tuple[str, ...] = ()  # names of the reference images, when few-shot
    nearest_reference: str = ""  # the reference image most like this one, when known
    normal_peak: float | None = None  # the highest map peak normal images reach (calibration)
    class_name: str = ""
    criteria: Criteria | None = None
    defect_type: DefectGuess | None = None

    @property
    def subject(self) -> str:
        return self.class_name or (self.criteria.name if self.criteria else "") or "object"

    @property
    def type_names(self) -> list[str]:
        """The defect types this product is known to have: its criteria's, and the defect-type expert's guesses."""
        names = [d.name for d in self.criteria.defects] if self.criteria else []
        guessed = (self.defect_type.name, self.defect_type.runner_up) if self.defect_type else ()
        return names + [n for n in guessed if n]

    def to_dict(self) -> dict:
        return {
            "source": self.source,
            "anomalous": self.anomalous,
            "probability": self.probability,
            "confidence": self.confidence,
            "score": self.score,
            "threshold": self.threshold,
            "regions": [r.to_dict() for r in self.regions],
            "peak_location": self.peak_location,
            "image_size": list(self.image_size),
            "expert": self.expert,
            "n_normal": self.n_normal,
            "references": list(self.references),
            "nearest_reference": self.nearest_reference,
            "class_name": self.class_name,
            "criteria": self.criteria.to_dict() if self.criteria else None,
            "defect_type": None
            if self.defect_type is None
            else {
                "name": self.defect_type.name,
                "similarity": self.defect_type.similarity,
                "runner_up": self.defect_type.runner_up,
            },
        }

    def as_text(self) -> str:
        """The facts as short lines for a language model's prompt."""
        lines = [f"Product: {self.subject}."]
        if self.criteria and self.criteria.description:
            lines.append(f"A normal {self.subject}: {self.criteria.description}")
        if self.criteria and self.criteria.defects:
            known = "; ".join(
                f"{d.name}" + (f" ({d.description})" if d.description else "") for d in self.criteria.defects
            )
            lines.append(f"Known defect types: {known}.")
        basis = (
            f"calibrated on {self.n_normal} normal image{'s' * (self.n_normal != 1)}"
            if self.n_normal
            else "zero-shot (no normal references)"
        )
        lines.append(
            f"Vision expert ({self.expert or 'anomaly detector'}, {basis}) verdict: "
            + ("DEFECT" if self.anomalous else "NO DEFECT")
            + f", confidence {self.confidence:.0%} (score {self.score:.3g}, threshold {self.threshold:.3g})."
        )
        for i, region in enumerate(self.regions, 1):
            lines.append(
                f"Region {i}: at the {region.location} of the image, {region.area_fraction:.2%} of the "
                f"image, box x {region.box[0]}–{region.box[2]}, y {region.box[1]}–{region.box[3]} px."
            )
        if not self.regions:
            lines.append(f"No anomalous region. The most unusual spot is at the {self.peak_location}.")
        if self.defect_type:
            lines.append(
                f"Defect-type expert: most likely {self.defect_type.name} "
                f"(similarity {self.defect_type.similarity:.2f})."
            )
        return "\n".join(lines)


def findings_from(
    result: InspectionResult,
    calibration=None,
    *,
    expert: str = "",
    class_name: str = "",
    criteria: Criteria | None = None,
    references: tuple[str, ...] = (),
    defect_type: DefectGuess | None = None,
) -> Findings:
    """Findings for a successful inspection result; its calibration (or `calibration`, when given) adds what
    the decision was based on."""
    if not result.ok:
        raise ValueError(f"{result.source}: no findings for an image that could not be inspected: {result.error}")
    calibration = calibration or result.calibration
    # set on every successful result
    assert result.image_size is not None and result.anomaly_map is not None and result.score is not None
    assert result.probability is not None and result.confidence is not None
    width, height = result.image_size
    peak = np.unravel_index(int(np.argmax(result.anomaly_map)), result.anomaly_map.shape)
    map_height, map_width = result.anomaly_map.shape
    return Findings(
        source=result.source,
        anomalous=bool(result.anomalous),
        probability=float(result.probability),
        confidence=float(result.confidence),
        score=float(result.score),
        threshold=float(calibration.image_threshold) if calibration else float("nan"),
        scale=float(calibration.image_scale) if calibration else float("nan"),
        regions=tuple(result.regions),
        peak_location=grid_location(int(peak[1]), int(peak[0]), map_width, map_height),  # the map's own grid
        image_size=(width, height),
        expert=expert or result.expert,
        n_normal=calibration.n_normal if calibration else 0,
        references=tuple(references),
        nearest_reference=result.nearest_reference,
        normal_peak=calibration.region_threshold if calibration else None,
        class_name=class_name or (criteria.name if criteria else ""),
        criteria=criteria,
        defect_type=defect_type,
    )
