"""Evaluating the streaming detector on labelled series in NAB layout: ``ROOT/data/<group>/<file>.csv`` and
``ROOT/labels/combined_windows.json`` (``{"group/file.csv": [[start, end], ...]}``).

Each file is scored online (past only); an alarm is a score at the detector's alarm level. As in NAB,
the first 15 % (at most 750 points) is probation: no alarm counts there, and it sets the rest period.
Per file: labelled windows, windows with an alarm inside (found), alarms outside every window (false),
and how far into its window the first alarm came. NAB's normalised score needs the corpus-wide threshold
sweep: `bench/nab_run.py`.
"""

from __future__ import annotations

import json
import math
import time
from datetime import datetime
from pathlib import Path

import numpy as np

from .detector import stream_scores
from .load import load_series
from .streaming import ALARM


def probation(n: int) -> int:
    return int(min(math.floor(0.15 * n), 750))


def evaluate_nab_layout(root: Path) -> list[dict]:
    labels_file = root / "labels" / "combined_windows.json"
    if not labels_file.is_file():
        raise FileNotFoundError(f"{root}: no labels/combined_windows.json (NAB layout expected)")
    labels = json.loads(labels_file.read_text())
    rows = []
    for rel, windows in sorted(labels.items()):
        series = load_series(root / "data" / rel)
        t0 = time.perf_counter()
        skip = probation(len(series))
        scores, _ = stream_scores(series.values, skip)
        seconds = time.perf_counter() - t0
        alarms = np.flatnonzero(scores >= ALARM)
        alarms = alarms[alarms >= skip]
        inside = np.zeros(alarms.size, dtype=bool)
        found, delays = 0, []
        for start, end in windows:
            lo = int(np.searchsorted(series.times, datetime.fromisoformat(start).timestamp(), side="left"))
            hi = int(np.searchsorted(series.times, datetime.fromisoformat(end).timestamp(), side="right")) - 1
            hit = (alarms >= lo) & (alarms <= hi)
            inside |= hit
            if hit.any():
                found += 1
                delays.append((int(alarms[hit][0]) - lo) / max(hi - lo + 1, 1))
        rows.append(
            {
                "file": rel,
                "points": len(series),
                "windows": len(windows),
                "found": found,
                "false_alarms": int((~inside).sum()),
                "first_alarm_in_window": round(float(np.mean(delays)), 3) if delays else None,
                "seconds": round(seconds, 3),
            }
        )
    return rows
