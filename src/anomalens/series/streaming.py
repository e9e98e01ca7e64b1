"""Streaming detector: each point is scored from the points before it only, in bounded memory.

For every window length w the newest window (the last w values) is compared with the last `bank`
windows that end at least w points earlier (so it never matches itself): its distance to the nearest
one (raw values: level shifts matter) is new when the series does something it has not done lately.
That distance, averaged over `smooth` points, is turned into a conformal tail score: the fraction of
the last `history` such distances it exceeds — scores mean the same on every series, whatever its
scale or noise. Lengths are combined by their maximum; a value beyond everything seen so far (by
`spatial_tolerance` of the range) scores 1. After a score reaches `alarm`, the next `rest` points
report 0: one alarm per event, as an operator wants (and NAB rewards).

Work is batched (a chunk of points at a time, matrix products against the bank), but a point's
score never depends on a later point: `update` gives the same scores however the stream is cut.
"""

from __future__ import annotations

import bisect
from collections import deque
from dataclasses import dataclass, field

import numpy as np

LENGTHS = (8, 32)  # short windows catch spikes and steps quickly; longer ones catch changed shapes
MIN_HISTORY = 50  # distances needed before a tail score means anything


@dataclass
class _LengthState:
    """What one window length remembers: recent distances and the sorted tail-score history."""

    length: int
    recent: deque = field(default_factory=deque)  # last `smooth` raw distances
    history: deque = field(default_factory=deque)  # last `history` smoothed distances, in order
    ordered: list = field(default_factory=list)  # the same, sorted


class StreamingDetector:
    """Online anomaly scores in [0, 1] for one channel; `update(values)` scores new points."""

    def __init__(
        self,
        learning: int = 750,
        lengths: tuple[int, ...] = LENGTHS,
        bank: int = 4000,
        history: int = 5000,
        smooth: int = 4,
        alarm: float = 0.99,
        spatial_tolerance: float = 0.05,
        chunk: int = 512,
    ):
        self.lengths = tuple(lengths)
        self.bank, self.history_size, self.smooth, self.alarm = bank, history, smooth, alarm
        self.rest = max(1, learning // 8)  # points silenced after an alarm
        self.tolerance = spatial_tolerance
        self.chunk = chunk
        self._keep = bank + 2 * max(self.lengths) + chunk  # values kept: the bank's windows and their lead-in
        self._past = np.empty(0)
        self._seen = 0
        self._low, self._high = np.inf, -np.inf
        self._center, self._scale = 0.0, 1.0  # fixed from the first chunk: distances stay well-conditioned
        self._last_alarm = -(10**18)
        self._states = [_LengthState(w) for w in self.lengths]

    def update(self, values: np.ndarray) -> np.ndarray:
        values = np.asarray(values, dtype=np.float64).ravel()
        return np.concatenate(
            [self._update_chunk(values[i : i + self.chunk]) for i in range(0, values.size, self.chunk)] or [np.empty(0)]
        )

    def _update_chunk(self, new: np.ndarray) -> np.ndarray:
        if self._seen == 0:
            self._center = float(np.median(new))
            self._scale = float(np.std(new)) or max(abs(self._center), 1.0)
        buf = np.concatenate([self._past, (new - self._center) / self._scale])
        first = self._seen - self._past.size  # stream index of buf[0]
        per_length = np.stack(
            [self._tail_scores(s, self._nearest(buf, first, s.length, new.size)) for s in self._states]
        )
        combined = per_length.max(axis=0)
        out = np.empty(new.size)
        for i, x in enumerate(new):
            t = self._seen + i
            span = self._high - self._low
            beyond = self._seen + i > 0 and (
                x > self._high + self.tolerance * span or x < self._low - self.tolerance * span
            )
            score = 1.0 if beyond else float(combined[i])
            self._low, self._high = min(self._low, x), max(self._high, x)
            out[i] = 0.0 if t - self._last_alarm <= self.rest else score
            if score >= self.alarm:
                self._last_alarm = t
        self._seen += new.size
        self._past = buf[-self._keep :]
        return out

    def _nearest(self, buf: np.ndarray, first: int, w: int, n_new: int) -> np.ndarray:
        """Distance of each new point's window to the nearest past window ending ≥ w points before it."""
        out = np.full(n_new, np.nan)
        ends = np.arange(buf.size - n_new, buf.size)  # buffer positions of the new points
        ok = ends - 2 * w + 1 >= 0  # the window and at least one candidate fit in the buffer
        if not ok.any():
            return out
        windows = np.lib.stride_tricks.sliding_window_view(buf, w)  # row j ends at buffer position j + w - 1
        q_rows = ends[ok] - w + 1
        lo_end = max(w - 1, ends[0] - w - self.bank + 1)  # the bank: windows ending before the chunk's first query
        cand_rows = np.arange(lo_end - w + 1, ends[-1] - w - w + 2)  # through the last query's last candidate
        q, c = windows[q_rows], windows[cand_rows]
        d2 = (c * c).sum(1)[None, :] - 2.0 * q @ c.T
        # a candidate must end at least w points before the query's end (no overlap with the query)
        d2[cand_rows[None, :] + w - 1 > (ends[ok] - w)[:, None]] = np.inf
        best = d2.min(axis=1) + (q * q).sum(1)
        out[ok] = np.sqrt(np.maximum(best, 0.0) / w)
        return out

    def _tail_scores(self, state: _LengthState, dist: np.ndarray) -> np.ndarray:
        """Fraction of the recent history each (smoothed) distance exceeds."""
        out = np.zeros(dist.size)
        for i, d in enumerate(dist):
            if np.isnan(d):
                continue
            state.recent.append(d)
            if len(state.recent) > self.smooth:
                state.recent.popleft()
            x = sum(state.recent) / len(state.recent)
            if len(state.ordered) >= MIN_HISTORY:
                out[i] = bisect.bisect_left(state.ordered, x) / len(state.ordered)
            bisect.insort(state.ordered, x)
            state.history.append(x)
            if len(state.history) > self.history_size:
                del state.ordered[bisect.bisect_left(state.ordered, state.history.popleft())]
        return out
