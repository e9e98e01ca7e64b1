"""The inspector's configuration: plain values, saved in model files and handed to every expert's `create`.
The chosen expert's own settings are a plain mapping here (`expert_settings`): the expert's `Settings` say
what they are and check them (`experts.base.checked_settings`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .names import DEFAULT_BACKBONE

IMAGE_SIZES = (32, 2048)  # the input sides a model file may hold (the command line's range, `anomalens fit`)
BATCH_MAX = 4096  # the largest batch a model file may ask for


@dataclass(frozen=True)
class InspectorConfig:
    backbone: str = DEFAULT_BACKBONE
    image_size: int = 256  # the network's input side: the whole image's short side, or each tile's
    # "squash": the whole image to image_size² (distorted; the ONNX runtime reads images so, hence the default);
    # "aspect": the short side resized to image_size, aspect kept, tiles along the long side; a number: the image
    # resized by it (1.0: native pixels), cut into image_size tiles
    scale: str | float = "squash"
    expert: str = "auto"  # a registered expert's name, "auto" (memory bank, or PatchCore above 16 images) or an alias
    batch_size: int = 8  # small batches keep activations in cache: faster on CPU than large ones
    seed: int = 0
    max_false_alarms: float | None = None  # a stated share of normal images the decision may flag (None: default)
    # the expert's settings, all of them (its defaults filled in) once the inspector is built
    expert_settings: dict[str, Any] = field(default_factory=dict, hash=False)
