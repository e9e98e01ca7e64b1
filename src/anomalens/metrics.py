"""Anomaly-detection metrics: image- and pixel-level AUROC, AP, F1-max and AUPRO.

Conventions: labels/masks are 0/1 (1 = anomalous); scores/maps are "higher = more
anomalous"; a sample is predicted anomalous when its score is >= the threshold.

Image metrics use scikit-learn directly. Pixel metrics give the same values but are
computed here: sklearn argsorts the whole array once per metric, which takes tens of
seconds on a test set of ~20M pixels. Every pixel metric is a function of, for each
distinct anomalous-pixel score t, how many normal pixels score >= t and > t; one
sort of the normal pixels answers that for all t with a binary search.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score

__all__ = ["image_auroc", "pixel_auroc", "aupro", "f1_max", "average_precision", "evaluate"]


# --------------------------------------------------------------------------- validation


def _binary(name: str, values) -> np.ndarray:
    """0/1 (or bool) array as given; non-bool input is checked, not silently thresholded."""
    a = np.asarray(values)
    # A bool array is binary by construction; skip the full-array comparison for it.
    if a.dtype != bool and not np.array_equal(a, a.astype(bool)):
        raise ValueError(f"{name} must contain only 0/1 (or bool) values")
    return a


def _check_scored(labels, scores) -> tuple[np.ndarray, np.ndarray]:
    """1-D labels and finite scores of equal length, with both classes present."""
    y = _binary("labels", labels)
    s = np.asarray(scores)
    if y.ndim != 1 or y.shape != s.shape:
        raise ValueError(f"labels and scores must be 1-D of equal length, got {y.shape} and {s.shape}")
    if not np.isfinite(s).all():
        raise ValueError("scores must be finite")
    # AUROC/AP/F1 are undefined with one class; sklearn would only warn or return nan.
    if not (y.any() and not y.all()):
        raise ValueError("labels must contain both classes (0 = normal and 1 = anomalous)")
    return y, s


def _check_pixels(masks, maps) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per-image 2-D bool masks and float32 maps, from an (N, H, W) / (H, W) array or from lists of
    (H_i, W_i) arrays (test images may differ in size); no copy when the dtypes already match."""
    if isinstance(masks, (list, tuple)) or isinstance(maps, (list, tuple)):
        pairs = list(zip(masks, maps, strict=True))
    else:
        m, a = np.asarray(masks), np.asarray(maps)
        if m.shape != a.shape:
            raise ValueError(f"masks and maps must have the same shape, got {m.shape} and {a.shape}")
        if m.ndim not in (2, 3):
            raise ValueError(f"masks and maps must be (N, H, W) or (H, W), got {m.shape}")
        pairs = [(m, a)] if m.ndim == 2 else list(zip(m, a))
    out_m, out_a = [], []
    for m, a in pairs:
        m = _binary("masks", m)
        a = np.asarray(a, dtype=np.float32)  # float32 is plenty to rank scores and halves memory
        if m.shape != a.shape or m.ndim != 2:
            raise ValueError(f"each mask and map must be 2-D of the same shape, got {m.shape} and {a.shape}")
        if not np.isfinite(a).all():
            raise ValueError("maps must be finite")
        out_m.append(m.astype(bool, copy=False))
        out_a.append(a)
    return out_m, out_a


def _pooled(masks: list[np.ndarray], maps: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """All pixels of all images as two flat vectors."""
    if len(masks) == 1:
        return masks[0].ravel(), maps[0].ravel()
    return np.concatenate([m.ravel() for m in masks]), np.concatenate([a.ravel() for a in maps])


# --------------------------------------------------------------------------- image level


def image_auroc(labels, scores) -> float:
    """Area under the ROC curve; ties count half (Mann-Whitney convention)."""
    y, s = _check_scored(labels, scores)
    return float(roc_auc_score(y, s))


def average_precision(labels, scores) -> float:
    """Average precision, sum_n (R_n - R_{n-1}) P_n (sklearn's step-wise, not interpolated)."""
    y, s = _check_scored(labels, scores)
    return float(average_precision_score(y, s))


def f1_max(labels, scores) -> tuple[float, float]:
    """Best F1 over all thresholds (predict anomalous when score >= t), and that t."""
    y, s = _check_scored(labels, scores)
    precision, recall, thresholds = precision_recall_curve(y, s)
    # The last PR point (P=1, R=0) has no threshold attached; drop it.
    precision, recall = precision[:-1], recall[:-1]
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(denom), where=denom > 0)
    best = int(np.argmax(f1))
    return float(f1[best]), float(thresholds[best])


# --------------------------------------------------------------------------- pixel level


def _split(m: np.ndarray, a: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sorted normal scores, sorted anomalous scores, and the anomalous sort order."""
    normal = a[~m]
    normal.sort()  # in place: the one big sort, on a float32 copy of the normal pixels only
    anom = a[m]
    order = np.argsort(anom)  # anomalous pixels are few; the order aligns region ids later
    return normal, anom[order], order


def _normal_at_or_above(normal: np.ndarray, t: np.ndarray, strict: bool = False) -> np.ndarray:
    """Number of normal pixels with score >= t (> t when strict)."""
    return len(normal) - np.searchsorted(normal, t, side="right" if strict else "left")


def _pixel_scores(normal: np.ndarray, anom: np.ndarray) -> dict[str, float]:
    """Pixel AUROC, AP and F1-max, identical to sklearn on the flattened arrays."""
    n_neg, n_pos = len(normal), len(anom)
    thr, first, count = np.unique(anom, return_index=True, return_counts=True)
    tp = n_pos - first  # anomalous pixels >= t (anom is sorted)
    fp = _normal_at_or_above(normal, thr)
    ties = fp - _normal_at_or_above(normal, thr, strict=True)
    # Mann-Whitney: each anomalous pixel beats the normals below it, half of its ties.
    auroc = np.sum(count * ((n_neg - fp) + 0.5 * ties)) / (n_pos * n_neg)
    # Recall only moves at anomalous scores, so sklearn's sum_n (R_n - R_{n-1}) P_n
    # needs precision there only.
    ap = np.sum(count / n_pos * tp / (tp + fp))
    # For a fixed TP count, F1 = 2TP / (TP + FP + n_pos) is best with the fewest FP, i.e.
    # at the anomalous score itself: no other threshold can beat these.
    f1 = 2.0 * tp / (tp + fp + n_pos)
    return {"auroc": float(auroc), "ap": float(ap), "f1max": float(f1.max())}


def pixel_auroc(masks, maps) -> float:
    """AUROC over all pixels of all images pooled together."""
    m, a = _pooled(*_check_pixels(masks, maps))
    if not (m.any() and not m.all()):
        raise ValueError("masks must contain both normal and anomalous pixels")
    normal, anom, _ = _split(m, a)
    return _pixel_scores(normal, anom)["auroc"]


def _area_up_to(x: np.ndarray, y: np.ndarray, x_max: float) -> float:
    """Trapezoid area under y(x) on [0, x_max]; x is non-decreasing and ends at >= x_max."""
    # Points strictly beyond the limit are dropped, and the curve is closed exactly at
    # x_max by linear interpolation towards the first point past it.
    inside = int(np.searchsorted(x, x_max, side="right"))
    xs, ys = x[:inside], y[:inside]
    if xs[-1] < x_max:
        x0, y0, x1, y1 = xs[-1], ys[-1], x[inside], y[inside]
        xs = np.append(xs, x_max)
        ys = np.append(ys, y0 + (y1 - y0) * (x_max - x0) / (x1 - x0))
    return float(np.sum(np.diff(xs) * (ys[1:] + ys[:-1]) / 2.0))


def _region_ids(masks: list[np.ndarray]) -> tuple[np.ndarray, int]:
    """Flat ids of each image's 8-connected ground-truth regions (MVTec's 3x3 ones), unique across images."""
    ids, total = [], 0
    for mask in masks:
        labels, n = ndimage.label(mask, structure=np.ones((3, 3), dtype=bool))
        labels[labels > 0] += total
        ids.append(labels.ravel())
        total += n
    return (ids[0] if len(ids) == 1 else np.concatenate(ids)), total


def _aupro(masks, m, normal, anom, order, fpr_limit, num_thresholds) -> float:
    regions, n_regions = _region_ids(masks)
    if n_regions == 0 or len(normal) == 0:
        return float("nan")

    # A region of size s adds 1/s of its overlap and regions are averaged, so each of
    # its pixels weighs 1/(s * n_regions) towards PRO.
    weight = 1.0 / (np.bincount(regions.ravel()) * n_regions)
    anom_weight = weight[regions[m][order]]  # aligned with the sorted anomalous scores
    del regions
    # at_or_above[i] = PRO contributed by anom[i:], with a trailing 0 for "nothing".
    at_or_above = np.append(np.cumsum(anom_weight[::-1])[::-1], 0.0)

    def curve_at(t, strict=False):
        side = "right" if strict else "left"
        pro = at_or_above[np.searchsorted(anom, t, side=side)]
        fpr = _normal_at_or_above(normal, t, strict) / len(normal)  # integer counts: exact
        return fpr, pro

    if num_thresholds is None:
        # Exact curve (MVTec's compute_pro): between two consecutive distinct anomalous
        # scores only normal pixels enter, a horizontal segment; at a score t the tied
        # pixels enter together, a straight step. So per t two points suffice, "> t"
        # then ">= t", and every other threshold would only add collinear points.
        thr = np.unique(anom)[::-1]
        (fpr_gt, pro_gt), (fpr_ge, pro_ge) = curve_at(thr, strict=True), curve_at(thr)
        fpr = np.stack([fpr_gt, fpr_ge], axis=1).ravel()
        pro = np.stack([pro_gt, pro_ge], axis=1).ravel()
    else:
        # A fixed grid between the lowest and highest score, like implementations that
        # evaluate evenly spaced thresholds; float32 keeps the search on the float32 data.
        lo = min(normal[0], anom[0])
        hi = max(normal[-1], anom[-1])
        fpr, pro = curve_at(np.linspace(lo, hi, num_thresholds, dtype=np.float32)[::-1])

    # (0, 0) and (1, 1) close the curve; clip PRO against round-off in the cumulative sum.
    fpr = np.concatenate(([0.0], fpr, [1.0]))
    pro = np.concatenate(([0.0], np.minimum(pro, 1.0), [1.0]))
    return _area_up_to(fpr, pro, fpr_limit) / fpr_limit


def aupro(masks, maps, fpr_limit: float = 0.3, num_thresholds: int | None = None) -> float:
    """Normalised area under the per-region-overlap curve up to ``fpr_limit`` (MVTec AD).

    Regions are the 8-connected components of each ground-truth mask; PRO(t) is the
    mean over all regions of the fraction of the region with map >= t, and FPR(t) is
    the fraction of normal pixels with map >= t. Returns nan when there is no region
    or no normal pixel. ``num_thresholds=None`` uses every distinct score (exact, as
    MVTec's ``compute_pro``); an int evaluates that many evenly spaced thresholds
    between the lowest and highest score instead.
    """
    if not 0.0 < fpr_limit <= 1.0:
        raise ValueError(f"fpr_limit must be in (0, 1], got {fpr_limit}")
    if num_thresholds is not None and num_thresholds < 2:
        raise ValueError(f"num_thresholds must be >= 2 or None, got {num_thresholds}")
    per_image = _check_pixels(masks, maps)
    m, a = _pooled(*per_image)
    return _aupro(per_image[0], m, *_split(m, a), fpr_limit, num_thresholds)


# --------------------------------------------------------------------------- summary


def evaluate(labels, scores, masks=None, maps=None) -> dict[str, float | None]:
    """Image metrics (None when the labels hold one class only), plus pixel metrics and AUPRO when
    masks/maps are given.

    Pixel metrics are left out when the masks hold no anomalous pixel (or no normal
    one), since they are undefined there.
    """
    y = _binary("labels", labels)
    both = bool(y.any() and not y.all())  # image metrics are undefined with one class: n/a (None), not an error
    out: dict[str, float | None] = {
        "image_auroc": image_auroc(labels, scores) if both else None,
        "image_ap": average_precision(labels, scores) if both else None,
        "image_f1max": f1_max(labels, scores)[0] if both else None,
    }
    if (masks is None) != (maps is None):
        raise ValueError("masks and maps must be given together")
    if masks is None:
        return out
    per_image = _check_pixels(masks, maps)
    n_labels = len(np.asarray(labels))
    if len(per_image[0]) != n_labels:
        raise ValueError(f"got {n_labels} labels but {len(per_image[0])} masks")
    m, a = _pooled(*per_image)
    if m.any() and not m.all():
        split = _split(m, a)  # the expensive sort, shared by all pixel metrics
        pix = _pixel_scores(*split[:2])
        out["pixel_auroc"], out["pixel_ap"], out["pixel_f1max"] = pix["auroc"], pix["ap"], pix["f1max"]
        out["aupro"] = _aupro(per_image[0], m, *split, fpr_limit=0.3, num_thresholds=None)
    return out


def calibration_errors(labels, probabilities, bins: int = 10) -> tuple[float, float]:
    """(expected calibration error over `bins` equal-width probability bins, Brier score) of predicted
    anomaly probabilities against 0/1 labels: how far "70 % sure" is from being right 70 % of the time."""
    y = _binary("labels", labels).astype(np.float64)
    p = np.clip(np.asarray(probabilities, dtype=np.float64), 0, 1)
    if y.shape != p.shape or y.ndim != 1 or not len(y):
        raise ValueError(f"labels and probabilities must be 1-D of equal, non-zero length, got {y.shape} and {p.shape}")
    which = np.minimum((p * bins).astype(int), bins - 1)
    ece = sum(abs(p[which == b].mean() - y[which == b].mean()) * np.mean(which == b) for b in np.unique(which))
    return float(ece), float(np.mean((p - y) ** 2))
