"""Loading time series: CSV or Parquet, a time column and one or more value columns.

Rows are sorted by time if they are not already (a stable sort: repeated timestamps keep their order);
empty cells are missing values, filled by linear interpolation over time so the experts see no holes;
gaps in the sampling (a step over `GAP_FACTOR` times the typical step) are recorded. A row that cannot
be read raises `SeriesFormatError` naming the file, the line and why. A CSV's delimiter is sniffed from its
first lines (comma when unclear) unless given. Label columns (`LABEL_NAMES`: anomaly, changepoint, …) are
answers, not measurements: left out of the channels unless named, and listed in `Series.left_out`.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np

GAP_FACTOR = 3.0  # a time step this many times the median step is a gap
TIME_NAMES = ("timestamp", "time", "datetime", "date", "ts")
LABEL_NAMES = ("anomaly", "changepoint", "label", "labels", "is_anomaly")
DELIMITERS = ",;\t|"
SNIFF_CHARS = 8192
MAX_VALUE = 1e150  # squared distances of larger values overflow float64: refused when read, with the line


class SeriesFormatError(ValueError):
    """A file that is not a usable time series; the message says which file, line and why."""


def series_failure(name: str | Path, error: Exception) -> str:
    """Why a series file could not be inspected, naming it: a format or value error says it in its own words,
    anything else (a failure on extreme values) by its type and message."""
    known = isinstance(error, SeriesFormatError) or type(error) is ValueError
    reason = str(error) if known and str(error) else f"could not be inspected ({type(error).__name__}: {error})"
    return reason if reason.startswith(str(name)) else f"{name}: {reason}"


@dataclass(frozen=True)
class Series:
    """Values (n, channels) at increasing times (seconds since the epoch, or row numbers)."""

    times: np.ndarray
    values: np.ndarray
    channels: list[str]
    source: str = ""
    datetimes: bool = True  # times came from dates (else they are plain numbers)
    missing: int = 0  # cells that were empty and interpolated
    gaps: list[int] = field(default_factory=list)  # row indices that start after a gap
    left_out: list[str] = field(default_factory=list)  # label columns recognised and not used as channels

    def __len__(self) -> int:
        return self.times.size

    def rows(self, start: int, stop: int) -> Series:
        return Series(
            self.times[start:stop],
            self.values[start:stop],
            self.channels,
            self.source,
            self.datetimes,
            left_out=self.left_out,
        )

    def time_text(self, i: int) -> str:
        """Row i's time as written for people."""
        t = float(self.times[i])
        if not self.datetimes:
            return f"{t:g}"
        return datetime.fromtimestamp(t, tz=None).strftime("%Y-%m-%d %H:%M:%S") if math.isfinite(t) else "?"


def split_reference(series: Series, fraction: float) -> tuple[Series, Series]:
    """The first `fraction` of a series as its normal reference, and the whole series to inspect."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"reference fraction must be in (0, 1), got {fraction}")
    n = int(len(series) * fraction)
    return series.rows(0, n), series


def reference_length(series: Series, fraction: float, rows: int | None = None, until: str | None = None) -> int:
    """How many first rows of a series are its normal reference: `rows`, those up to time `until`, else `fraction`."""
    if rows is not None:
        n = rows
    elif until is not None:
        t, is_date = _parse_time(until.strip())
        if t is None or is_date != series.datetimes:
            kind = "a date" if series.datetimes else "a number"
            raise ValueError(f"{series.source}: reference end {until!r} is not {kind} like the series' times")
        n = int(np.searchsorted(series.times, t, side="right"))
    else:
        return split_reference(series, fraction)[0].times.size
    if not 8 <= n < len(series):
        raise ValueError(
            f"{series.source}: the reference would be {n} of {len(series)} rows; it needs 8 or more, not all"
        )
    return n


def load_series(
    path: str | Path,
    time_column: str | None = None,
    columns: list[str] | None = None,
    *,
    exclude: tuple[str, ...] = (),
    delimiter: str | None = None,
) -> Series:
    path = Path(path)
    if not path.is_file():
        raise SeriesFormatError(f"{path}: no such file")
    header, rows = _read_parquet(path) if path.suffix.lower() in (".parquet", ".pq") else _read_csv(path, delimiter)
    tcol = _time_column(path, header, time_column)
    for c in [*(columns or []), *exclude]:
        if c not in header:
            raise SeriesFormatError(f"{path}: no column {c!r} (columns: {', '.join(header)})")
    left_out = [] if columns else [h for h in header if h.lower() in LABEL_NAMES and h != tcol]
    vcols = columns or [h for h in header if h != tcol and h not in exclude and h not in left_out]
    if not vcols:
        hint = _delimiter_hint(header) if len(header) == 1 else ""
        raise SeriesFormatError(f"{path}: no value column besides the time column {tcol!r}{hint}")
    ti, vi = header.index(tcol), [header.index(c) for c in vcols]
    times, values, datetimes = [], [], None
    for line, row in rows:
        if len(row) != len(header):
            raise SeriesFormatError(f"{path}, line {line}: {len(row)} fields, the header has {len(header)}")
        t, is_date = _parse_time(row[ti])
        if t is None:
            raise SeriesFormatError(f"{path}, line {line}: time {row[ti]!r} is neither a date nor a number")
        if datetimes is not None and is_date != datetimes:
            raise SeriesFormatError(f"{path}, line {line}: time {row[ti]!r} mixes dates and plain numbers")
        datetimes = is_date
        times.append(t)
        values.append([_parse_value(path, line, vcols[k], row[i]) for k, i in enumerate(vi)])
    if len(times) < 2:
        raise SeriesFormatError(f"{path}: {len(times)} data rows; a series needs at least 2")
    t_arr, v_arr = np.asarray(times), np.asarray(values, dtype=np.float64)
    order = np.argsort(t_arr, kind="stable")
    t_arr, v_arr = t_arr[order], v_arr[order]
    missing = int(np.isnan(v_arr).sum())
    for k in range(v_arr.shape[1]):
        bad = np.isnan(v_arr[:, k])
        if bad.all():
            raise SeriesFormatError(f"{path}: column {vcols[k]!r} has no values")
        if bad.any():
            v_arr[bad, k] = np.interp(t_arr[bad], t_arr[~bad], v_arr[~bad, k])
    steps = np.diff(t_arr)
    typical = float(np.median(steps[steps > 0])) if (steps > 0).any() else 0.0
    gaps = (np.flatnonzero(steps > GAP_FACTOR * typical) + 1).tolist() if typical > 0 else []
    return Series(t_arr, v_arr, list(vcols), str(path), bool(datetimes), missing, gaps, left_out)


def _delimiter_hint(header: list[str]) -> str:
    found = [d for d in DELIMITERS if d in header[0]]
    return f" (the header is one column; is the delimiter {found[0]!r}? --delimiter)" if found else ""


def _sniffed_delimiter(text: str) -> str:
    try:
        return csv.Sniffer().sniff(text[:SNIFF_CHARS], delimiters=DELIMITERS).delimiter
    except csv.Error:  # one column, or nothing regular to go by
        return ","


def _read_csv(path: Path, delimiter: str | None = None) -> tuple[list[str], list[tuple[int, list[str]]]]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as error:
        raise SeriesFormatError(f"{path}: not a text file ({error.reason})") from None
    reader = csv.reader(text.splitlines(), delimiter=delimiter or _sniffed_delimiter(text))
    header = [h.strip() for h in next(reader, [])]
    if not any(header):
        raise SeriesFormatError(f"{path}: empty file (a header row is needed)")
    rows = [(reader.line_num, [c.strip() for c in row]) for row in reader if any(c.strip() for c in row)]
    return header, rows


def _read_parquet(path: Path) -> tuple[list[str], list[tuple[int, list[str]]]]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise SeriesFormatError(f"{path}: reading Parquet needs pyarrow (pip install pyarrow)") from None
    table = pq.read_table(path).to_pydict()
    header = list(table)
    cells = [
        ["" if v is None else (v.isoformat() if hasattr(v, "isoformat") else str(v)) for v in col]
        for col in table.values()
    ]
    return header, [(i + 2, list(row)) for i, row in enumerate(zip(*cells))]  # line numbers as if row 1 were a header


def _time_column(path: Path, header: list[str], chosen: str | None) -> str:
    if chosen:
        if chosen not in header:
            raise SeriesFormatError(f"{path}: no time column {chosen!r} (columns: {', '.join(header)})")
        return chosen
    for h in header:
        if h.lower() in TIME_NAMES:
            return h
    return header[0]


def _parse_time(text: str) -> tuple[float | None, bool]:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp(), True
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        return None, False
    return (value, False) if math.isfinite(value) else (None, False)


def _parse_value(path: Path, line: int, column: str, text: str) -> float:
    if text == "" or text.lower() in ("nan", "na", "null", "none"):
        return math.nan
    try:
        value = float(text)
    except ValueError:
        raise SeriesFormatError(f"{path}, line {line}: {column} = {text!r} is not a number") from None
    if not math.isfinite(value):
        raise SeriesFormatError(f"{path}, line {line}: {column} = {text!r} is not finite")
    if abs(value) > MAX_VALUE:
        raise SeriesFormatError(f"{path}, line {line}: {column} = {text!r} is too large to score (above {MAX_VALUE:g})")
    return value
