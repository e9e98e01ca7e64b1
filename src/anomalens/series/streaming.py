"""Streaming detector: each point is scored from the points before it only, in bounded memory.

For every window length w the newest window (the last w values) is compared with the last `bank`
windows that end at least w points earlier (so it never matches itself): its distance to the nearest
one (raw values: level shifts matter) is large when the series does something it has not done lately.
That distance, averaged over `smooth` points, becomes a conformal tail score: the fraction of the last
`history` such distances it exceeds — scores mean the same on every series, whatever its scale or
noise. Lengths are combined by their maximum; a value beyond everything seen so far (by
`spatial_tolerance` of the range) scores 1. After a score reaches `alarm`, the next `rest` points
report 0: one alarm per event, as an operator wants (and NAB rewards).

Work is batched, a chunk of points at a time (matrix products against the bank, ranks by sorting), but
a point's score never depends on a later point: `update` gives the same scores however the stream is cut
(after its first chunk, which fixes the centring that keeps distances well-conditioned; up to float32
rounding in the distances, which can move a tail score by one rank).
"""

from __future__ import annotations

import copy

import numpy as np
from threadpoolctl import threadpool_limits

from .registry import register_series_detector

LENGTHS = (6, 32)  # short windows catch spikes and steps quickly; longer ones catch changed shapes
MIN_HISTORY = 50  # distances needed before a tail score means anything
ALARM = 0.99  # a score this high raises an alarm (and starts the rest period)


class _TailScores:
    """One window length's memory of recent distances: smoothing carry and the last `size` smoothed values."""

    def __init__(self, size: int, smooth: int):
        self.size, self.smooth = size, smooth
        self.carry = np.empty(0)  # the last smooth - 1 raw distances
        self.history = np.empty(0)  # smoothed distances, oldest first, at most `size`

    def update(self, dist: np.ndarray) -> np.ndarray:
        """Tail score of each new distance (NaN: not yet defined → 0) against the history before it."""
        out = np.zeros(dist.size)
        valid = ~np.isnan(dist)
        if not valid.any():
            return out
        raw = np.concatenate([self.carry, dist[valid]])
        c = np.concatenate(([0.0], np.cumsum(raw)))
        ends = np.arange(self.carry.size, raw.size) + 1
        starts = np.maximum(ends - self.smooth, 0)
        x = (c[ends] - c[starts]) / (ends - starts)  # moving average over up to `smooth` distances
        self.carry = raw[-(self.smooth - 1) :] if self.smooth > 1 else np.empty(0)
        h, n = self.history, x.size
        # before new value i: the history is h[dropped_i:] + x[:i], dropped_i = max(0, len(h) + i - size)
        # (exact while a chunk is no longer than the history, which StreamingDetector ensures)
        i = np.arange(n)
        dropped = np.maximum(0, h.size + i - self.size)
        below = np.searchsorted(np.sort(h), x, side="left").astype(float)
        if n > 1:
            earlier = np.tril(x[None, :] < x[:, None], k=-1).sum(1)  # earlier new values below x_i
            below += earlier
        if dropped.any():
            old = h[: min(h.size, int(dropped.max()))]
            gone = (old[None, :] < x[:, None]) & (np.arange(old.size)[None, :] < dropped[:, None])
            below -= gone.sum(1)
        count = h.size + i - dropped
        scores = np.where(count >= MIN_HISTORY, below / np.maximum(count, 1), 0.0)
        out[valid] = scores
        self.history = np.concatenate([h, x])[-self.size :]
        return out


class _WindowBank:
    """The buffer's windows of one length as rows [-2c, |c|²] (float32), appended as points arrive and
    dropped as they leave: each window is prepared once, and a product with [q, 1] gives |c|² - 2 q·c."""

    def __init__(self, w: int, keep: int):
        self.w = w
        self.rows = np.empty((2 * keep, w + 1), dtype=np.float32)
        self.start = self.stop = 0  # rows[start:stop] are the windows of the buffer, oldest first

    def extend(self, buf: np.ndarray, n_new: int) -> None:
        """Add the windows ending at the last n_new buffer positions (those that fit)."""
        first = max(0, buf.size - n_new - self.w + 1)
        if buf.size - first < self.w:
            return
        win = np.lib.stride_tricks.sliding_window_view(buf[first:], self.w)
        if self.stop + win.shape[0] > self.rows.shape[0]:  # compact: move the live rows to the front
            live = self.stop - self.start
            self.rows[:live] = self.rows[self.start : self.stop]
            self.start, self.stop = 0, live
        self.rows[self.stop : self.stop + win.shape[0], :-1] = -2.0 * win
        self.rows[self.stop : self.stop + win.shape[0], -1] = (win * win).sum(1)
        self.stop += win.shape[0]

    def drop_to(self, count: int) -> None:
        """Keep the newest `count` windows."""
        self.start = max(self.start, self.stop - count)

    def view(self, a: int, b: int) -> np.ndarray:
        """Windows a..b-1, counted from the oldest kept."""
        return self.rows[self.start + a : self.start + b]


class StreamingDetector:
    """Online anomaly scores in [0, 1] for one channel; `update(values)` scores new points."""

    def __init__(
        self,
        learning: int = 750,
        lengths: tuple[int, ...] = LENGTHS,
        bank: int = 4000,
        history: int = 5000,
        smooth: int = 4,
        alarm: float = ALARM,
        spatial_tolerance: float = 0.05,
        chunk: int = 512,
    ):
        self.lengths = tuple(lengths)
        self.bank, self.alarm, self.chunk = bank, alarm, min(chunk, history)
        self.rest = max(1, learning // 8)  # points silenced after an alarm
        self.tolerance = spatial_tolerance
        self._keep = bank + 2 * max(self.lengths) + self.chunk  # values kept: the bank's windows and their lead-in
        self._past = np.empty(0)
        self._seen = 0
        self._low, self._high = np.inf, -np.inf
        self._center, self._scale = 0.0, 1.0  # fixed from the first chunk: distances stay well-conditioned
        self._last_alarm = -(10**18)
        self._tails = [_TailScores(history, smooth) for _ in self.lengths]
        self._banks = [_WindowBank(w, self._keep) for w in self.lengths]

    def update(self, values: np.ndarray) -> np.ndarray:
        values = np.asarray(values, dtype=np.float64).ravel()
        with threadpool_limits(1, user_api="blas"):  # products this small run 3× faster on one BLAS thread
            parts = [self._update_chunk(values[i : i + self.chunk]) for i in range(0, values.size, self.chunk)]
        return np.concatenate(parts) if parts else np.empty(0)

    def _update_chunk(self, new: np.ndarray) -> np.ndarray:
        if self._seen == 0:
            self._center = float(np.median(new))
            self._scale = float(np.std(new)) or max(abs(self._center), 1.0)
        buf = np.concatenate([self._past, (new - self._center) / self._scale])
        for bank in self._banks:
            bank.extend(buf, new.size)
        combined = np.max(
            [tail.update(self._nearest(buf, b, new.size)) for tail, b in zip(self._tails, self._banks)], axis=0
        )
        # beyond the range of every earlier value (running min / max, the chunk's own earlier points included)
        low = np.minimum.accumulate(np.concatenate(([self._low], new)))[:-1]
        high = np.maximum.accumulate(np.concatenate(([self._high], new)))[:-1]
        span = high - low
        with np.errstate(invalid="ignore"):  # the very first point has no range (inf - inf)
            beyond = (new > high + self.tolerance * span) | (new < low - self.tolerance * span)
        score = np.where(beyond & np.isfinite(span), 1.0, combined)
        # rest: silenced while an alarm (at any earlier point, silenced or not) is within `rest` points
        t = self._seen + np.arange(new.size)
        alarm_at = np.where(score >= self.alarm, t, -(10**18))
        last_before = np.maximum.accumulate(np.concatenate(([self._last_alarm], alarm_at)))[:-1]
        out = np.where(t - last_before <= self.rest, 0.0, score)
        self._last_alarm = int(max(self._last_alarm, alarm_at.max()))
        self._low, self._high = min(self._low, float(new.min())), max(self._high, float(new.max()))
        self._seen += new.size
        self._past = buf[-self._keep :]
        for bank in self._banks:
            bank.drop_to(max(0, self._past.size - bank.w + 1))
        return out

    def _nearest(self, buf: np.ndarray, bank: _WindowBank, n_new: int) -> np.ndarray:
        """Distance of each new point's window to the nearest past window ending ≥ w points before it."""
        w = bank.w
        out = np.full(n_new, np.nan)
        ends = np.arange(buf.size - n_new, buf.size)  # buffer positions of the new points
        ok = ends - 2 * w + 1 >= 0  # the window and at least one candidate fit in the buffer
        if not ok.any():
            return out
        windows = np.lib.stride_tricks.sliding_window_view(buf, w)  # row j ends at buffer position j + w - 1
        q_ends = ends[ok]
        q = windows[q_ends - w + 1]
        # |q - c|² = |q|² + (|c|² - 2 q·c): the bracket is one float32 product of [q, 1] with the bank's rows
        q1t = np.ascontiguousarray(np.hstack([q, np.ones((q.shape[0], 1))]).astype(np.float32).T)
        # query ending at e: candidate rows r with e - 2w - bank + 1 < r <= e - 2w + 1 (the last `bank` windows
        # ending at least w before e). Rows valid for every query of the chunk need no mask; the two edges do.
        low, high = q_ends - 2 * w - self.bank + 2, q_ends - 2 * w + 2  # per query: rows [low, high)
        lo_all, hi_all = max(0, int(low[-1])), max(0, int(high[0]))
        best = np.full(q.shape[0], np.inf, dtype=np.float32)
        for a, b, masked in (
            (max(0, int(low[0])), lo_all, True),
            (lo_all, hi_all, False),
            (hi_all, int(high[-1]), True),
        ):
            if b <= a:
                continue
            d2 = bank.view(a, b) @ q1t  # (candidates, queries): this orientation runs faster in BLAS
            if masked:
                rows = np.arange(a, b)[:, None]
                d2[(rows < low[None, :]) | (rows >= high[None, :])] = np.inf
            best = np.minimum(best, d2.min(0))
        out[ok] = np.sqrt(np.maximum(best.astype(np.float64) + (q * q).sum(1), 0.0) / w)
        return out


@register_series_detector
class StreamingSeriesDetector:
    """`StreamingDetector` as a registered series detector: the reference is the stream's start (its length
    sets the rest period, as NAB's probation does) and whatever is scored continues that stream."""

    name = "streaming"
    alarm = ALARM  # conformal tail scores mean the same on every series: the detector's own level holds
    window = max(LENGTHS)
    context = 0  # its state after the reference carries all the past it needs

    def __init__(self) -> None:
        self.fitted: StreamingDetector | None = None

    def fit(self, reference: np.ndarray) -> np.ndarray:
        self.fitted = StreamingDetector(learning=max(1, np.asarray(reference).size))
        self.fitted.update(reference)
        return np.zeros(np.asarray(reference).size)  # its learning period raises no alarm (NAB's probation)

    def score(self, values: np.ndarray) -> np.ndarray:
        if self.fitted is None:
            raise ValueError("fit the streaming detector on a reference first")
        return copy.deepcopy(self.fitted).update(values)  # a copy: the fitted stream can score other series
