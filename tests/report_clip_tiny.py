#!/usr/bin/env python3
"""The zero-shot CLIP expert on the tiny CLIP that tests/test_zero_shot_clip.py trains (no real CLIP weights
exist offline): image and pixel AUROC per training seed, with and without per-image prompt adaptation, and,
for comparison, the pixel AUROC of maps from the ordinary (query-key) patch tokens of the same blocks.

    OMP_NUM_THREADS=1 python tests/report_clip_tiny.py

It reuses the test's trained tiny CLIP, so it lives with the tests (bench/ never imports them).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from anomalens.clip import Tokenizer, preprocess
from anomalens.experts.clip_zero_shot import ClipZeroShotExpert
from anomalens.metrics import image_auroc, pixel_auroc
from conftest import SIZE, plant_defect, texture
from test_zero_shot_clip import _train_tiny_clip, score_images


def full_size(maps: torch.Tensor) -> np.ndarray:
    return F.interpolate(maps[:, None], size=(SIZE, SIZE), mode="bilinear", align_corners=False)[:, 0].numpy()


def main() -> None:
    tokenizer = Tokenizer()
    marked = [plant_defect(texture(500 + i), i, radius=18) for i in range(8)]
    images = [m[0] for m in marked] + [texture(600 + i) for i in range(8)]
    labels, masks = [1] * 8 + [0] * 8, np.stack([m[1] for m in marked])
    for seed in (0, 1, 2):
        model = _train_tiny_clip(tokenizer, seed)
        for adapt in (False, True):
            expert = ClipZeroShotExpert(model, tokenizer, "textile", adapt=adapt)
            maps, scores = score_images(expert, images)
            print(
                f"seed {seed} adapt={adapt}: image AUROC {image_auroc(labels, scores.numpy()):.3f}, "
                f"pixel AUROC {pixel_auroc(masks, full_size(maps[:8])):.3f}"
            )
        with torch.no_grad():
            _, plain = model.encode_image_dense(
                preprocess(images[:8], model.config.image_resolution), expert.layers, value_value=False
            )
            plain_maps = torch.stack(
                [expert._probability(F.normalize(t, dim=-1), torch.stack(expert.text_embeddings())) for t in plain]
            ).mean(0)
        print(f"seed {seed} query-key tokens instead: pixel AUROC {pixel_auroc(masks, full_size(plain_maps)):.3f}")


if __name__ == "__main__":
    main()
