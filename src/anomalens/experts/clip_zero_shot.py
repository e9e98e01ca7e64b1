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

import numpy as np
import torch
import torch.nn.functional as F

from ..clip import CLIP, Tokenizer, preprocess
from ..clip.prompts import Prompts, Writer, generate_prompts

KEEP_FRACTION = 0.5  # share of each state's phrases kept per image by the contextual scoring
TOP_FRACTION = 0.05  # share of an image's patches taken as its odd ones when scoring phrases
TEXT_BATCH = 64


class ClipZeroShotExpert:
    kind = "clip"

    def __init__(self, model: CLIP, tokenizer: Tokenizer, class_name: str | None = None, defects: Sequence[str] = (),
                 writer: Writer | None = None, adapt: bool = True, batch_size: int = 8):
        self.model = model.eval().requires_grad_(False)
        self.tokenizer, self.adapt, self.batch_size = tokenizer, adapt, batch_size
        self.prompts: Prompts = generate_prompts(class_name, defects, writer)
        self.layers = model.config.dense_blocks  # the map's blocks
        self.normal_phrases = self._embed_phrases(self.prompts.normal)  # (Mn, E) unit rows
        self.anomalous_phrases = self._embed_phrases(self.prompts.anomalous)  # (Ma, E) unit rows

    def text_embeddings(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(normal, anomalous) state embeddings: unit vectors (E,), averaged over all phrases of each state."""
        return _unit_mean(self.normal_phrases), _unit_mean(self.anomalous_phrases)

    @torch.inference_mode()
    def score_images(self, images: Sequence[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
        """H×W×3 float images in [0, 1] → patch anomaly probabilities (B, grid, grid) and image anomaly
        probabilities (B,), both in [0, 1]."""
        maps, scores = [], []
        for start in range(0, len(images), self.batch_size):
            pixels = preprocess(images[start:start + self.batch_size], self.model.config.image_resolution)
            pooled, dense = self.model.encode_image_dense(pixels, self.layers)
            pooled = F.normalize(pooled, dim=-1)
            dense = F.normalize(torch.stack(dense, dim=1), dim=-1)  # (B, layers, grid, grid, E)
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
        return torch.stack([_unit_mean(_best(self.normal_phrases, normal_gap)),
                            _unit_mean(_best(self.anomalous_phrases, anomalous_gap))])

    @torch.inference_mode()
    def _embed_phrases(self, phrases: Sequence[str]) -> torch.Tensor:
        """(M, E): each phrase's template sentences embedded, normalised, averaged, normalised again."""
        sentences = [s for phrase in phrases for s in Prompts.sentences(phrase)]
        tokens = self.tokenizer(sentences, context_length=self.model.config.context_length)
        embedded = torch.cat([F.normalize(self.model.encode_text(tokens[i:i + TEXT_BATCH]), dim=-1)
                              for i in range(0, len(tokens), TEXT_BATCH)])
        return F.normalize(embedded.view(len(phrases), -1, embedded.shape[-1]).mean(1), dim=-1)


def _best(phrases: torch.Tensor, gaps: torch.Tensor) -> torch.Tensor:
    keep = max(1, math.ceil(KEEP_FRACTION * len(phrases)))
    return phrases[gaps.topk(keep).indices]


def _unit_mean(rows: torch.Tensor) -> torch.Tensor:
    return F.normalize(rows.mean(0), dim=0)
