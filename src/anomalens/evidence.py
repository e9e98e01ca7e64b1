"""What a model's decision was calibrated on, kept in its file so that teaching can calibrate it again with no
refit (`calibration.calibrate`, the fit's own path): the normal images' scores as if new, a sketch of each
one's map, the synthetic anomalies' scores, the scores of defects a person labelled and of parts the line passed
that no one corrected (scored again at each teaching given them), and the first few references as uint8 (to make
synthetic anomalies of, and to train a head on, when the references themselves are gone).

A map is kept as its values at the quantile LEVELS, dense in the upper tail that the pixel thresholds read,
and expanded back to SKETCH_VALUES evenly spaced quantiles for calibrating: its peak exactly, its median and
its 0.999 quantile closely.

Labelled defects are better evidence of what a defect scores than synthetic ones: once there are
MIN_ANOMALIES of them they alone are the anomalous evidence; fewer join the synthetic ones, and may bring the
line down no lower than just above every normal score (`calibration.image_decision`)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np
import torch
from pydantic import BaseModel

from .calibration import METHODS, MIN_ANOMALIES, Calibration, DecisionRule, calibrate
from .fields import STRICT_STATE, TensorError, validated

LEVELS = np.array([0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995, 0.998, 0.999, 0.9995, 1])
SKETCH_VALUES = 1000  # values a sketch expands to: the pixel threshold is a 0.999 quantile
KEPT_PIXELS = 8  # references kept as uint8 (256 px: 192 KB each)


def sketch(maps: list[np.ndarray] | np.ndarray) -> np.ndarray:
    """(n, len(LEVELS)) each map's values at LEVELS."""
    return np.stack([np.quantile(np.asarray(m, np.float64).ravel(), LEVELS) for m in maps]).astype(np.float32)


def expanded(sketches: np.ndarray) -> list[np.ndarray]:
    """Each sketch as SKETCH_VALUES evenly spaced quantiles of its map, min and peak included."""
    levels = np.linspace(0, 1, SKETCH_VALUES)
    return [np.interp(levels, LEVELS, row).astype(np.float32) for row in sketches]


@dataclass(frozen=True)
class DecisionEvidence:
    normal_scores: np.ndarray  # (n,) float64
    normal_maps: np.ndarray  # (n', len(LEVELS)) sketches; n' ≤ n where only some maps are known
    method: str  # how the normal scores were obtained (`calibration.METHODS`)
    synthetic_scores: np.ndarray  # (m,) float64; none where the expert cannot score them so
    defect_scores: np.ndarray  # (d,) float64
    pixels: torch.Tensor | None  # (p, 3, S, S) uint8: memory images 0 … p − 1 (untiled references only)
    passed_scores: np.ndarray = field(default_factory=lambda: np.empty(0))  # (q,) float64: passed parts'

    @classmethod
    def of(cls, scores, maps, method: str, synthetic=None, pixels: torch.Tensor | None = None) -> DecisionEvidence:
        """The evidence a fit calibrated on (`synthetic`: None where there were none)."""
        kept = None if pixels is None else pixels[:KEPT_PIXELS].clone()
        synthetic = np.empty(0) if synthetic is None else np.asarray(synthetic, np.float64)
        return cls(np.asarray(scores, np.float64), sketch(maps), method, synthetic, np.empty(0), kept)

    def with_normal(self, scores, maps, pixels: torch.Tensor | None, first_id: int) -> DecisionEvidence:
        """More normal images (`first_id`: the memory id of the first, the others following). Their pixels are
        kept while the kept ones are memory images 0 … first_id − 1 and there is room."""
        method = "leave-one-out" if self.method == "self-similarity" else self.method
        kept = self.pixels
        if kept is not None and pixels is not None and len(kept) == first_id < KEPT_PIXELS:
            kept = torch.cat([kept, pixels[: KEPT_PIXELS - first_id]])
        normal = np.r_[self.normal_scores, np.asarray(scores, np.float64)]
        return replace(self, normal_scores=normal, normal_maps=np.r_[self.normal_maps, sketch(maps)],
                       method=method, pixels=kept)  # fmt: skip

    def with_maps(self, maps, method: str) -> DecisionEvidence:
        """The normal maps known now (their expert changed), in place of the ones before."""
        return replace(self, normal_maps=sketch(maps), method=method)

    def with_synthetic(self, scores) -> DecisionEvidence:
        return replace(self, synthetic_scores=np.empty(0) if scores is None else np.asarray(scores, np.float64))

    def with_passed(self, scores) -> DecisionEvidence:
        """Passed parts' scores, by the model as it now is, in place of any before (scored by an earlier version)."""
        return replace(self, passed_scores=np.asarray(scores, np.float64))

    def with_defects(self, scores) -> DecisionEvidence:
        return replace(self, defect_scores=np.r_[self.defect_scores, np.asarray(scores, np.float64)])

    def rescaled(self, median: float, scale: float) -> DecisionEvidence:
        """Every score as (score − median) / scale: an expert that normalises the scores it was fitted with."""
        return replace(
            self,
            normal_scores=(self.normal_scores - median) / scale,
            synthetic_scores=(self.synthetic_scores - median) / scale,
            defect_scores=(self.defect_scores - median) / scale,
            passed_scores=(self.passed_scores - median) / scale,
        )

    def anomalies(self) -> np.ndarray | None:
        """The synthetic anomalies' scores, with labelled defects' while too few to place the line alone."""
        defects = self.defect_scores
        found = np.r_[self.synthetic_scores, defects] if len(defects) < MIN_ANOMALIES else self.synthetic_scores
        return found if len(found) else None

    def calibrated(self, max_false_alarms: float | None = None, rule: DecisionRule = DecisionRule()) -> Calibration:
        """The decision on this evidence, as the fit places it (`rule`: other constants, as a benchmark tries)."""
        maps = expanded(self.normal_maps)
        labelled = self.defect_scores if len(self.defect_scores) else None
        anomalies = self.anomalies()
        passed = self.passed_scores
        return calibrate(self.normal_scores, maps, self.method, anomalies, max_false_alarms, rule, labelled, passed)

    def state(self) -> tuple[dict, dict[str, torch.Tensor]]:
        """JSON fields and tensors, for the model file ("evidence" and "evidence.<tensor>")."""
        arrays = {
            "normal_scores": torch.from_numpy(self.normal_scores),
            "normal_maps": torch.from_numpy(self.normal_maps),
            "synthetic_scores": torch.from_numpy(self.synthetic_scores),
            "defect_scores": torch.from_numpy(self.defect_scores),
            "pixels": self.pixels,
            "passed_scores": torch.from_numpy(self.passed_scores),
        }
        tensors = {f"evidence.{k}": v.contiguous() for k, v in arrays.items() if v is not None and v.numel()}
        return {"method": self.method}, tensors

    @classmethod
    def from_state(cls, config: dict, tensors: dict[str, torch.Tensor], size: int) -> DecisionEvidence:
        """Rebuilt from `state()` (tensors named as there) once each is usable: finite scores, a sketch of
        len(LEVELS) values per map, pixels of the model's input `size`."""
        state = validated(EvidenceState, config)
        normal = _scores(tensors, "evidence.normal_scores", required=True)
        maps = tensors.get("evidence.normal_maps")
        if maps is None or maps.dim() != 2 or maps.shape[1] != len(LEVELS) or not len(maps) or not _finite(maps):
            found = "missing" if maps is None else f"{maps.dtype} {list(maps.shape)}"
            raise TensorError("evidence.normal_maps", f"must be finite rows of {len(LEVELS)} numbers, not {found}")
        pixels = tensors.get("evidence.pixels")
        if pixels is not None and (pixels.dtype != torch.uint8 or list(pixels.shape[1:]) != [3, size, size]):
            shape = f"[n, 3, {size}, {size}] (config.image_size {size})"  # a check across fields: name both
            problem = f"must be uint8 images {shape}, not {pixels.dtype} {list(pixels.shape)}"
            raise TensorError("evidence.pixels", problem)
        synthetic = _scores(tensors, "evidence.synthetic_scores")
        defects = _scores(tensors, "evidence.defect_scores")
        passed = _scores(tensors, "evidence.passed_scores")
        return cls(normal, maps.float().numpy(), state.method, synthetic, defects, pixels, passed)


class EvidenceState(BaseModel):
    model_config = STRICT_STATE
    method: Literal[METHODS]  # type: ignore[valid-type]


def _finite(tensor: torch.Tensor) -> bool:
    return tensor.is_floating_point() and bool(torch.isfinite(tensor).all())


def _scores(tensors: dict[str, torch.Tensor], name: str, required: bool = False) -> np.ndarray:
    """The 1-D float tensor `name` as float64 (absent: none, unless `required`)."""
    tensor = tensors.get(name)
    if tensor is None and not required:
        return np.empty(0)
    if tensor is None or tensor.dim() != 1 or not len(tensor) or not _finite(tensor):
        found = "missing" if tensor is None else f"{tensor.dtype} {list(tensor.shape)}"
        raise TensorError(name, f"must be finite scores (1 dimension), not {found}")
    return tensor.double().numpy()
