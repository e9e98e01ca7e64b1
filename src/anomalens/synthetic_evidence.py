"""The expert run on synthetic anomalies: SYNTHETIC_ANOMALIES anomalies made from the fitted references
(`synth`) and scored as if new (`Expert.left_out_scores`). Evidence for the decision stage, which may place
the image threshold among their scores (`calibration`, rule "synthetic-anomalies"); not a decision itself."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # the ONNX runtime imports neither torch nor the experts
    import torch

    from .experts import Expert

SYNTHETIC_ANOMALIES = 24  # made from the first references, in turn
SYNTHETIC_SOURCES = SYNTHETIC_ANOMALIES  # references kept (as pixels) while fitting, to make them from


def anomalous_evidence(
    expert: Expert, references: torch.Tensor, embed: Callable[[torch.Tensor], list[torch.Tensor]], seed: int = 0
) -> np.ndarray | None:
    """Image scores of SYNTHETIC_ANOMALIES synthetic anomalies (`anomalens.synth`: pastes, blends, stains of
    random size and strength) made from the first fitted references, `references` (n, 3, S, S) uint8: anomaly
    j is made in reference j mod n, from a random reference's content, and scored with its reference left out
    (`Expert.left_out_scores`). None when the expert cannot score them so."""
    import torch  # here, not above: torch is imported only where an expert is run

    from .synth import foreground, synthesize

    rng = np.random.default_rng(seed)
    images = references.permute(0, 2, 3, 1).float().div(255).numpy()
    owners = [j % len(images) for j in range(SYNTHETIC_ANOMALIES)]
    objects = {i: foreground(images[i]) for i in set(owners)}  # once per reference, not per anomaly
    made = [synthesize(images[i], images[rng.integers(len(images))], rng, object_mask=objects[i]).image for i in owners]
    features = embed(torch.from_numpy(np.stack(made)).permute(0, 3, 1, 2).contiguous())
    scores = expert.left_out_scores(features, owners)
    return None if scores is None else scores.double().numpy()
