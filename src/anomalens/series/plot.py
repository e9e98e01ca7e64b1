"""The series plot: one panel per channel, anomalous windows shaded, the anomaly map underneath (in units of
each channel's threshold: the dashed line at 1). Optional: without matplotlib, `PlotUnavailable` says so."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .detector import SeriesResult

MAX_POINTS = 20_000  # longer series are drawn from evenly spaced points (each window is still shaded)


class PlotUnavailable(RuntimeError):
    """matplotlib is not installed: no plot, the rest of the output stands."""


def plot_series(result: SeriesResult, path: str | Path) -> Path:
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only: no display needed
        import matplotlib.pyplot as plt
    except ImportError:
        raise PlotUnavailable("no plot: it needs matplotlib (pip install 'anomalens[series]')") from None
    reference_points = result.reference_points if result.own_reference else 0
    s = result.series
    x = s.times.astype("datetime64[s]") if s.datetimes else s.times
    keep = np.unique(np.linspace(0, len(s) - 1, min(len(s), MAX_POINTS)).astype(int))
    panels = len(s.channels) + 1
    fig, axes = plt.subplots(panels, 1, figsize=(12, 1.8 + 1.6 * panels), sharex=True, squeeze=False)
    for k, channel in enumerate(s.channels + ["anomaly score"]):
        ax = axes[k, 0]
        if k < len(s.channels):
            ax.plot(x[keep], s.values[keep, k], lw=0.8, color="tab:blue")
            normal = result.normals[k]
            ax.axhspan(normal.low, normal.high, color="tab:green", alpha=0.08, lw=0)
        else:
            ax.plot(x[keep], result.scores[keep], lw=0.8, color="tab:purple")
            ax.axhline(result.calibration.threshold, color="tab:red", ls="--", lw=0.8)
        for w in result.windows:
            shade = "tab:red" if k == len(s.channels) or channel in w.channels else "tab:orange"
            ax.axvspan(
                x[w.start], x[w.end] if w.end > w.start else x[min(w.end + 1, len(s) - 1)], color=shade, alpha=0.3, lw=0
            )
        if reference_points:
            ax.axvline(x[min(reference_points, len(s) - 1)], color="grey", ls=":", lw=0.8)
        ax.set_ylabel(channel)
    verdict = f"anomalous ({len(result.windows)} windows)" if result.anomalous else "normal"
    axes[0, 0].set_title(f"{Path(s.source).name or 'series'}: {verdict}, probability {result.probability:.0%}")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
