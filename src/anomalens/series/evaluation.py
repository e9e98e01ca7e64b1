"""Evaluating a registered series detector on labelled series in NAB layout: ``ROOT/data/<group>/<file>.csv``
and ``ROOT/labels/combined_windows.json`` (``{"group/file.csv": [[start, end], ...]}``).

Each file is inspected as `series detect` inspects it, with its first 15 % (at most 750 points, NAB's
probation) as the normal reference; nothing in the probation counts. Per file: labelled windows, those
with an anomalous point inside (found), anomalous windows outside every label (false alarms), how far
into its label the first anomalous point came, and point-wise counts: a point is labelled when it lies in
a labelled window and flagged when it lies in an anomalous window. From them the point-wise F1, the
false-alarm rate (FAR: flagged normal points / normal points) and the missed-alarm rate (MAR: unflagged
labelled points / labelled points). Beside them NAB's normalised score (`nab`: 100 a perfect detector, 0 one
that never fires) under each profile of ROOT/config/profiles.json (NAB's published defaults without one),
from the detector's per-point scores of the same inspection, one threshold per profile swept over all files.
"""

from __future__ import annotations

import json
import time
from datetime import datetime
from pathlib import Path

import numpy as np

from . import nab
from .detector import SeriesDetector, SeriesResult
from .load import load_series
from .registry import DEFAULT_DETECTOR


def evaluate_nab_layout(root: Path, detector: str = DEFAULT_DETECTOR) -> tuple[list[dict], list[nab.Series]]:
    """Each labelled file inspected once: its counts (`file_counts`, and seconds), and its per-point scores
    with its labelled rows, for NAB's score (`nab_scores`)."""
    labels_file = root / "labels" / "combined_windows.json"
    if not labels_file.is_file():
        raise FileNotFoundError(f"{root}: no labels/combined_windows.json (NAB layout expected)")
    labels = json.loads(labels_file.read_text())
    rows, scored = [], []
    for rel, windows in sorted(labels.items()):
        series = load_series(root / "data" / rel)
        t0 = time.perf_counter()
        skip = nab.probation_length(len(series))
        result = SeriesDetector(series.rows(0, skip), detector).inspect(series, starts_with_reference=True)
        seconds = time.perf_counter() - t0
        spans = [_rows(series.times, start, end) for start, end in windows]
        rows.append({"file": rel, **file_counts(result, spans, skip), "seconds": round(seconds, 3)})
        scored.append(nab.Series(rel, result.scores, spans))
    return rows, scored


def nab_scores(root: Path, scored: list[nab.Series]) -> dict[str, float]:
    """NAB's normalised score per profile (``nab_<profile>``), each at the threshold best for all files
    together; none when no file has a labelled window (no perfect score to normalise by)."""
    labelled = sum(len(s.windows) for s in scored)
    if not labelled:
        return {}
    profiles = nab.load_profiles(root / "config" / "profiles.json")
    return {f"nab_{r.profile}": round(r.normalised, 2) for r in nab.evaluate(scored, profiles, labelled)}


def _rows(times: np.ndarray, start: str, end: str) -> tuple[int, int]:
    """The inclusive rows of a labelled window given by its start and end times."""
    lo = int(np.searchsorted(times, datetime.fromisoformat(start).timestamp(), side="left"))
    hi = int(np.searchsorted(times, datetime.fromisoformat(end).timestamp(), side="right")) - 1
    return lo, hi


def file_counts(result: SeriesResult, spans: list[tuple[int, int]], skip: int) -> dict:
    """Window and point-wise counts of one inspected file against its labelled rows, after `skip` rows."""
    flagged = result.point_anomalous[skip:]
    labelled = np.zeros(len(result.series), dtype=bool)
    for lo, hi in spans:
        labelled[lo : hi + 1] = True
    labelled = labelled[skip:]
    found, delays = 0, []
    for lo, hi in spans:
        hit = np.flatnonzero(flagged[max(lo - skip, 0) : max(hi + 1 - skip, 0)])
        if hit.size:
            found += 1
            delays.append(float(hit[0]) / max(hi - lo + 1, 1))
    alarms = [w for w in result.windows if w.end >= skip]
    false = sum(1 for w in alarms if not any(w.start <= hi and lo <= w.end for lo, hi in spans))
    return {
        "points": len(result.series),
        "windows": len(spans),
        "found": found,
        "false_alarms": false,
        "first_alarm_in_window": round(float(np.mean(delays)), 3) if delays else None,
        "true_positive_points": int((flagged & labelled).sum()),
        "false_positive_points": int((flagged & ~labelled).sum()),
        "false_negative_points": int((~flagged & labelled).sum()),
        "true_negative_points": int((~flagged & ~labelled).sum()),
    }


def pointwise(rows: list[dict]) -> dict:
    """Point-wise F1, false-alarm rate and missed-alarm rate over the rows' summed counts."""
    tp, fp, fn, tn = (
        sum(r[f"{k}_points"] for r in rows)
        for k in ("true_positive", "false_positive", "false_negative", "true_negative")
    )
    return {
        "f1": round(2 * tp / max(2 * tp + fp + fn, 1), 4),
        "false_alarm_rate": round(fp / max(fp + tn, 1), 4),
        "missed_alarm_rate": round(fn / max(fn + tp, 1), 4),
    }
