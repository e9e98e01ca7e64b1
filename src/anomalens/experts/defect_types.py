"""Defect-type expert: names what a defect most likely is from a few labelled examples per type (e.g.
`defects/crack/*.png`, `defects/blowhole/*.png`). The anomaly map says where an image departs from normal;
this describes that place by its backbone features and finds the closest type.

A descriptor is the anomaly-weighted mean of the image's patch features: patches weigh by how far their
anomaly exceeds the image's median patch, so the defect, not the intact surface around it, is described.
Each type's prototype is the mean of its examples' descriptors; a query goes to the nearest prototype by
cosine similarity (a nearest-class-mean classifier, robust with 1–10 examples per type)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..features import flatten_patches


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


class DefectTypeExpert:
    def __init__(self, names: list[str], prototypes: np.ndarray):
        self.names, self.prototypes = names, prototypes

    @classmethod
    def fit(cls, examples: dict[str, np.ndarray]) -> DefectTypeExpert:
        """examples: type name → (n, D) descriptors of labelled defective images (n ≥ 1)."""
        names = sorted(name for name, rows in examples.items() if len(rows))
        if len(names) < 2:
            raise ValueError("a defect-type expert needs examples of at least two defect types")
        prototypes = np.stack([examples[name].mean(0) for name in names])
        return cls(names, prototypes / np.linalg.norm(prototypes, axis=1, keepdims=True))

    def classify(self, descriptor: np.ndarray) -> DefectGuess:
        similarity = self.prototypes @ descriptor
        order = np.argsort(-similarity)
        return DefectGuess(self.names[order[0]], float(np.clip(similarity[order[0]], 0, 1)), self.names[order[1]])
