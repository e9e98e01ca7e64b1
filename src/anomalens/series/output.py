"""What `series detect` writes per file, the JSON first (so that nothing later can lose it): the record
with per-point scores and decisions, the same per point as CSV (and Parquet when pyarrow is there), then
the plot when matplotlib is there (else a one-line note; the plot is optional)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from .detector import SeriesResult

POINT_COLUMNS = ("time", "score", "anomalous")  # then one score column per channel


def point_columns(result: SeriesResult) -> dict[str, list]:
    """Per point: its time, the combined score (1 = the threshold), the decision and each channel's score."""
    s = result.series
    columns: dict[str, list] = {
        "time": [s.time_text(i) for i in range(len(s))],
        "score": np.round(result.scores, 4).tolist(),
        "anomalous": result.point_anomalous.astype(int).tolist(),
    }
    for k, channel in enumerate(s.channels):
        columns[f"score_{channel}"] = np.round(result.channel_scores[:, k], 4).tolist()
    return columns


def write_outputs(result: SeriesResult, record: dict, out: Path, stem: str) -> tuple[dict, str | None]:
    """Writes STEM.json, STEM.points.csv, STEM.points.parquet (with pyarrow) and STEM.png (with matplotlib);
    returns the record as written and a note when a part was left out."""
    columns = point_columns(result)
    written = {**record, "point_scores": columns["score"], "point_anomalous": columns["anomalous"]}
    (out / f"{stem}.json").write_text(json.dumps(written, indent=2))
    with (out / f"{stem}.points.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        writer.writerows(zip(*columns.values()))
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:  # Parquet is optional: the CSV holds the same
        pass
    else:
        pq.write_table(pa.table(columns), out / f"{stem}.points.parquet")
    from .plot import PlotUnavailable, plot_series

    try:
        written["plot"] = str(plot_series(result, out / f"{stem}.png"))
    except PlotUnavailable as missing:
        return written, str(missing)
    (out / f"{stem}.json").write_text(json.dumps(written, indent=2))
    return written, None
