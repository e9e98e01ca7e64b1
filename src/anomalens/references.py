"""The normal references an inspector was fitted on, one global descriptor each (the mean of an image's patch
features over every stage, unit length): which reference a new image is most like, so an answer about it
can point at a known-good image ("the closest normal reference is ref_03.png"). Cheap: one small matrix
product per batch, on features the expert is given anyway."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

TENSOR = "references.descriptors"  # its name in a model file, beside the expert's tensors


def global_descriptors(features: list[torch.Tensor]) -> torch.Tensor:
    """Per-stage features (B, C_i, h, w) → (B, ΣC_i) unit rows."""
    return F.normalize(torch.cat([f.float().mean(dim=(2, 3)) for f in features], dim=1), dim=1)


class References:
    def __init__(self, names: list[str], descriptors: torch.Tensor):
        if len(names) != len(descriptors):
            raise ValueError(f"{len(names)} reference names for {len(descriptors)} descriptors")
        self.names, self.descriptors = names, descriptors

    @classmethod
    def of(cls, sources: list[str], features: list[torch.Tensor]) -> References:
        return cls([Path(source).name for source in sources], global_descriptors(features))

    def extended(self, sources: list[str], features: list[torch.Tensor]) -> References:
        """These references and more (taught normal images)."""
        more = References.of(sources, features)
        return References(self.names + more.names, torch.cat([self.descriptors, more.descriptors]))

    def nearest(self, features: list[torch.Tensor]) -> list[str]:
        """For each image of a batch, the name of the reference most like it."""
        similarity = global_descriptors(features) @ self.descriptors.T
        return [self.names[int(i)] for i in similarity.argmax(dim=1)]

    def state(self) -> tuple[list[str], dict[str, torch.Tensor]]:
        return self.names, {TENSOR: self.descriptors.contiguous()}
