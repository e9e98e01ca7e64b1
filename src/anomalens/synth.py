"""Self-supervised anomalies made from normal images (NSA-style), for training the decoder expert.

A patch of one normal image — random size, aspect ratio and position, optionally rescaled and rotated —
is pasted into another normal image, either with Poisson blending (seamless cloning: the patch keeps
its own gradients while its border takes the target's values, so there is no seam for the model to
learn instead of the anomaly) or plainly (cut-paste), or a band-limited noise texture is added to a
region. Where the background is uniform the region is kept on the object (a foreground estimate).

The mask returned is exact: the pixels whose value changed by more than MASK_TOLERANCE in any channel.
Poisson blending is solved here with a sparse direct solver (scipy): patches are small, so one LU
factorisation per paste takes milliseconds, and no image-processing dependency is needed for it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage, sparse
from scipy.sparse.linalg import splu

MODES = ("poisson", "cutpaste", "noise")
MODE_WEIGHTS = (0.5, 0.25, 0.25)  # seamless pastes first: the subtle anomalies are the useful ones
MASK_TOLERANCE = 0.04  # a pixel is anomalous if it changed by more than this (about 10 grey levels)
PATCH_SIDE = (0.06, 0.3)  # patch side as a fraction of the image side, low to high (area: its square)
MIN_CHANGED = 0.15  # a synthesis changing less than this share of its region is drawn again
ATTEMPTS = 10
BORDER = 4  # pixels of the image border that sample the background


@dataclass
class Synthetic:
    image: np.ndarray  # H×W×3 float32 in [0, 1]
    mask: np.ndarray  # H×W bool: exactly the pixels that changed by more than MASK_TOLERANCE
    mode: str


def foreground(image: np.ndarray) -> np.ndarray:
    """Where the object is: pixels whose colour lies well outside the range of colours on the image border
    (the background, where it is uniform). If few pixels do — a texture or an object that fills the frame,
    whose border shows all its colours — everything is foreground."""
    smooth = ndimage.gaussian_filter(image, sigma=(2, 2, 0))
    border = np.concatenate(
        [
            smooth[:BORDER].reshape(-1, 3),
            smooth[-BORDER:].reshape(-1, 3),
            smooth[:, :BORDER].reshape(-1, 3),
            smooth[:, -BORDER:].reshape(-1, 3),
        ]
    )
    background = np.median(border, 0)
    spread = np.quantile(np.abs(border - background).max(-1), 0.95)  # how far the background's colour wanders
    mask = ndimage.binary_opening(np.abs(smooth - background).max(-1) > max(0.1, 2 * spread), iterations=2)
    return mask if 0.02 < mask.mean() < 0.95 else np.ones(image.shape[:2], bool)


def synthesize(
    target: np.ndarray,
    source: np.ndarray,
    rng: np.random.Generator,
    mode: str | None = None,
    object_mask: np.ndarray | None = None,
    side: tuple[float, float] = PATCH_SIDE,
) -> Synthetic:
    """One anomaly in `target` (H×W×3 float in [0, 1]) made from `source` (same size; may be target itself).
    `mode` is one of MODES (random by MODE_WEIGHTS if None); `object_mask` defaults to foreground(target);
    `side`: the region's side as a fraction of the image's, low to high (its area: the square)."""
    if object_mask is None:
        object_mask = foreground(target)
    best = None
    for _ in range(ATTEMPTS):
        kind = mode or str(rng.choice(MODES, p=MODE_WEIGHTS))
        top, left, region = _region(target.shape[:2], object_mask, rng, side)
        if kind == "noise":
            image = _add_noise(target, top, left, region, rng)
        else:
            patch = _source_patch(source, region.shape, rng)
            image = (_poisson_paste if kind == "poisson" else _plain_paste)(target, patch, top, left, region)
        mask = np.abs(image - target).max(-1) > MASK_TOLERANCE
        result = Synthetic(image.astype(np.float32), mask, kind)
        if mask.sum() >= MIN_CHANGED * region.sum():
            return result
        if best is None or mask.sum() > best.mask.sum():
            best = result
    assert best is not None  # ATTEMPTS ≥ 1
    return best


def _region(shape: tuple[int, int], object_mask: np.ndarray, rng: np.random.Generator, side=PATCH_SIDE):
    """A rectangle or ellipse (with a one-pixel empty margin in its window) placed with its centre on
    the object and clipped to it; returns the window's top, left and the region mask in the window."""
    height, width = shape
    area = rng.uniform(*side) ** 2 * height * width
    aspect = np.exp(rng.uniform(np.log(0.3), np.log(3.3)))
    h = int(np.clip(np.sqrt(area / aspect), 6, height - 4))
    w = int(np.clip(np.sqrt(area * aspect), 6, width - 4))
    ys, xs = np.nonzero(object_mask[1 + h // 2 : height - 1 - (h - h // 2), 1 + w // 2 : width - 1 - (w - w // 2)])
    if len(ys):
        pick = rng.integers(len(ys))
        top, left = int(ys[pick]) + 1, int(xs[pick]) + 1
    else:
        top, left = int(rng.integers(1, height - h)), int(rng.integers(1, width - w))
    region = np.zeros((h, w), bool)
    if rng.random() < 0.5:
        region[1:-1, 1:-1] = True
    else:
        yy, xx = np.mgrid[0:h, 0:w]
        region = ((yy - (h - 1) / 2) / (h / 2 - 1)) ** 2 + ((xx - (w - 1) / 2) / (w / 2 - 1)) ** 2 <= 1
        region[[0, -1]], region[:, [0, -1]] = False, False
    region &= object_mask[top : top + h, left : left + w]
    return top, left, region


def _source_patch(source: np.ndarray, shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A patch of `shape` from a random place of the source, optionally rescaled (0.7–1.4×) and rotated."""
    h, w = shape
    turns = int(rng.integers(4)) if rng.random() < 0.5 else 0
    sh, sw = (w, h) if turns % 2 else (h, w)  # rotated by quarter turns after cutting
    scale = rng.uniform(0.7, 1.4) if rng.random() < 0.5 else 1.0
    ch, cw = min(source.shape[0], max(2, round(sh * scale))), min(source.shape[1], max(2, round(sw * scale)))
    y, x = int(rng.integers(0, source.shape[0] - ch + 1)), int(rng.integers(0, source.shape[1] - cw + 1))
    patch = source[y : y + ch, x : x + cw]
    if (ch, cw) != (sh, sw):
        patch = ndimage.zoom(patch, (sh / ch, sw / cw, 1), order=1, grid_mode=True, mode="nearest")
    return np.rot90(patch, turns)[:h, :w]


def _plain_paste(target, patch, top, left, region) -> np.ndarray:
    out = target.copy()
    h, w = region.shape
    out[top : top + h, left : left + w][region] = patch[region]
    return out


def _poisson_paste(target, patch, top, left, region) -> np.ndarray:
    """Seamless cloning: inside the region solve Δf = Δpatch with f = target on its border (the
    discrete Poisson equation on the 4-neighbour grid, one sparse factorisation for the three channels)."""
    h, w = region.shape
    window = target[top : top + h, left : left + w]
    index = -np.ones((h, w), np.int64)
    index[region] = np.arange(region.sum())
    ys, xs = np.nonzero(region)
    n = len(ys)
    rows, cols = [np.arange(n)], [np.arange(n)]
    values = [np.full(n, 4.0)]
    rhs = 4.0 * patch[ys, xs]
    for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1)):
        ny, nx = ys + dy, xs + dx  # in the window: the region has an empty one-pixel margin
        rhs -= patch[ny, nx]  # guidance: the patch's own gradients
        inside = region[ny, nx]
        rows.append(np.arange(n)[inside])
        cols.append(index[ny[inside], nx[inside]])
        values.append(np.full(int(inside.sum()), -1.0))
        rhs[~inside] += window[ny[~inside], nx[~inside]]  # known border values
    matrix = sparse.csc_matrix((np.concatenate(values), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n))
    solved = splu(matrix).solve(rhs.astype(np.float64))
    out = target.copy()
    out[top + ys, left + xs] = np.clip(solved, 0, 1)
    return out


def _add_noise(target, top, left, region, rng) -> np.ndarray:
    """A stain or speckle: smooth random noise of random grain and strength added inside the region."""
    h, w = region.shape
    grain = rng.uniform(0.5, 4.0)
    noise = ndimage.gaussian_filter(rng.normal(size=(h, w, 1 if rng.random() < 0.7 else 3)), (grain, grain, 0))
    noise *= rng.uniform(0.1, 0.35) / (np.abs(noise).max() + 1e-8)
    out = target.copy()
    window = out[top : top + h, left : left + w]
    window[region] = np.clip(window[region] + noise[region], 0, 1)
    return out
