"""`--scale auto`: the cheapest layout that still sees small defects, chosen from normal images alone.

Probes fit on a few of the normal images and must rank SEPARATED of the held-out ones with synthetic
defects of DEFECT_AREA, at least MIN_DEFECT_PX a side (`synth`, smooth noise; PLANTS per image) above every
held-out normal one (`ScaleProbe` holds them). Candidates go from the squashed whole image to native pixels
(`preprocessing.candidate_scales`), a finer one only while its expected time (4× the last: twice the
resolution) fits BUDGET_S. None passing: the finest probed (FALLBACK; small defects are what auto is for).
The constants were chosen leave-one-set-out over the five shared sets by
bench/scale_choice.py (bench/scale_choice.md), which also shows what no probe of this kind can do: on two
products of the same 512-px square layout the probes rank the layouts alike while their real defects rank
them oppositely."""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from typing import Protocol

import numpy as np

from .config import InspectorConfig
from .data import as_float, to_uint8
from .preprocessing import SQUASH, Decoded, ImageInput, candidate_scales, decode_ahead
from .result import InspectionResult
from .synth import synthesize

IMAGES = (6, 4)  # normal images the probes fit on, and hold out to plant defects in
DEFECT_AREA = 0.0001  # … PLANTS defects each of this share of the image (≈ 20 × 20 px at 2048 px) …
MIN_DEFECT_PX = 12  # … and at least this many pixels a side (smaller is below what any scale resolves), …
PLANTS = 4
SEPARATED = 0.9  # … this share of them must score above every held-out normal image …
BUDGET_S = 300.0  # … within this many seconds of probing
FALLBACK = "finest"  # none passing: the finest layout probed ("most": the one that separated most)

Probe = tuple[str | float, float, float]  # (scale, share of planted defects separated, seconds)


class Fittable(Protocol):  # the Inspector, as a probe uses it
    config: InspectorConfig

    def fit(self, images: list[Decoded]) -> Fittable: ...

    def iter_predict(self, images: Iterable[ImageInput]) -> Iterator[InspectionResult]: ...


@dataclass(frozen=True)
class ScaleProbe:
    """What the probes plant and ask for. Defaults chosen leave-one-set-out by bench/scale_choice.py."""

    defect_area: float = DEFECT_AREA
    min_defect_px: int = MIN_DEFECT_PX
    separated: float = SEPARATED
    fallback: str = FALLBACK  # none separating that share: "most" (the one that separated most) or "finest"


def choose_scale(
    inspector: Fittable, images: list[ImageInput], probe: ScaleProbe = ScaleProbe()
) -> tuple[str | float, list[Probe]]:
    """The scale to fit `inspector` at, and each probe's (scale, share separated, seconds): the cheapest whose
        share reaches `probe.separated`, else the one that separated most (the cheaper on ties). The constants were chosen leave-one-set-out over the five shared sets by
    bench/scale_choice.py (bench/scale_choice.md), which also shows what no probe of this kind can do: on two
    products of the same 512-px square layout the probes rank the layouts alike while their real defects rank
    them oppositely."""
    probes = probe_scales(inspector, images, probe, stop_at=probe.separated)
    return (picked(probes, probe)[0] if probes else SQUASH), probes


def picked(probes: list[Probe], probe: ScaleProbe = ScaleProbe()) -> Probe:
    """The probe `choose_scale` goes by: the first (cheapest) to separate `probe.separated` of the planted
    defects, else by `probe.fallback` the one that separated most (the cheaper on ties) or the finest probed."""
    passing = next((p for p in probes if p[1] >= probe.separated), None)
    return passing or (probes[-1] if probe.fallback == "finest" else max(probes, key=lambda p: p[1]))


def probe_scales(
    inspector: Fittable, images: list[ImageInput], probe: ScaleProbe = ScaleProbe(), stop_at: float = math.inf
) -> list[Probe]:
    """Each candidate layout's probe, cheapest first, until one separates `stop_at` of the planted defects or
    the next would overrun BUDGET_S. Probes are copies of the (unfitted) inspector: they share its backbone
    and leave it as it was. None with fewer than three readable images (too few to hold any out)."""
    sample = [d for _, d in decode_ahead(images[: sum(IMAGES)], 2, max_side=None) if isinstance(d, Decoded)]
    if len(sample) < 3:
        return []
    fit = sample[: min(IMAGES[0], len(sample) - 2)]
    held = sample[len(fit) :]
    seed = inspector.config.seed

    def planted() -> Iterator[Decoded]:  # the same defects for every probe, made one at a time (uint8)
        rng = np.random.default_rng(seed)
        for i, entry in enumerate(held):
            target = as_float(entry.image)
            side = max(math.sqrt(probe.defect_area), probe.min_defect_px / min(target.shape[:2]))
            everywhere = np.ones(target.shape[:2], bool)
            for k in range(PLANTS):
                defect = synthesize(target, target, rng, mode="noise", object_mask=everywhere, side=(side, side))
                yield Decoded(f"planted[{i}.{k}]", to_uint8(defect.image), entry.size)

    short_side = int(np.median([min(entry.image.shape[:2]) for entry in sample]))
    long_side = int(np.median([max(entry.image.shape[:2]) for entry in sample]))
    probes: list[Probe] = []
    started = time.perf_counter()
    for scale in candidate_scales(short_side, long_side, inspector.config.image_size):
        if probes and time.perf_counter() - started + 4 * probes[-1][2] > BUDGET_S:
            break
        probe_started = time.perf_counter()
        trial = copy.copy(inspector)
        trial.config = replace(inspector.config, scale=scale)
        trial.fit(fit)
        normal_top = max(float(r.score or 0) for r in trial.iter_predict(held))
        separated = float(np.mean([float(r.score or 0) > normal_top for r in trial.iter_predict(planted())]))
        probes.append((scale, separated, time.perf_counter() - probe_started))
        if separated >= stop_at:
            break
    return probes


def scale_reason(probes: list[Probe], probe: ScaleProbe = ScaleProbe()) -> str:
    """Why `choose_scale` picked the layout it did, in words, from its probes."""
    planted = f"synthetic defects of {probe.defect_area:.2%} of the image, at least {probe.min_defect_px} px a side"
    chosen, separated, _ = picked(probes, probe)
    if separated >= probe.separated:
        cheaper = "" if chosen == probes[0][0] else ", where every cheaper one found fewer"
        return f"the cheapest layout that found {separated:.0%} of {planted} (≥ {probe.separated:.0%} asked){cheaper}"
    chosen_as = "the finest probed" if probe.fallback == "finest" else "the one that found the most"
    return f"no layout found {probe.separated:.0%} of {planted}; this is {chosen_as} ({separated:.0%})"
