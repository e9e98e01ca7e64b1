"""Trained expert (AnomalyGPT's decoder, "unsupervised" setting): a light head on the frozen backbone's
patch features, trained on normal images made abnormal by synthesis (`anomalens.synth`).

Per stage, one linear projection into a joint space, compared by cosine similarity with two learnable
embeddings, "normal" and "anomalous"; a softmax with temperature gives each patch's anomaly probability
(with two classes, a sigmoid of the difference of the two cosines, which is what is computed), averaged
over stages. It is trained as `head_training` says: on the synthetic masks, with early stopping on held-out
synthetic images (the checkpoint that goes into the model file), and, taught, on labelled defects besides.
The backbone runs once per synthetic image (its features are then cached), so training the head itself is
cheap.

Leave-one-out, which calibrates the memory experts, does not suit a trained decoder (every normal image
shaped its weights), so a held-out split of the NORMAL training images — HELD_OUT_FRACTION of them, drawn
with the inspector's seed — is kept out of training altogether: the decoder is trained on synthetic
anomalies made from the rest, and the held-out images give the scores the decision is calibrated on (and,
fused, the normal statistics that normalise its maps). Test labels are never seen."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, field_validator
from torch import nn

from ..fields import STRICT_STATE, Count, FieldError, Positive, Seed, TensorError, validated
from .base import (
    Expert,
    ExpertInput,
    ExpertSettings,
    LabelledDefects,
    NormalEvidence,
    NormalImages,
    register,
    stored_tensor,
)
from .head_training import LOSS_SIZE, VALIDATION_FRACTION, Progress, TrainingSet, fit_head, synthetic_set

JOINT_DIM = 32
TEMPERATURE = 0.1
HELD_OUT_FRACTION = 0.25


class DecoderHead(nn.Module):
    """Linear projection per stage → cosine with the normal/anomalous embeddings → anomaly probability."""

    def __init__(self, channels: list[int], dim: int = JOINT_DIM, temperature: float = TEMPERATURE):
        super().__init__()
        self.temperature = temperature
        self.projections = nn.ModuleList(nn.Linear(c, dim) for c in channels)
        self.embeddings = nn.Parameter(torch.randn(2, dim, generator=torch.Generator().manual_seed(0)))

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        """Per-stage features (B, C_i, h, w) → anomaly probability (B, h, w), the mean over stages."""
        normal, anomalous = F.normalize(self.embeddings, dim=1)
        total: torch.Tensor | float = 0.0
        for fmap, projection in zip(features, self.projections):
            z = F.normalize(projection(fmap.permute(0, 2, 3, 1)), dim=-1)  # channels last: faster on CPU
            total = total + torch.sigmoid(z @ (anomalous - normal) / self.temperature)
        assert isinstance(total, torch.Tensor)  # there is at least one stage
        return total / len(features)

    @torch.no_grad()
    def start_from_text(self, embeddings: torch.Tensor, means: list[torch.Tensor], stds: list[torch.Tensor]) -> None:
        """Begin as CLIP's own zero-shot comparison (AnomalyGPT's text embeddings): the two embeddings are the
        prompt ensembles' `embeddings` (2, E), and each projection passes its stage's joint-space tokens
        through unchanged (undoing the standardisation that training sees)."""
        self.embeddings.copy_(embeddings)
        for projection, mean, std in zip(self.linears, means, stds):
            projection.weight.copy_(torch.diag(std))
            projection.bias.copy_(mean)

    @torch.no_grad()
    def fold_standardisation(self, means: list[torch.Tensor], stds: list[torch.Tensor]) -> None:
        """Make a head trained on standardised features (x − mean) / std take raw features instead."""
        for projection, mean, std in zip(self.linears, means, stds):
            projection.bias.sub_(projection.weight @ (mean / std))
            projection.weight /= std

    @torch.no_grad()
    def unfold_standardisation(self, means: list[torch.Tensor], stds: list[torch.Tensor]) -> None:
        """Make a head that takes raw features take standardised ones (x − mean) / std, to train it further."""
        for projection, mean, std in zip(self.linears, means, stds):
            projection.bias.add_(projection.weight @ mean)
            projection.weight *= std

    @property
    def linears(self) -> list[nn.Linear]:
        """The per-stage projections, typed as what they are."""
        return [p for p in self.projections if isinstance(p, nn.Linear)]

    @property
    def channels(self) -> list[int]:
        return [p.in_features for p in self.linears]


class DecoderSettings(ExpertSettings):
    synthetic_images: int = 256  # synthetic anomalies to train on

    @field_validator("synthetic_images")
    @classmethod
    def _synthetic_count(cls, n: int) -> int:
        if n < 1:
            raise ValueError(f"must be at least 1, not {n}")
        return n


@register
class DecoderExpert(Expert):
    name = "decoder"
    needs = frozenset({"features", "normal", "normal_pixels"})
    Settings = DecoderSettings

    def __init__(
        self,
        head: DecoderHead | None = None,
        seed: int = 0,
        synthetic_images: int = DecoderSettings.model_fields["synthetic_images"].default,
        history: list[dict] | None = None,
    ):
        self.head, self.seed, self.synthetic_images, self.history = head, seed, synthetic_images, history or []

    @classmethod
    def create(cls, config, n_normal: int | None = None) -> DecoderExpert:
        settings = cls.own_settings(config)
        assert isinstance(settings, DecoderSettings)  # its Settings
        return cls(seed=config.seed, synthetic_images=settings.synthetic_images)

    def fit(self, normal: NormalImages) -> NormalEvidence:
        """Trained on synthetic anomalies from all but a held-out split of the normal images, which it is
        then calibrated on."""
        return self._trained(normal)

    def retrain(self, normal: NormalImages, defects: LabelledDefects) -> NormalEvidence:
        """Trained again, from the head it has, as `fit` trains it and on labelled `defects` besides (a fused
        expert's `learn_defects`): the held-out split's evidence."""
        return self._trained(normal, defects)

    def _trained(self, normal: NormalImages, defects: LabelledDefects | None = None) -> NormalEvidence:
        assert normal.pixels is not None and normal.features is not None and normal.embed is not None  # its needs
        train, held = held_out_split(len(normal), self.seed)
        text_start = normal.text_start() if normal.text_start else None
        features = [f[train] for f in normal.features]
        self.train(normal.pixels[train], features, normal.embed, normal.progress, text_start, defects)
        return NormalEvidence(
            *self.score(ExpertInput(normal.pixels[held], [f[held] for f in normal.features])), "held-out"
        )

    def train(
        self,
        images: torch.Tensor,
        features: list[torch.Tensor],
        embed: Callable,
        progress: Progress | None = None,
        text_start: torch.Tensor | None = None,
        defects: LabelledDefects | None = None,
    ) -> DecoderExpert:
        """Train on normal `images` (N, 3, S, S) uint8 whose patch `features` are given; `embed` maps a float
        image batch to patch features. Synthetic anomalies are made from these images only. `text_start`
        (2, E): for a CLIP backbone, whose features live in the joint space, the text embeddings of
        "normal" and "anomalous" the head starts from (see DecoderHead.start_from_text). `defects`: labelled
        defects learnt besides, from the head it has (`head_training.TrainingSet.labelled`)."""
        rng = np.random.default_rng(self.seed)
        torch.manual_seed(self.seed)
        synthetic, masks = synthetic_set(images, features, embed, rng, self.synthetic_images, progress)
        n_val = max(1, round(VALIDATION_FRACTION * self.synthetic_images))
        # training: synthetic anomalies, the clean normal images and labelled defects; validation: held-out
        # synthetic ones
        train = TrainingSet.masked([s[n_val:] for s in synthetic], masks[n_val:])
        train += TrainingSet.masked(features, torch.zeros(len(images), LOSS_SIZE, LOSS_SIZE))
        if defects is not None:
            train += TrainingSet.labelled(defects, self.synthetic_images)
        val = TrainingSet.masked([s[:n_val] for s in synthetic], masks[:n_val])
        # standardised once here rather than in every step (stages differ in scale); folded back at the end
        means, stds = train.moments()
        self.head = self._start([f.shape[1] for f in features], text_start, defects is not None, means, stds)
        self.history = fit_head(self.head, train.standardised(means, stds), val.standardised(means, stds), progress)
        self.head.fold_standardisation(means, stds)
        self.head.requires_grad_(False).eval()
        return self

    def _start(self, channels: list[int], text_start, keep: bool, means, stds) -> DecoderHead:
        """The head training starts from: the one it has (taught more defects), CLIP's own comparison of text
        (`text_start`), or a new one."""
        if keep and self.head is not None:
            self.head.requires_grad_(True).train()
            self.head.unfold_standardisation(means, stds)
            return self.head
        if text_start is None:
            return DecoderHead(channels)
        head = DecoderHead(channels, dim=text_start.shape[1])
        head.start_from_text(text_start, means, stds)
        return head

    @torch.inference_mode()
    def score(self, batch: ExpertInput) -> tuple[torch.Tensor, torch.Tensor]:
        """Patch anomaly probabilities (B, h, w) and image scores (B,) = each map's maximum."""
        return self.module()(batch.features)

    def module(self) -> DecoderScorer:
        assert self.head is not None
        return DecoderScorer(self.head)

    def state(self) -> tuple[dict, dict[str, torch.Tensor]]:
        assert self.head is not None  # trained or loaded
        config = {
            "kind": self.name,
            "channels": self.head.channels,
            "dim": self.head.embeddings.shape[1],
            "temperature": self.head.temperature,
            "seed": self.seed,
            "synthetic_images": self.synthetic_images,
            "history": self.history,
        }
        return config, {k: v.contiguous() for k, v in self.head.state_dict().items()}

    @classmethod
    def from_state(cls, config: dict, tensors: dict[str, torch.Tensor]) -> DecoderExpert:
        """Rebuilt from `state()`, once every field is one it can use, and its tensors are the head's, of the
        sizes the state gives (checked before the head is built, so no size allocates what is not there)."""
        state = validated(DecoderState, config)
        dim, stages = state.dim, sum(name.startswith("projections.") and name.endswith(".weight") for name in tensors)
        if len(state.channels) != stages:
            raise FieldError("channels", f"{len(state.channels)} stages, but the tensors hold {stages} projections")
        expected = {"embeddings": [2, dim]}
        for i, channels in enumerate(state.channels):
            expected |= {f"projections.{i}.weight": [dim, channels], f"projections.{i}.bias": [dim]}
        for name in tensors:
            if name not in expected:
                raise TensorError(name, f"not a tensor of a decoder of {stages} stages")
        for name, shape in expected.items():
            tensor = stored_tensor(tensors, name, len(shape))
            found = list(tensor.shape)
            if name == "embeddings" and found[1] != dim:
                raise FieldError("dim", f"is {dim}, but the tensor embeddings is {found}")
            if name.endswith(".weight") and found[1] != shape[1]:
                stage = name.split(".")[1]
                raise FieldError(f"channels.{stage}", f"is {shape[1]}, but the tensor {name} is {found}")
            if not tensor.is_floating_point() or found != shape:
                raise TensorError(name, f"must be {shape} numbers, not {tensor.dtype} {found}")
        head = DecoderHead(state.channels, state.dim, state.temperature)
        head.load_state_dict(tensors)
        head.requires_grad_(False).eval()
        return cls(head, state.seed, state.synthetic_images, [epoch.model_dump() for epoch in state.history])


class Epoch(BaseModel):
    """One epoch of training, as the decoder's history records it (losses as they were, even non-finite)."""

    model_config = ConfigDict(strict=True, extra="ignore", allow_inf_nan=True)
    epoch: Count
    train_loss: float
    val_loss: float


class DecoderState(BaseModel):
    """What `DecoderExpert.state` writes beside its tensors."""

    model_config = STRICT_STATE
    kind: Literal["decoder"]
    channels: Annotated[list[Count], Field(min_length=1)]  # the feature stages' widths
    dim: Count
    temperature: Positive
    seed: Seed
    synthetic_images: Count
    history: list[Epoch]


class DecoderScorer(nn.Module):
    """The trained head as a scorer: per-stage features → (probability maps (B, h, w), their maxima (B,))."""

    def __init__(self, head: DecoderHead):
        super().__init__()
        self.head = head

    def forward(self, features: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        maps = self.head(features)
        return maps, maps.flatten(1).amax(1)


def held_out_split(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(training indices, held-out indices) of n normal images; at least one of each."""
    if n < 2:
        raise ValueError("the decoder needs at least 2 normal images: one to learn from, one to calibrate on")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_held = min(n - 1, max(1, round(HELD_OUT_FRACTION * n)))
    return order[n_held:].sort().values, order[:n_held].sort().values
