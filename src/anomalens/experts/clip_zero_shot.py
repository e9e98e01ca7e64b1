"""Zero-shot expert (route A): CLIP compares image patches with text about normal and defective parts; no
normal images needed.

* Text: every normal and anomalous phrase (state words, known defects, descriptions; see clip/prompts.py)
  is embedded as the average of its template sentences. A state's embedding is the average of its phrases.
* Dense map: patch tokens of several blocks from the value-value path of the frozen image tower (training-
  free, see clip/model.py), mapped into the joint space and compared with the two state embeddings; a
  softmax over (normal, anomalous) at CLIP's logit scale gives each patch an anomaly probability, and the
  blocks' probabilities are averaged.
* Image score: the mean of the global image-text anomaly probability and the map's maximum.
* Per-image prompt adaptation (ALFA-style contextual scoring, `adapt=True`): for each image, each phrase is
  scored by how well it separates that image's patches (an anomalous phrase should single out a few patches
  above the image's typical patch; a normal phrase should match the typical patches and drop on the odd
  ones), and only the best-separating share of each state is averaged. Phrases that match every patch alike
  carry no evidence and blur the normal/anomalous boundary (cross-talk); they are left out.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F

from ..clip import CLIP, CLIP_MEAN, CLIP_STD, Tokenizer, create_clip
from ..clip.prompts import Prompts, Writer, generate_prompts
from ..clip.text import embed_phrases, unit_mean
from .base import Expert, ExpertInput, register

KEEP_FRACTION = 0.5  # share of each state's phrases kept per image by the contextual scoring
TOP_FRACTION = 0.05  # share of an image's patches taken as its odd ones when scoring phrases


@register
class ClipZeroShotExpert(Expert):
    name = "clip"
    needs = frozenset({"pixels", "text"})
    probability_scores = True
    resize_mode = "bicubic"  # the whole image at the tower's resolution (not OpenAI's centre crop): the map covers it

    def __init__(
        self,
        model: CLIP,
        tokenizer: Tokenizer,
        class_name: str | None = None,
        defects: Sequence[str] = (),
        writer: Writer | None = None,
        adapt: bool = True,
        batch_size: int = 8,
    ):
        self.model = model.eval().requires_grad_(False)
        self.tokenizer, self.adapt, self.batch_size = tokenizer, adapt, batch_size
        self.input_size = model.config.image_resolution
        self.prompts: Prompts = generate_prompts(class_name, defects, writer)
        self.layers = model.config.dense_blocks  # the map's blocks
        self.normal_phrases = embed_phrases(model, tokenizer, self.prompts.normal)  # (Mn, E) unit rows
        self.anomalous_phrases = embed_phrases(model, tokenizer, self.prompts.anomalous)  # (Ma, E) unit rows

    @classmethod
    def from_text(
        cls,
        class_name: str | None = None,
        defects: Sequence[str] = (),
        weights: str | Path | None = None,
        model: str | None = None,
    ) -> ClipZeroShotExpert:
        """The expert on a CLIP from `weights` (a local file; `model` names the architecture it must hold) or,
        with no file, the named model from the hub; offline that fails saying where to get a file."""
        return cls(create_clip(model if model or not weights else None, weights), Tokenizer(), class_name, defects)

    @classmethod
    def create(cls, config, n_normal: int | None = None) -> ClipZeroShotExpert:
        raise TypeError("the CLIP zero-shot expert is built from CLIP weights: Inspector.zero_shot('clip', ...)")

    def text_embeddings(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(normal, anomalous) state embeddings: unit vectors (E,), averaged over all phrases of each state."""
        return unit_mean(self.normal_phrases), unit_mean(self.anomalous_phrases)

    @torch.inference_mode()
    def score(self, batch: ExpertInput) -> tuple[torch.Tensor, torch.Tensor]:
        """Pixels (B, 3, R, R) in [0, 1] → patch anomaly probabilities (B, grid, grid) and image anomaly
        probabilities (B,), both in [0, 1]."""
        mean, std = torch.tensor(CLIP_MEAN).view(1, 3, 1, 1), torch.tensor(CLIP_STD).view(1, 3, 1, 1)
        maps, scores = [], []
        images = batch.pixels
        assert images is not None  # this expert reads pixels
        for start in range(0, len(images), self.batch_size):
            pixels = (images[start : start + self.batch_size] - mean) / std
            pooled, layers = self.model.encode_image_dense(pixels, self.layers)
            pooled = F.normalize(pooled, dim=-1)
            dense = F.normalize(torch.stack(layers, dim=1), dim=-1)  # (B, layers, grid, grid, E)
            for image_pooled, image_dense in zip(pooled, dense):
                states = self._adapted_states(image_dense) if self.adapt else torch.stack(self.text_embeddings())
                patch_map = self._probability(image_dense, states).mean(0)
                global_prob = self._probability(image_pooled, states)
                maps.append(patch_map)
                scores.append((global_prob + patch_map.max()) / 2)
        return torch.stack(maps), torch.stack(scores)

    def _probability(self, features: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
        """Anomaly probability of unit features (…, E) against (normal, anomalous) states (2, E)."""
        logits = self.model.logit_scale.exp() * features @ states.T
        return logits.softmax(-1)[..., 1]

    def _adapted_states(self, dense: torch.Tensor) -> torch.Tensor:
        """(2, E) state embeddings for one image from the phrases that best separate its patches."""
        patches = F.normalize(dense.mean(0).flatten(0, 1), dim=-1)  # (N, E), blocks averaged
        k = max(1, round(TOP_FRACTION * len(patches)))
        anomalous_sim = patches @ self.anomalous_phrases.T  # (N, Ma)
        normal_sim = patches @ self.normal_phrases.T  # (N, Mn)
        anomalous_gap = anomalous_sim.topk(k, dim=0).values.mean(0) - anomalous_sim.median(0).values
        normal_gap = normal_sim.median(0).values - normal_sim.topk(k, dim=0, largest=False).values.mean(0)
        return torch.stack(
            [unit_mean(_best(self.normal_phrases, normal_gap)), unit_mean(_best(self.anomalous_phrases, anomalous_gap))]
        )


def _best(phrases: torch.Tensor, gaps: torch.Tensor) -> torch.Tensor:
    keep = max(1, math.ceil(KEEP_FRACTION * len(phrases)))
    return phrases[gaps.topk(keep).indices]
