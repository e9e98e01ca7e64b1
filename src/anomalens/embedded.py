"""Images as an expert's inputs: decoded, laid out (`preprocessing.Layout`), cut into tiles and embedded by
the backbone where the expert needs features, batch by batch. Fitting embeds its normal images so, and
teaching the images a person labels; predicting streams the same tiles (`tile_batches`, `expert_input`)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from itertools import islice

import numpy as np
import torch

from .backbones import Backbone
from .data import to_uint8
from .experts import Expert, ExpertInput, NormalEvidence, NormalImages
from .features import patch_features
from .maps import smooth
from .pixels import standardise_exposure
from .preprocessing import Decoded, ImageInput, Layout, TilePlan, batches
from .stitching import ImageMaps
from .synthetic_evidence import SYNTHETIC_SOURCES


def tile_batches(
    images: list[Decoded], plans: list[TilePlan], kind: Expert | type[Expert], batch_size: int
) -> Iterator[tuple[list[int], list[int], np.ndarray]]:
    """The images' tiles in batches of `batch_size`, streamed: (each tile's image index in `images`, its
    index in that image's plan, the (B, 3, S, S) tiles)."""
    tiles = (
        (owner, index, pixels)
        for owner, (image, plan) in enumerate(zip(images, plans))
        for index, pixels in enumerate(plan.tiles(image.image, kind.resize_mode))
    )
    while chunk := list(islice(tiles, batch_size)):
        owners, indices, pixels = zip(*chunk)
        yield list(owners), list(indices), np.stack(pixels)


def expert_input(backbone: Backbone | None, tiles: np.ndarray, kind: Expert | type[Expert]) -> ExpertInput:
    """What the expert (or its class, before it is fitted) needs of these (B, 3, S, S) tiles: pixels,
    features or both."""
    pixels = torch.from_numpy(tiles)
    if kind.standardises_exposure:
        pixels = standardise_exposure(pixels)
    features = patch_features(backbone, pixels) if "features" in kind.needs else None
    return ExpertInput(pixels if "pixels" in kind.needs or "normal_pixels" in kind.needs else None, features)


@dataclass
class Embedded:
    """Images embedded as an expert's inputs, in order: every input (tile), the image it belongs to and where
    on it, the images' sources, the first SYNTHETIC_SOURCES inputs as uint8 and the images that could not be read."""

    layout: Layout
    parts: list[ExpertInput] = field(default_factory=list)  # batches of inputs; pixels, if kept, as uint8
    plans: list[TilePlan] = field(default_factory=list)  # one per image read
    tiles: list[tuple[int, int]] = field(default_factory=list)  # (image, tile index in its plan) of every input
    sources: list[str] = field(default_factory=list)  # each input's image source
    sizes: list[tuple[int, int]] = field(default_factory=list)  # each image's (width, height) as given
    first_tiles: list[np.ndarray] = field(default_factory=list)  # uint8 (3, S, S)
    skipped: list[str] = field(default_factory=list)  # why each unreadable image was left out

    @property
    def tiled(self) -> bool:
        """Whether some image was cut into several inputs."""
        return len(self.tiles) > len(self.plans)

    @cached_property
    def joined(self) -> ExpertInput:
        """Every input in one batch."""
        return ExpertInput.joined(self.parts)

    def normal_images(self, embed=None, text_start=None, progress=None) -> NormalImages:
        """The inputs as what fitting (or teaching) gives an expert (`NormalImages`' fields): with, when tiled,
        where each tile lies."""
        joined = self.joined
        places = [(image, *self.plans[image].origins[index]) for image, index in self.tiles]
        tiled = self.tiled
        return NormalImages(
            joined.features, joined.pixels, embed, text_start, progress,
            torch.tensor(places) if tiled else None, self.layout.size if tiled else None,
        )  # fmt: skip

    def per_image(self, evidence: NormalEvidence) -> tuple[np.ndarray, list[np.ndarray]]:
        """Each image's score and smoothed map from its inputs' evidence: untiled, as the expert gives them;
        tiled, an image's map stitched from its tiles' and its score its highest tile's."""
        tile_maps = smooth(evidence.maps, self.layout.size).numpy()
        if not self.tiled:
            return evidence.scores.numpy(), list(tile_maps)
        stitched = ImageMaps(self.plans)
        for (image, index), tile_map, score in zip(self.tiles, tile_maps, evidence.scores.tolist()):
            stitched.add(image, index, tile_map, score)
        return stitched.scores, stitched.maps()

    def image_owners(self) -> torch.Tensor:
        """(inputs,) the image (index among those read) each input belongs to."""
        return torch.tensor([image for image, _ in self.tiles])


def embedded(
    images: Iterable[ImageInput],
    layout: Layout,
    kind: Expert | type[Expert],
    backbone: Backbone | None,
    batch_size: int,
    progress: Callable[[int], None] | None = None,
) -> Embedded:
    """The images embedded as `kind`'s inputs; unreadable ones are listed in `skipped`. Images are decoded in
    groups (one at a time when tiled at a stated scale: a 20-megapixel image holds hundreds of tiles);
    `progress(n)` counts images as they are embedded."""
    seen = Embedded(layout)
    group = 1 if layout.max_side is None else batch_size
    for item in batches(images, group, max_side=layout.max_side):
        if isinstance(item, tuple):  # (source, error): unreadable
            seen.skipped.append(str(item[1]))
            continue
        plans = [layout.plan(entry) for entry in item]
        for owners, indices, pixels in tile_batches(item, plans, kind, batch_size):
            seen.first_tiles += [to_uint8(t) for t in pixels[: SYNTHETIC_SOURCES - len(seen.first_tiles)]]
            batch = expert_input(backbone, pixels, kind)
            if batch.pixels is not None:  # kept small, as uint8; never the decoded images
                batch.pixels = batch.pixels.mul(255).round_().to(torch.uint8)
            seen.parts.append(batch)
            seen.tiles += [(len(seen.plans) + o, t) for o, t in zip(owners, indices)]
            seen.sources += [item[o].source for o in owners]
        seen.plans += plans
        seen.sizes += [entry.size for entry in item]
        if progress:
            progress(len(item))
    return seen
