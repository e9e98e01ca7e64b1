"""Zero-shot expert, no references at all (MuSc, ICLR 2024): the images of one unlabeled batch score
each other. Most patches of most images are normal, so a normal patch finds a close match in nearly
every other image, while a defect patch finds one in few of them.

- Local neighbourhoods at several degrees (MuSc's LNAMD): each stage's features are averaged over
  r × r cells for r in DEGREES, so both small and larger defects stand out at some degree.
- Mutual scoring (MuSc's MSM): for a patch of image i, its nearest-neighbour distance to the patches of
  EACH other image j separately; the patch's score is the mean of the lowest INTERVAL of those
  per-image distances. Taking the low end ignores the other images that happen to be defective at that
  place; stopping above the minimum ignores the few that share a similar defect.
- Image scores are the mean of the top TOP_FRACTION of a map's patches, then re-scored over a kNN graph
  of global image features (MuSc's RsCIN): an image's score is averaged with those of the images that
  look most like it, which steadies the ranking of images of the same appearance.

Cost grows with batch × references: each image is compared with at most MAX_REFERENCES others, drawn
at random (seeded), and scoring runs on a GRID × GRID grid (stride 16 at 256 px).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import Expert, ExpertInput, register

DEGREES = (1, 3, 5)
INTERVAL = (0.0, 0.3)  # share of the other images, sorted by distance, whose distances are averaged
TOP_FRACTION = 0.1  # image score: mean of this share of its highest patch scores
RESCORE_NEIGHBORS = (1, 2, 4)  # RsCIN: neighbourhood sizes of the image-feature kNN graph, averaged
MAX_REFERENCES = 64
GRID = 16
REFERENCE_CHUNK = 16  # other images compared at once: bounds the distance matrix to a few MB


@register
class MutualExpert(Expert):
    name = "mutual"
    needs = frozenset({"features", "batch"})
    standardises_exposure = True  # no normal image says which exposure is normal

    def __init__(self, max_references: int = MAX_REFERENCES, seed: int = 0):
        self.max_references, self.seed = max_references, seed

    @classmethod
    def create(cls, config, n_normal: int | None = None) -> MutualExpert:
        return cls(seed=config.seed)

    @torch.inference_mode()
    def score(self, batch: ExpertInput) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-stage (B, C, h, w) features of a whole batch → patch maps (B, GRID, GRID) and image scores (B,)."""
        features = batch.features
        assert features is not None  # a "features" expert is always given them
        n = len(features[0])
        if n < 2:
            raise ValueError(
                f"zero-shot scoring compares images with each other: it needs at least 2 readable images, got {n}"
            )
        references = self._references(n)
        maps, count = torch.zeros(n, GRID * GRID), 0
        for fmap in features:
            fmap = F.adaptive_avg_pool2d(fmap.float(), GRID)
            for degree in DEGREES:
                local = fmap if degree == 1 else F.avg_pool2d(fmap, degree, 1, degree // 2, count_include_pad=False)
                patch_scores = _mutual_scores(local.flatten(2).transpose(1, 2).contiguous(), references)
                maps += patch_scores / patch_scores.median().clamp(min=1e-12)  # stages and degrees on one footing
                count += 1
        maps = (maps / count).view(n, GRID, GRID)
        top = max(1, round(TOP_FRACTION * GRID * GRID))
        scores = maps.flatten(1).topk(top, dim=1).values.mean(1)
        return maps, rescore(scores, _global_features(features))

    def _references(self, n: int) -> torch.Tensor:
        """(n, m) indices of the other images each image is compared with: all, or a seeded random subset."""
        generator = torch.Generator().manual_seed(self.seed)
        m = min(n - 1, self.max_references)
        rows = []
        for i in range(n):
            others = torch.randperm(n - 1, generator=generator)[:m] if m < n - 1 else torch.arange(n - 1)
            rows.append(others + (others >= i))  # skip image i itself
        return torch.stack(rows)


def _mutual_scores(patches: torch.Tensor, references: torch.Tensor) -> torch.Tensor:
    """patches (B, P, C), references (B, m) → (B, P): the mean of the lowest INTERVAL of each patch's
    nearest-neighbour distances to each reference image's patches."""
    n, p, c = patches.shape
    squared = patches.pow(2).sum(2)
    m = references.shape[1]
    low = int(INTERVAL[0] * m)
    high = max(low + 1, round(INTERVAL[1] * m))
    out = torch.empty(n, p)
    for i in range(n):
        per_image = []
        for start in range(0, m, REFERENCE_CHUNK):
            refs = references[i, start : start + REFERENCE_CHUNK]
            # ‖a − b‖² = ‖a‖² − 2 a·b + ‖b‖², one matrix product for a chunk of reference images
            dist = torch.addmm(squared[refs].reshape(1, -1), patches[i], patches[refs].reshape(-1, c).T, alpha=-2)
            dist += squared[i][:, None]
            per_image.append(dist.view(p, len(refs), p).amin(2))
        nearest = torch.cat(per_image, 1).clamp_(min=0).sqrt_().sort(1).values
        out[i] = nearest[:, low:high].mean(1)
    return out


def _global_features(features: list[torch.Tensor]) -> torch.Tensor:
    """(B, D) unit-length image descriptors: each stage's spatial mean, stages concatenated."""
    return F.normalize(torch.cat([F.normalize(f.float().mean((2, 3)), dim=1) for f in features], 1), dim=1)


def rescore(scores: torch.Tensor, descriptors: torch.Tensor) -> torch.Tensor:
    """RsCIN-style re-scoring: for each k in RESCORE_NEIGHBORS, the mean score of an image and its k most
    similar images (cosine of descriptors); the image's new score is the average over the k's. A
    neighbourhood never spans more than a quarter of the batch, so small batches are left as they are."""
    n = len(scores)
    sizes = [k for k in RESCORE_NEIGHBORS if k + 1 <= n // 4]
    if not sizes:
        return scores
    similarity = descriptors @ descriptors.T
    similarity.fill_diagonal_(float("inf"))  # an image is its own first neighbour
    order = similarity.argsort(1, descending=True)
    return torch.stack([scores[order[:, : k + 1]].mean(1) for k in sizes]).mean(0)
