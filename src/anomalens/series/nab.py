"""Numenta Anomaly Benchmark (NAB) scoring, re-implemented small and flat.

Follows NAB v1.x (``nab/sweeper.py``, ``nab/optimizer.py``, ``nab/runner.py``):

* every labelled anomaly window earns the weight of its *earliest* detection,
  ``A_TP * S(pos) / S(-1)`` with ``S(x) = 2 / (1 + exp(5x)) - 1`` and
  ``pos = -(right - i + 1) / width`` (so a hit on the window's first row earns
  exactly ``A_TP``), or ``-A_FN`` when nothing in it is detected;
* every detection outside a window costs ``A_FP * S((i - right) / (width - 1))``
  relative to the closest preceding window, or ``-A_FP`` when no window precedes it;
* the first ``min(floor(0.15 n), 750)`` rows of each series (probation) are ignored;
* a row is a detection when ``anomaly_score >= threshold``; one threshold per
  profile for the whole corpus, the one maximising the corpus score over every
  distinct anomaly score (ties go to the highest threshold);
* ``normalised = 100 (raw - null) / (perfect - null)`` with ``null`` the score of a
  detector that never fires and ``perfect = A_TP * number of labelled windows``.

Used by ``anomalens series eval`` (NAB's score beside the point-wise numbers) and by the bench scripts
``bench/nab_score.py`` (its CLI) and ``bench/nab_run.py``. Only the standard library and numpy are used.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np

PROBATION_FRACTION = 0.15
OUTSIDE, PROBATION = -1, -2  # window ids of rows that are not in any window / ignored


@dataclass(frozen=True)
class Profile:
    """An application profile's cost matrix (NAB config/profiles.json)."""

    tp: float
    fp: float
    fn: float
    tn: float = 1.0  # unused by NAB's scoring, kept for completeness


DEFAULT_PROFILES: dict[str, Profile] = {
    "standard": Profile(tp=1.0, fp=0.11, fn=1.0),
    "reward_low_FP_rate": Profile(tp=1.0, fp=0.22, fn=1.0),
    "reward_low_FN_rate": Profile(tp=1.0, fp=0.11, fn=2.0),
}


@dataclass
class Series:
    """One data file: its detector scores and its windows as inclusive row ranges."""

    name: str
    scores: np.ndarray
    windows: list[tuple[int, int]]


# ---------------------------------------------------------------- loading


def load_profiles(path: Path | None = None) -> dict[str, Profile]:
    """Read NAB's profiles.json; fall back to the published defaults."""
    if path is None or not path.is_file():
        return dict(DEFAULT_PROFILES)
    try:
        return {
            name: Profile(tp=c["tpWeight"], fp=c["fpWeight"], fn=c["fnWeight"], tn=c.get("tnWeight", 1.0))
            for name, c in ((n, p["CostMatrix"]) for n, p in json.loads(path.read_text()).items())
        }
    except (ValueError, LookupError, TypeError, AttributeError) as error:
        raise ValueError(
            f"{path}: not NAB's profiles (a CostMatrix of tpWeight, fpWeight, fnWeight each): {error!r}"
        ) from error


def load_windows(path: Path) -> dict[str, list[tuple[str, str]]]:
    """combined_windows.json: ``{"category/file.csv": [[start, end], ...]}``."""
    return {k: [(a, b) for a, b in v] for k, v in json.loads(path.read_text()).items()}


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.strip())


def window_rows(timestamps: list[datetime], windows: list[tuple[str, str]]) -> list[tuple[int, int]]:
    """Map window limits to inclusive row indices.

    NAB matches limits to rows exactly (first occurrence; one NAB file repeats an
    hour of timestamps). Limits that miss every row fall back to the rows inside
    [start, end], like NAB's older scorer.
    """
    first: dict[datetime, int] = {}
    for i, t in enumerate(timestamps):
        first.setdefault(t, i)
    rows = []
    for start, end in windows:
        t1, t2 = parse_time(start), parse_time(end)
        if t1 in first and t2 in first:
            rows.append((first[t1], first[t2]))
            continue
        inside = [i for i, t in enumerate(timestamps) if t1 <= t <= t2]
        if inside:
            rows.append((inside[0], inside[-1]))
    return sorted(rows)


def read_scores_csv(path: Path, column: str = "anomaly_score") -> tuple[list[datetime], np.ndarray]:
    """Timestamps and one score column of a NAB-layout CSV (``timestamp`` first)."""
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        times, scores = [], []
        for row in reader:
            times.append(parse_time(row["timestamp"]))
            scores.append(float(row[column]))
    return times, np.asarray(scores, dtype=float)


def load_detector_results(results_dir: Path, detector: str, windows: dict[str, list[tuple[str, str]]]) -> list[Series]:
    """Load ``<results_dir>/<detector>/<category>/<detector>_<file>.csv`` for every labelled file.

    ``results_dir`` may also be the detector's own folder. A missing file is an error:
    normalised scores are only comparable on the full corpus.
    """
    base = results_dir / detector if (results_dir / detector).is_dir() else results_dir
    series = []
    for rel, limits in sorted(windows.items()):
        category, fname = rel.split("/")
        path = base / category / f"{detector}_{fname}"
        if not path.is_file():
            raise FileNotFoundError(f"no results for {rel}: {path}")
        times, scores = read_scores_csv(path)
        series.append(Series(rel, scores, window_rows(times, limits)))
    return series


# ---------------------------------------------------------------- scoring rules


def scaled_sigmoid(x: float | np.ndarray) -> np.ndarray:
    """NAB's S(x) = 2*sigmoid(-5x) - 1, clamped to -1 from x >= 3 (far from any window)."""
    x = np.asarray(x, dtype=float)
    with np.errstate(over="ignore"):
        s = 2.0 / (1.0 + np.exp(5.0 * x)) - 1.0
    return np.where(x >= 3.0, -1.0, s)


def probation_length(n: int, fraction: float = PROBATION_FRACTION) -> int:
    """Rows ignored at the start: 15 % of the series, at most 750 (= 0.15 * 5000)."""
    return int(min(math.floor(fraction * n), fraction * 5000))


def row_weights(
    n: int, windows: list[tuple[int, int]], profile: Profile, probation: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """What a detection on each row would earn, and which window the row is in.

    Returns ``(weight, window_id)``; ``window_id`` is the window's index, ``OUTSIDE``
    or ``PROBATION``. Outside a window the weight is already the (negative) FP cost.
    """
    weight = np.full(n, -profile.fp)  # before the first window: S(3) = -1
    wid = np.full(n, OUTSIDE)
    max_tp = float(scaled_sigmoid(-1.0))
    bounds = [(lo, hi) for lo, hi in windows] + [(n, n)]
    for k, (lo, hi) in enumerate(windows):
        width = hi - lo + 1
        i = np.arange(lo, hi + 1)
        weight[lo : hi + 1] = profile.tp * scaled_sigmoid(-(hi - i + 1) / width) / max_tp
        wid[lo : hi + 1] = k
        after = np.arange(hi + 1, bounds[k + 1][0])  # rows up to the next window
        # A one-row window has width - 1 == 0: treat every later row as far away.
        dist = (after - hi) / (width - 1) if width > 1 else np.full(after.size, np.inf)
        weight[after] = profile.fp * scaled_sigmoid(dist)
    wid[: probation_length(n) if probation is None else probation] = PROBATION
    return weight, wid


@dataclass(frozen=True)
class Score:
    score: float
    windows: int  # windows scored (at least one row past probation)
    detected: int  # windows with a true positive
    false_positives: int  # detected rows outside windows


def score_series(
    scores: np.ndarray, windows: list[tuple[int, int]], profile: Profile, threshold: float, probation: int | None = None
) -> Score:
    """Score one series' detections (``scores >= threshold``) under a profile."""
    weight, wid = row_weights(len(scores), windows, profile, probation)
    fired = (np.asarray(scores) >= threshold) & (wid != PROBATION)
    fp_rows = fired & (wid == OUTSIDE)
    total = float(weight[fp_rows].sum())
    live = np.unique(wid[wid >= 0])
    detected = 0
    for k in live:
        hits = fired & (wid == k)
        if hits.any():
            total += float(weight[hits].max())  # the earliest hit has the largest weight
            detected += 1
        else:
            total -= profile.fn
    return Score(total, int(live.size), detected, int(fp_rows.sum()))


def score_corpus(series: list[Series], profile: Profile, threshold: float) -> Score:
    parts = [score_series(s.scores, s.windows, profile, threshold) for s in series]
    return Score(
        sum(p.score for p in parts),
        sum(p.windows for p in parts),
        sum(p.detected for p in parts),
        sum(p.false_positives for p in parts),
    )


def sweep_thresholds(series: list[Series], profile: Profile) -> tuple[np.ndarray, np.ndarray]:
    """Corpus score at every candidate threshold, highest threshold first.

    Candidates are +inf (nothing fires) and every distinct anomaly score. Walking rows
    from the highest score down, a row outside windows adds its FP weight and a row in
    a window raises that window's best weight (starting from -A_FN); the score for a
    threshold is read once all rows tied at it are in, as NAB's sweeper does.
    """
    s_all, w_all, g_all = [], [], []
    offset = 0
    for s in series:
        w, wid = row_weights(len(s.scores), s.windows, profile)
        keep = wid != PROBATION
        s_all.append(s.scores[keep])
        w_all.append(w[keep])
        g_all.append(np.where(wid[keep] >= 0, wid[keep] + offset, OUTSIDE))
        offset += len(s.windows)
    scores, weights, groups = (np.concatenate(a) for a in (s_all, w_all, g_all))
    order = np.argsort(-scores, kind="stable")
    scores, weights, groups = scores[order], weights[order], groups[order]

    delta = np.where(groups == OUTSIDE, weights, 0.0)
    in_win = np.flatnonzero(groups >= 0)
    by_win = in_win[np.argsort(groups[in_win], kind="stable")]  # grouped, sweep order kept
    starts = np.searchsorted(groups[by_win], np.arange(offset + 1))
    live = 0
    for k in range(offset):
        rows = by_win[starts[k] : starts[k + 1]]
        if rows.size:
            live += 1
            best = np.maximum.accumulate(np.concatenate(([-profile.fn], weights[rows])))
            delta[rows] = np.diff(best)
    running = -profile.fn * live + np.cumsum(delta)
    last_of_tie = np.flatnonzero(np.r_[scores[1:] != scores[:-1], True]) if scores.size else np.array([], int)
    thresholds = np.r_[np.inf, scores[last_of_tie]]
    totals = np.r_[-profile.fn * live, running[last_of_tie]]
    return thresholds, totals


def optimise_threshold(series: list[Series], profile: Profile) -> tuple[float, float]:
    """(threshold, raw corpus score) maximising the score; first maximum = highest threshold."""
    thresholds, totals = sweep_thresholds(series, profile)
    best = int(np.argmax(totals))
    return float(thresholds[best]), float(totals[best])


def normalise(raw: float, null: float, perfect: float) -> float:
    """100 = perfect detector, 0 = a detector that never fires."""
    return 100.0 * (raw - null) / (perfect - null)


@dataclass(frozen=True)
class ProfileResult:
    profile: str
    threshold: float
    raw: float
    null: float
    perfect: float
    normalised: float


def evaluate(
    series: list[Series],
    profiles: dict[str, Profile],
    n_labelled_windows: int,
    thresholds: dict[str, float] | None = None,
) -> list[ProfileResult]:
    """Normalised corpus score per profile, optimising the threshold unless one is given."""
    out = []
    for name, prof in profiles.items():
        if thresholds and name in thresholds:
            thr = thresholds[name]
            raw = score_corpus(series, prof, thr).score
        else:
            thr, raw = optimise_threshold(series, prof)
        null = score_corpus(series, prof, math.inf).score
        perfect = prof.tp * n_labelled_windows
        out.append(ProfileResult(name, thr, raw, null, perfect, normalise(raw, null, perfect)))
    return out
