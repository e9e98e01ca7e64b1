"""Series detectors by name: the seam a new time-series detector plugs into (one file, one decorator).

A series detector works on one channel. `fit(reference)` learns from that channel's normal values and
returns the reference's own scores, each step scored as if it were new (leave-one-out, or past-only):
the decision is taken from them. `score(values)` scores values that follow the reference (or a separate
recording of the same process). `context` is how many points before `values` the detector needs to score
their first step as it would inside the reference-and-series; `alarm` is a detector's own alarm level
when its scores are already on a stated scale (None: the threshold is fitted to the reference's scores).

    @register_series_detector
    class MyDetector:
        name = "mine"
        ...

then `anomalens series detect --detector mine` and `anomalens series eval --detector mine` run it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar, Protocol, TypeVar

import numpy as np

DEFAULT_DETECTOR = "reference"  # what `series detect` and `series eval` run unless told otherwise


class ChannelDetector(Protocol):
    name: ClassVar[str]
    alarm: ClassVar[float | None]

    @property
    def window(self) -> int:
        """The longest window it looks at: sets the length of the decision's normal blocks."""
        ...

    @property
    def context(self) -> int: ...

    def fit(self, reference: np.ndarray) -> np.ndarray: ...

    def score(self, values: np.ndarray) -> np.ndarray: ...


SERIES_DETECTORS: dict[str, Callable[[], ChannelDetector]] = {}
D = TypeVar("D", bound=type)


def register_series_detector(cls: D) -> D:
    """Class decorator: make a series detector known by its `name` (to `series detect`, `series eval`, the server)."""
    SERIES_DETECTORS[cls.name] = cls  # type: ignore[attr-defined]
    return cls


def series_detector(name: str) -> ChannelDetector:
    """A fresh, unfitted detector of this name."""
    if name not in SERIES_DETECTORS:
        raise ValueError(f"unknown series detector {name!r}: choose one of {', '.join(sorted(SERIES_DETECTORS))}")
    return SERIES_DETECTORS[name]()
