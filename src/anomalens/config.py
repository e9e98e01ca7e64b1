"""The inspector's configuration: plain values, saved in model files and handed to every expert's `create`."""

from __future__ import annotations

from dataclasses import dataclass

from .backbones import DEFAULT_BACKBONE


@dataclass(frozen=True)
class InspectorConfig:
    backbone: str = DEFAULT_BACKBONE
    image_size: int = 256
    expert: str = "auto"  # a registered expert's name, "auto" (memory bank, or PatchCore above 16 images) or an alias
    coreset_ratio: float = 0.1
    max_bank: int = 16_384  # caps the PatchCore bank so detection speed does not grow with the training set
    num_neighbors: int = 9
    batch_size: int = 8  # small batches keep activations in cache: faster on CPU than large ones
    synthetic_images: int = 256  # "decoder", "fused": synthetic anomalies to train on
    seed: int = 0
    max_false_alarms: float | None = None  # a stated share of normal images the decision may flag (None: default)
