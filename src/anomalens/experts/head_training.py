"""Training a light head on frozen patch features (the decoder's, `decoder.DecoderHead`): on synthetic anomalies
made from normal images (`anomalens.synth`), the clean normal images, and defects a person labelled.

Loss = FOCAL_WEIGHT·focal + DICE_WEIGHT·dice on masks, with the map upsampled to LOSS_SIZE. A labelled defect
whose mask was drawn is a mask like a synthetic one. One known only to lie in a box, or somewhere in the
image, teaches what it can (`region_loss`): its most anomalous place inside is a defect, every place outside
the box is normal. Labelled defects are repeated so that together they weigh about LABELLED_SHARE of the
synthetic anomalies, and no one of them more than if there were LABELLED_FLOOR: one mislabelled example
cannot decide what the head learns.

Early stopping: the weights of the epoch with the lowest loss on a held-out split of the synthetic images are
kept, and training stops PATIENCE epochs after it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..synth import foreground, synthesize
from .base import LabelledDefects

LOSS_SIZE = 64  # maps and masks are compared at this resolution
FOCAL_WEIGHT, DICE_WEIGHT, FOCAL_GAMMA = 1.0, 1.0, 2.0
VALIDATION_FRACTION = 0.2  # of the synthetic images, held out for early stopping
MAX_EPOCHS, PATIENCE, BATCH, LEARNING_RATE = 25, 4, 16, 3e-3
LABELLED_SHARE, LABELLED_FLOOR = 0.25, 8

Progress = Callable[[str, int, int], None]  # (stage, done, total)


@dataclass
class TrainingSet:
    """Per-stage features (n, C_i, h, w), each item's target (n, LOSS_SIZE, LOSS_SIZE) and whether that target
    is the defect's exact mask (else a region it lies somewhere in)."""

    features: list[torch.Tensor]
    targets: torch.Tensor
    exact: torch.Tensor

    @classmethod
    def masked(cls, features: list[torch.Tensor], masks: torch.Tensor) -> TrainingSet:
        return cls(features, masks, torch.ones(len(masks), dtype=torch.bool))

    @classmethod
    def labelled(cls, defects: LabelledDefects, synthetic: int) -> TrainingSet:
        """The labelled defects, each repeated to its capped share of `synthetic` anomalies."""
        repeats = max(1, round(LABELLED_SHARE * synthetic / max(len(defects), LABELLED_FLOOR)))
        regions = F.adaptive_avg_pool2d(defects.regions.float()[:, None], LOSS_SIZE)[:, 0]
        return cls(
            [f.repeat(repeats, 1, 1, 1) for f in defects.features],
            regions.repeat(repeats, 1, 1),
            defects.exact.repeat(repeats),
        )

    def __len__(self) -> int:
        return len(self.targets)

    def __add__(self, other: TrainingSet) -> TrainingSet:
        features = [torch.cat([a, b]) for a, b in zip(self.features, other.features)]
        return TrainingSet(features, torch.cat([self.targets, other.targets]), torch.cat([self.exact, other.exact]))

    def moments(self) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Each stage's per-channel mean and spread (stages differ in scale)."""
        return [f.mean((0, 2, 3)) for f in self.features], [f.std((0, 2, 3)).clamp_min(1e-4) for f in self.features]

    def standardised(self, means: list[torch.Tensor], stds: list[torch.Tensor]) -> TrainingSet:
        """Standardised per channel, in channels-last memory: the head's projections then read it unpermuted."""
        features = [
            ((f - m[:, None, None]) / s[:, None, None]).contiguous(memory_format=torch.channels_last)
            for f, m, s in zip(self.features, means, stds)
        ]
        return TrainingSet(features, self.targets, self.exact)


def segmentation_loss(maps: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """FOCAL_WEIGHT·focal + DICE_WEIGHT·dice between anomaly probabilities and (soft) masks, both (B, H, W)."""
    p = maps.clamp(1e-6, 1 - 1e-6)
    bce = -(masks * p.log() + (1 - masks) * (1 - p).log())
    p_true = masks * p + (1 - masks) * (1 - p)
    focal = ((1 - p_true) ** FOCAL_GAMMA * bce).mean()
    dice = 1 - (2 * (p * masks).sum() + 1) / (p.sum() + masks.sum() + 1)
    return FOCAL_WEIGHT * focal + DICE_WEIGHT * dice


def region_loss(maps: torch.Tensor, regions: torch.Tensor) -> torch.Tensor:
    """Defects known to lie somewhere in `regions` (B, H, W): the most anomalous place inside is a defect
    (cross-entropy of its probability), every place outside normal (focal, as `segmentation_loss`)."""
    p = maps.clamp(1e-6, 1 - 1e-6)
    inside = regions > 0
    peak = torch.where(inside, p, torch.zeros_like(p)).flatten(1).amax(1)
    outside = ~inside
    focal = (p**FOCAL_GAMMA * -(1 - p).log() * outside).sum() / outside.sum().clamp_min(1)
    return -peak.log().mean() + FOCAL_WEIGHT * focal


def batch_loss(maps: torch.Tensor, targets: torch.Tensor, exact: torch.Tensor) -> torch.Tensor:
    """The loss of a batch: masks by `segmentation_loss`, regions by `region_loss`, weighted by their counts."""
    if bool(exact.all()):
        return segmentation_loss(maps, targets)
    loss = region_loss(maps[~exact], targets[~exact]) * (~exact).sum()
    if bool(exact.any()):
        loss = loss + segmentation_loss(maps[exact], targets[exact]) * exact.sum()
    return loss / len(exact)


def upsampled(maps: torch.Tensor) -> torch.Tensor:
    return F.interpolate(maps[:, None], size=(LOSS_SIZE, LOSS_SIZE), mode="bilinear", align_corners=False)[:, 0]


def epoch_loss(head: nn.Module, data: TrainingSet, optimiser: torch.optim.Optimizer | None = None) -> float:
    """One pass (shuffled, with updates, if an optimiser is given); the mean loss per batch."""
    n = len(data)
    order = torch.randperm(n) if optimiser else torch.arange(n)
    losses = []
    for start in range(0, n, BATCH):
        pick = order[start : start + BATCH]
        loss = batch_loss(upsampled(head([f[pick] for f in data.features])), data.targets[pick], data.exact[pick])
        if optimiser:
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        losses.append(loss.item())
    return float(np.mean(losses))


def fit_head(head: nn.Module, train: TrainingSet, val: TrainingSet, progress: Progress | None = None) -> list[dict]:
    """Adam on `train`; the weights of the epoch with the lowest loss on `val` are kept. The losses per epoch."""
    optimiser = torch.optim.Adam(head.parameters(), lr=LEARNING_RATE)
    best, best_loss, stale, history = None, float("inf"), 0, []
    for epoch in range(1, MAX_EPOCHS + 1):
        train_loss = epoch_loss(head, train, optimiser)
        with torch.no_grad():
            val_loss = epoch_loss(head, val)
        history.append({"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss})
        if progress:
            progress("training decoder (epochs)", epoch, MAX_EPOCHS)
        if val_loss < best_loss - 1e-4:
            best, best_loss, stale = {k: v.clone() for k, v in head.state_dict().items()}, val_loss, 0
        else:
            stale += 1
            if stale >= PATIENCE:
                break
    assert best is not None  # set by the first epoch
    head.load_state_dict(best)
    return history


def synthetic_set(
    images: torch.Tensor,
    features: list[torch.Tensor],
    embed: Callable,
    rng: np.random.Generator,
    n: int,
    progress: Progress | None,
) -> tuple[list[torch.Tensor], torch.Tensor]:
    """n synthetic anomalies, each in a random normal image with a patch from another, as backbone
    features (embedded batch by batch, never all images at once) and masks at LOSS_SIZE."""
    arrays = images.permute(0, 2, 3, 1).numpy()
    objects: dict[int, np.ndarray] = {}  # foreground estimates, computed once per image used
    chunks, masks, batch = [], [], []
    for i in range(n):
        t, s = int(rng.integers(len(arrays))), int(rng.integers(len(arrays)))
        target = arrays[t].astype(np.float32) / 255
        if t not in objects:
            objects[t] = foreground(target)
        result = synthesize(target, arrays[s].astype(np.float32) / 255, rng, object_mask=objects[t])
        batch.append(torch.from_numpy(result.image).permute(2, 0, 1))
        masks.append(F.adaptive_avg_pool2d(torch.from_numpy(result.mask).float()[None], LOSS_SIZE)[0])
        if len(batch) == BATCH or i == n - 1:
            chunks.append(embed(torch.stack(batch)))
            batch = []
            if progress:
                progress("synthesising anomalies", i + 1, n)
    return [torch.cat(stage).clone() for stage in zip(*chunks)], torch.stack(masks)  # clone: out of inference mode
