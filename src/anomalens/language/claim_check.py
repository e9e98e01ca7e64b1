"""Each claim of an answer checked against the findings, with a stated tolerance, and the false premise of a
question (a defect it takes for granted that the findings deny). The guard checks every answer with it and the
composer answers a question's false premise."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from .claim_words import DEFECT_NOUNS
from .claims import Claim, _cells

if TYPE_CHECKING:  # the image findings import torch (defect types)
    from .findings import Findings

# Tolerances a claim is checked with: an area may be off by half a percentage point or half its size, a box
# side by 2 pixels, a stated confidence by 10 points; certainty words follow the composer's levels.
AREA_ABSOLUTE, AREA_RELATIVE = 0.005, 0.5
BOX_PIXELS = 2
CONFIDENCE_POINTS = 0.10
HIGH, MODERATE = 0.90, 0.70


def compatible(cell: str, expert_cells: Iterable[str]) -> bool:
    """ "left" agrees with "top left" and "bottom left" (a coarser name for the same place)."""
    return any(cell == expert or cell in expert.split() for expert in expert_cells)


def contradiction(claim: Claim, f: Findings) -> str | None:
    """Why a claim contradicts the findings (None: it holds, within the stated tolerances)."""
    check = _CHECKS.get(claim.kind)
    return check(claim.value, f) if check else None


def _regions_at(f: Findings) -> list[str]:
    return [r.location for r in f.regions] if f.anomalous else []


def _verdict_problem(value, f: Findings) -> str | None:
    if value == f.anomalous:
        return None
    said = "there is a defect" if value else "there is no defect"
    return f"says {said}; the vision expert found {'one' if f.anomalous else 'none'}"


def _location_problem(value, f: Findings) -> str | None:
    if not f.anomalous:
        return f"places a defect at the {value}; the vision expert found none"
    cells = _regions_at(f)
    if not compatible(str(value), cells):
        return f"places the defect at the {value}; the vision expert's regions are at the " + " and the ".join(cells)
    return None


def _references_problem(value, f: Findings) -> str | None:
    return f"speaks of {value} normal images; the decision had {f.n_normal}" if value != f.n_normal else None


def _absent_problem(value, f: Findings) -> str | None:
    if compatible(str(value), _regions_at(f)):
        return f"says there is no defect at the {value}; the vision expert found one there"
    return None


def _peak_problem(value, f: Findings) -> str | None:
    if not f.anomalous and not compatible(str(value), [f.peak_location]):
        return f"puts the most unusual spot at the {value}; it is at the {f.peak_location}"
    return None


def _box_problem(value, f: Findings) -> str | None:
    width, height = value
    if any(
        abs(width - (r.box[2] - r.box[0])) <= BOX_PIXELS and abs(height - (r.box[3] - r.box[1])) <= BOX_PIXELS
        for r in f.regions
    ):
        return None
    return f"gives a box of {width} × {height} pixels; no region has that size"


def _physical_problem(value, f: Findings) -> str | None:
    return f"gives a physical size ({value}); the findings have no scale, only image pixels"


def _count_problem(value, f: Findings) -> str | None:
    found = len(f.regions) if f.anomalous else 0
    return f"counts {value} regions; the vision expert found {found}" if value != found else None


def _type_problem(value, f: Findings) -> str | None:
    known = [g for g in (f.defect_type.name, f.defect_type.runner_up) if g] if f.defect_type else []
    if f.anomalous and any(_same_type(str(value), name) for name in known):
        return None
    return f"names the defect a {value}; " + (
        f"the defect-type expert says {known[0]}" if known else "no defect-type expert named it"
    )


def _threshold_problem(value, f: Findings) -> str | None:
    if value == f.anomalous:
        return None
    return f"puts the score {'above' if value else 'below'} the threshold; it is {'above' if f.anomalous else 'below'}"


def _comparison_problem(value, f: Findings) -> str | None:
    if not f.n_normal:
        return "compares it with references; the decision had none (zero-shot)"
    if value != f.anomalous:
        return f"says it {'differs from' if value else 'matches'} the references; the vision expert found the opposite"
    return None


def _area_problem(value: tuple[float, str], f: Findings) -> str | None:
    claimed, bound = value
    areas = [r.area_fraction for r in f.regions] if f.anomalous else [0.0]
    areas.append(sum(areas))
    if bound == "less than":
        holds = any(area <= claimed for area in areas)
    else:
        holds = any(abs(claimed - area) <= max(AREA_ABSOLUTE, AREA_RELATIVE * area) for area in areas)
    if holds:
        return None
    actual = ", ".join(f"{a:.1%}" for a in areas[:-1])
    return f"gives an area of {claimed:.2%}; the regions cover {actual}" + (
        f" ({areas[-1]:.1%} together)" if len(areas) > 2 else ""
    )


def _confidence_problem(value: tuple[float | None, str | None, bool], f: Findings) -> str | None:
    number, level, of_defect = value
    if number is not None:
        actual = f.probability if of_defect else f.confidence
        if abs(number - actual) > CONFIDENCE_POINTS:
            what = "chance of a defect" if of_defect else "confidence"
            return f"states a {what} of {number:.0%}; the calibrated value is {actual:.0%}"
        return None
    holds = {
        "high": f.confidence >= HIGH,
        "moderate": MODERATE <= f.confidence < HIGH,
        "low": f.confidence < HIGH,
    }[str(level)]
    return None if holds else f"says its confidence is {level}; it is {f.confidence:.0%}"


def _same_type(said: str, name: str) -> bool:
    said, name = said.lower().rstrip("s"), name.lower().rstrip("s")
    return said == name or said in name.split() or name in said.split()


_CHECKS: dict[str, Callable[..., str | None]] = {  # claim kind → why it contradicts the findings (None: it holds)
    "verdict": _verdict_problem,
    "reply": _verdict_problem,
    "location": _location_problem,
    "references": _references_problem,
    "absent": _absent_problem,
    "peak": _peak_problem,
    "area": _area_problem,
    "box": _box_problem,
    "physical": _physical_problem,
    "count": _count_problem,
    "confidence": _confidence_problem,
    "type": _type_problem,
    "threshold": _threshold_problem,
    "reference": _comparison_problem,
}


def false_premise(question: str, f: Findings) -> list[str]:
    """What a question takes for granted that the findings deny: the places it puts a defect where there is
    none ("the scratch on the left — how long is it?"), or ["anything"] when it assumes a defect on an image
    without one ("how long is the crack?"). Empty: no false premise."""
    lowered = question.lower()
    if re.search(r"^\W*(is|are|does|do|did|any|has|have|was|were|can|could|should|would|will|may|must)\b", lowered):
        return []  # a yes/no question asks, it does not assume
    noun = re.search(rf"\b(the|this|that|these|those)\s+(\w+\s+)?({DEFECT_NOUNS})\b", lowered)
    if not noun:
        return []
    if not f.anomalous:
        return ["anything"]
    cells = [cell for _, cell in _cells(lowered)]
    return [cell for cell in cells if not compatible(cell, [r.location for r in f.regions])]
