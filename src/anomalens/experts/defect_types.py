"""Defect-type classifier (not an expert: it finds no anomaly, it names the kind of one an expert found): names
what a defect most likely is from a few labelled examples per type (e.g. `defects/crack/*.png`,
`defects/blowhole/*.png`). The anomaly map says where an image departs from normal;
this describes that place by its backbone features and finds the most likely type.

A descriptor is the mean of the image's most anomalous patches' unit features (TOP_SHARE of them, per stage), so
the defect, not the intact surface around it, is described — the same way for an example as for a query: an
example described only within where a person marked it is described unlike the queries, which have no mark.
A multinomial logistic regression on the examples' descriptors (REGULARISATION) names the type; the similarity
reported is the cosine to that type's mean example. Chosen between forms, shares and heads over the shared sets
naming types, each chosen on the other and reported on it (`bench/defect_types.py`, bench/defect_types.md):
on magnetic_tile with 10 examples per type 0.68 right at 4 references and 0.74 full-shot, where the nearest
class mean of anomaly-weighted descriptors (model files written before: form "excess-weighted") was 0.46 and 0.51.

Typed defects a person teaches a model are kept in its file (`DefectExamples`), so the model names types
from them wherever it is loaded; the head is made from them once two types are known."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from functools import cached_property
from typing import Annotated, Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, Field

from ..features import flatten_patches
from ..fields import STRICT_STATE, TensorError, validated

TENSOR = "defect_types.descriptors"  # its name in a model file
FORMS = ("top-share", "excess-weighted")  # how a descriptor weighs patches; the latter: model files written before
TOP_SHARE = 0.02  # "top-share": the share of an image's patches, most anomalous first, its descriptor averages
REGULARISATION = 100.0  # the logistic head's inverse regularisation (scikit-learn's C); None: nearest class mean


@dataclass(frozen=True)
class DefectGuess:
    """The expert's answer: the most likely known type and how well it matches."""

    name: str
    similarity: float  # cosine similarity to the type's prototype, in [0, 1]
    runner_up: str | None = None


def defect_descriptors(
    features: list[torch.Tensor], patch_maps: torch.Tensor, form: str = FORMS[0], share: float = TOP_SHARE
) -> np.ndarray:
    """features: per stage (B, C, h, w); patch_maps: (B, h, w) anomaly → (B, D) unit descriptors, by `form`."""
    b, h, w = patch_maps.shape
    flat = patch_maps.flatten(1)
    if form == "top-share":
        kept = max(1, round(share * h * w))
        weights = torch.zeros_like(flat).scatter_(1, flat.topk(kept, dim=1).indices, 1.0)
    else:  # "excess-weighted": by how far each patch exceeds the image's median patch
        weights = (flat - flat.median(1, keepdim=True).values).clamp_min(0)
    weights = weights / weights.sum(1, keepdim=True).clamp_min(1e-12)  # (B, h·w)
    parts = []
    for stage in features:
        patches = F.normalize(flatten_patches(stage), dim=1).view(b, h * w, -1)
        parts.append(F.normalize(torch.einsum("bp,bpc->bc", weights, patches), dim=1))
    return F.normalize(torch.cat(parts, 1), dim=1).numpy()


class DefectTypeClassifier:
    """Names a defect's type from its descriptor: a logistic regression over the examples' descriptors (or, with
    no regularisation given, the nearest class mean); similarity: the cosine to the type's mean example."""

    def __init__(self, names: list[str], prototypes: np.ndarray, regression=None):
        self.names, self.prototypes, self.regression = names, prototypes, regression

    @classmethod
    def fit(
        cls, examples: dict[str, np.ndarray], regularisation: float | None = REGULARISATION
    ) -> DefectTypeClassifier:
        """examples: type name → (n, D) descriptors of labelled defective images (n ≥ 1)."""
        names = sorted(name for name, rows in examples.items() if len(rows))
        if len(names) < 2:
            raise ValueError("a defect-type classifier needs examples of at least two defect types")
        prototypes = np.stack([examples[name].mean(0) for name in names])
        prototypes /= np.linalg.norm(prototypes, axis=1, keepdims=True)
        if regularisation is None:
            return cls(names, prototypes)
        from sklearn.linear_model import LogisticRegression  # here: only a model with typed examples needs it

        rows = np.concatenate([examples[name] for name in names])
        labels = np.concatenate([np.full(len(examples[name]), i) for i, name in enumerate(names)])
        regression = LogisticRegression(C=regularisation, max_iter=2000).fit(rows, labels)
        return cls(names, prototypes, regression)

    def classify(self, descriptor: np.ndarray) -> DefectGuess:
        similarity = self.prototypes @ descriptor
        likelihood = similarity if self.regression is None else self.regression.predict_proba(descriptor[None])[0]
        first, second = np.argsort(-likelihood)[:2]
        return DefectGuess(self.names[first], float(np.clip(similarity[first], 0, 1)), self.names[second])


@dataclass(frozen=True)
class DefectExamples:
    """Typed defects' descriptors, one row per example, with each one's type name."""

    names: tuple[str, ...]
    descriptors: np.ndarray  # (n, D) unit rows
    form: str = FORMS[0]  # how they were described (`defect_descriptors`); queries are described alike

    def with_examples(self, names: list[str], descriptors: np.ndarray) -> DefectExamples:
        joined = np.concatenate([self.descriptors, descriptors])
        return DefectExamples((*self.names, *names), joined, self.form)

    def head(self) -> DefectTypeClassifier | None:
        """The defect-type head of these examples; None until two types are known."""
        return self._head

    @cached_property
    def _head(self) -> DefectTypeClassifier | None:  # fitted once: every result asks for it
        rows = defaultdict(list)
        for name, row in zip(self.names, self.descriptors):
            rows[name].append(row)
        return DefectTypeClassifier.fit({k: np.stack(v) for k, v in rows.items()}) if len(rows) > 1 else None

    def state(self) -> tuple[dict, dict[str, torch.Tensor]]:
        return {"names": list(self.names), "form": self.form}, {
            TENSOR: torch.from_numpy(self.descriptors).float().contiguous()
        }

    @classmethod
    def from_state(cls, config: dict, tensors: dict[str, torch.Tensor]) -> DefectExamples:
        state = validated(ExamplesState, config)
        rows = tensors.get(TENSOR)
        if rows is None or rows.dim() != 2 or len(rows) != len(state.names) or not rows.is_floating_point():
            found = "missing" if rows is None else f"{rows.dtype} {list(rows.shape)}"
            raise TensorError(TENSOR, f"must be {len(state.names)} rows of numbers (one per name), not {found}")
        if not torch.isfinite(rows).all():
            raise TensorError(TENSOR, "must be finite numbers")
        return cls(tuple(state.names), rows.numpy(), state.form)


class ExamplesState(BaseModel):
    model_config = STRICT_STATE
    names: Annotated[list[Annotated[str, Field(min_length=1)]], Field(min_length=1)]
    form: Literal["top-share", "excess-weighted"] = "excess-weighted"  # model files written before: the latter
