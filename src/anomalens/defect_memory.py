"""Defects a person marked, kept beside the normal memory: one taught defect finds the next one like it.

Teaching a defect with a box or mask keeps its PER_DEFECT patches that lie farthest from the normal memory
inside the marked region, as the expert's memory holds patches (`Expert.memory_rows`). At inspection a patch
is like a taught defect where it lies nearer one of those patches than the normal memory's nearest
(d_defect < MATCH_RATIO · d_normal, both `Expert.row_distances`) and its map is above the normal pixel floor
(plain normal texture never matches), in a model of at least MIN_REFERENCES normal images. MATCH_RATIO is chosen leave-one-set-out among ratios up to 1 (a patch
nearer normal is not like a defect): a margin below 1 found fewer defects there (0.95: 3.5 points of recall
fewer on battery_weld) and spared few false alarms (0.8 points of the good images on magnetic_tile).

Such an image's map is raised there to at least the pixel threshold (to its own peak, so it is outlined) and
its score to at least the image threshold, so the verdict flips, and the result says which taught image it is
like. Nothing else moves: an image with no matching patch scores exactly as
before, and a known defect flags only patches that match it. Saved in the model file beside the rest of
teaching (header names, one tensor per memory stage)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, Field

from .calibration import Calibration
from .experts import Expert
from .fields import STRICT_STATE, TensorError, validated

PER_DEFECT = 8  # patches kept of one marked defect
MATCH_RATIO = 1.0  # d_defect / d_normal below this: like a taught defect (bench/defect_memory.md)
# … and only with at least this many normal images in the model: with fewer, the normal memory holds so little of
# normal variation that ordinary patches lie nearer a taught defect's (a one-reference metal plate taught three
# boxed defects flagged every good part; battery_weld at 2 and 4 references: 0.305 and 0.067 more of its good
# welds flagged). Chosen set by set left out with bench/defect_memory.py --shots (bench/defect_memory.md)
MIN_REFERENCES = 8
WAITING = f"the marked defects are kept, and find the next like them once the model has {MIN_REFERENCES} normal images"
TENSOR = "defect_memory.stage"  # + the stage's number


@dataclass(frozen=True)
class DefectMemory:
    """Known-defect patches: `rows` per memory stage (N, C_i), and the taught image each came from."""

    names: tuple[str, ...]
    rows: tuple[torch.Tensor, ...]

    @staticmethod
    def of(expert: Expert, features: list[torch.Tensor], regions: torch.Tensor, names: list[str]) -> DefectMemory:
        """The patches of marked defects (`regions` (n, S, S) at the input size) the memory is farthest from."""
        distances = expert.row_distances(features)  # (n, h, w)
        n, h, w = distances.shape
        marked = F.adaptive_max_pool2d(regions[:, None].float(), (h, w))[:, 0].flatten(1) > 0
        ranked = distances.flatten(1).masked_fill(~marked, -float("inf"))
        kept = ranked.topk(min(PER_DEFECT, h * w), dim=1)
        chosen = [(i, j) for i in range(n) for j, v in zip(kept.indices[i].tolist(), kept.values[i]) if v > -np.inf]
        images, cells = (torch.tensor([c[k] for c in chosen], dtype=torch.long) for k in (0, 1))
        rows = tuple(stage[images, cells].float().contiguous() for stage in expert.memory_rows(features))
        return DefectMemory(tuple(names[i] for i, _ in chosen), rows)

    def joined(self, other: DefectMemory) -> DefectMemory:
        """This memory and `other`'s patches after it."""
        rows = tuple(torch.cat([mine, theirs]) for mine, theirs in zip(self.rows, other.rows))
        return DefectMemory(self.names + other.names, rows)

    def matches(
        self, expert: Expert, features: list[torch.Tensor], patch_maps: torch.Tensor, floor: float
    ) -> tuple[torch.Tensor, list[str]]:
        """(B, h, w) the patches like a taught defect, and per image the taught image it is most like ("": none)."""
        d_normal = expert.row_distances(features)
        taught = list(dict.fromkeys(self.names))
        ratios = torch.stack([expert.row_distances(features, self._rows_of(name)) for name in taught]) / d_normal
        best, which = ratios.min(0)  # (B, h, w): the taught image each patch is most like
        matched = (best < MATCH_RATIO) & (patch_maps > floor)
        likest = best.masked_fill(~matched, float("inf")).flatten(1).argmin(1)
        names = [taught[int(which[i].flatten()[cell])] if matched[i].any() else "" for i, cell in enumerate(likest)]
        return matched, names

    def _rows_of(self, name: str) -> list[torch.Tensor]:
        own = torch.tensor([n == name for n in self.names])
        return [stage[own] for stage in self.rows]

    @torch.inference_mode()  # the scores may be an inference tensor (a memory expert's), raised in place
    def flag(
        self,
        expert: Expert,
        features: list[torch.Tensor],
        maps: tuple[torch.Tensor, np.ndarray],
        scores: torch.Tensor,
        calibration: Calibration,
    ) -> list[str]:
        """Raises, in place, the smoothed maps (`maps`: patch maps, smoothed maps) and `scores` of images like a
        taught defect where they match it (see the module); per image, why in words ("" where it is not)."""
        patch_maps, smoothed = maps
        matched, names = self.matches(expert, features, patch_maps, calibration.pixel_floor)
        for i, name in enumerate(names):
            if not name:
                continue
            where = F.interpolate(matched[i][None, None].float(), size=smoothed.shape[1:], mode="nearest")[0, 0] > 0
            peak = max(calibration.pixel_threshold, calibration.region_threshold, float(smoothed[i].max()))
            smoothed[i][where.numpy()] = peak  # at the image's own peak: outlined whatever else it shows
            scores[i] = torch.maximum(scores[i], rounded_up(calibration.image_threshold, scores.dtype))
        return [f"like the defect marked on {name}" if name else "" for name in names]

    def state(self) -> tuple[dict, dict[str, torch.Tensor]]:
        return {"names": list(self.names)}, {f"{TENSOR}{i}": rows for i, rows in enumerate(self.rows)}

    @classmethod
    def from_state(cls, config: dict, tensors: dict[str, torch.Tensor]) -> DefectMemory:
        """Rebuilt from `state()`: a row for every name in each stage, finite numbers."""
        state = validated(DefectMemoryState, config)
        count = sum(name.startswith(TENSOR) for name in tensors)
        rows = tuple(tensors.get(f"{TENSOR}{i}") for i in range(max(count, 1)))
        for i, stage in enumerate(rows):
            if stage is None or stage.dim() != 2 or len(stage) != len(state.names) or not stage.is_floating_point():
                found = "missing" if stage is None else f"{stage.dtype} {list(stage.shape)}"
                raise TensorError(
                    f"{TENSOR}{i}", f"must hold a row of numbers per name ({len(state.names)}), not {found}"
                )
            if not torch.isfinite(stage).all():
                raise TensorError(f"{TENSOR}{i}", "must be finite numbers")
        return cls(tuple(state.names), tuple(stage for stage in rows if stage is not None))


def rounded_up(value: float, dtype: torch.dtype) -> torch.Tensor:
    """`value` in `dtype`, rounded up: a float32 score raised to a float64 threshold is not below it."""
    stored = torch.tensor(value, dtype=dtype)
    return stored if float(stored) >= value else torch.nextafter(stored, torch.tensor(float("inf"), dtype=dtype))


def flagged(
    memory: DefectMemory | None,
    expert: Expert,
    features: list[torch.Tensor] | None,
    maps: tuple[torch.Tensor, np.ndarray],
    scores: torch.Tensor,
    calibration: Calibration | None,
) -> list[str]:
    """`DefectMemory.flag`, where the model has a defect memory, MIN_REFERENCES normal images, a calibration and
    features: else each image's "" and nothing raised."""
    if memory is None or features is None or calibration is None or calibration.n_normal < MIN_REFERENCES:
        return [""] * len(scores)
    return memory.flag(expert, features, maps, scores, calibration)


class DefectMemoryState(BaseModel):
    model_config = STRICT_STATE
    names: Annotated[list[Annotated[str, Field(min_length=1)]], Field(min_length=1)]
