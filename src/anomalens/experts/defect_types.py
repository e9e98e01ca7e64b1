"""Defect-type classifier (not an expert: it finds no anomaly, it names the kind of one an expert found): names
what a defect most likely is from a few labelled examples per type (e.g. `defects/crack/*.png`,
`defects/blowhole/*.png`). The anomaly map says where an image departs from normal;
this describes that place by its backbone features and finds the closest type.

A descriptor is the anomaly-weighted mean of the image's patch features: patches weigh by how far their
anomaly exceeds the image's median patch, so the defect, not the intact surface around it, is described.
Each type's prototype is the mean of its examples' descriptors; a query goes to the nearest prototype by
cosine similarity (a nearest-class-mean classifier, robust with 1–10 examples per type).

Typed defects a person teaches a model are kept in its file (`DefectExamples`), so the model names types
from them wherever it is loaded; the head is made from them once two types are known."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Annotated

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, Field

from ..features import flatten_patches
from ..fields import STRICT_STATE, TensorError, validated

TENSOR = "defect_types.descriptors"  # its name in a model file


@dataclass(frozen=True)
class DefectGuess:
    """The expert's answer: the most likely known type and how well it matches."""

    name: str
    similarity: float  # cosine similarity to the type's prototype, in [0, 1]
    runner_up: str | None = None


def defect_descriptors(features: list[torch.Tensor], patch_maps: torch.Tensor) -> np.ndarray:
    """features: per stage (B, C, h, w); patch_maps: (B, h, w) anomaly → (B, D) unit descriptors."""
    b, h, w = patch_maps.shape
    excess = (patch_maps.flatten(1) - patch_maps.flatten(1).median(1, keepdim=True).values).clamp_min(0)
    weights = excess / excess.sum(1, keepdim=True).clamp_min(1e-12)  # (B, h·w)
    parts = []
    for stage in features:
        patches = F.normalize(flatten_patches(stage), dim=1).view(b, h * w, -1)
        parts.append(F.normalize(torch.einsum("bp,bpc->bc", weights, patches), dim=1))
    return F.normalize(torch.cat(parts, 1), dim=1).numpy()


class DefectTypeClassifier:
    """Nearest-class-mean classifier of defect descriptors: one prototype per defect type."""

    def __init__(self, names: list[str], prototypes: np.ndarray):
        self.names, self.prototypes = names, prototypes

    @classmethod
    def fit(cls, examples: dict[str, np.ndarray]) -> DefectTypeClassifier:
        """examples: type name → (n, D) descriptors of labelled defective images (n ≥ 1)."""
        names = sorted(name for name, rows in examples.items() if len(rows))
        if len(names) < 2:
            raise ValueError("a defect-type classifier needs examples of at least two defect types")
        prototypes = np.stack([examples[name].mean(0) for name in names])
        return cls(names, prototypes / np.linalg.norm(prototypes, axis=1, keepdims=True))

    def classify(self, descriptor: np.ndarray) -> DefectGuess:
        similarity = self.prototypes @ descriptor
        order = np.argsort(-similarity)
        return DefectGuess(self.names[order[0]], float(np.clip(similarity[order[0]], 0, 1)), self.names[order[1]])


@dataclass(frozen=True)
class DefectExamples:
    """Typed defects' descriptors, one row per example, with each one's type name."""

    names: tuple[str, ...]
    descriptors: np.ndarray  # (n, D) unit rows

    def with_examples(self, names: list[str], descriptors: np.ndarray) -> DefectExamples:
        return DefectExamples((*self.names, *names), np.concatenate([self.descriptors, descriptors]))

    def head(self) -> DefectTypeClassifier | None:
        """The defect-type head of these examples; None until two types are known."""
        rows = defaultdict(list)
        for name, row in zip(self.names, self.descriptors):
            rows[name].append(row)
        return DefectTypeClassifier.fit({k: np.stack(v) for k, v in rows.items()}) if len(rows) > 1 else None

    def state(self) -> tuple[dict, dict[str, torch.Tensor]]:
        return {"names": list(self.names)}, {TENSOR: torch.from_numpy(self.descriptors).float().contiguous()}

    @classmethod
    def from_state(cls, config: dict, tensors: dict[str, torch.Tensor]) -> DefectExamples:
        state = validated(ExamplesState, config)
        rows = tensors.get(TENSOR)
        if rows is None or rows.dim() != 2 or len(rows) != len(state.names) or not rows.is_floating_point():
            found = "missing" if rows is None else f"{rows.dtype} {list(rows.shape)}"
            raise TensorError(TENSOR, f"must be {len(state.names)} rows of numbers (one per name), not {found}")
        if not torch.isfinite(rows).all():
            raise TensorError(TENSOR, "must be finite numbers")
        return cls(tuple(state.names), rows.numpy())


class ExamplesState(BaseModel):
    model_config = STRICT_STATE
    names: Annotated[list[Annotated[str, Field(min_length=1)]], Field(min_length=1)]
