"""Listed inspections written to a file an auditor opens elsewhere: CSV or Parquet, a batch at a time (an
export of millions of records never holds them all)."""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterable
from pathlib import Path

from .queries import LISTED

FORMATS = ("csv", "parquet")
NUMBERS = ("score", "probability", "confidence")


def export_rows(batches: Iterable[list[dict]], path: str | os.PathLike, format: str | None = None) -> int:
    """Listed inspections (`Queries.iter`) to a CSV or Parquet file (by `format`, else the file's suffix); how
    many. Regions are JSON text; `created` an ISO 8601 time in CSV, a UTC timestamp in Parquet."""
    path = Path(path)
    format = (format or path.suffix.lstrip(".")).lower()
    if format not in FORMATS:
        raise ValueError(f"export format is csv or parquet, not {format!r}")
    return _csv(batches, path) if format == "csv" else _parquet(batches, path)


def _csv(batches: Iterable[list[dict]], path: Path) -> int:
    count = 0
    with path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.DictWriter(file, fieldnames=LISTED)
        writer.writeheader()
        for rows in batches:
            count += len(rows)
            writer.writerows(_flat(row) | {"created": row["created"].isoformat()} for row in rows)
    return count


def _parquet(batches: Iterable[list[dict]], path: Path) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    def kind(name: str):
        return pa.timestamp("us", tz="UTC") if name == "created" else pa.float64() if name in NUMBERS else pa.string()

    schema = pa.schema([(name, kind(name)) for name in LISTED])
    count = 0
    with pq.ParquetWriter(path, schema) as parquet:
        for rows in batches:
            count += len(rows)
            parquet.write_table(pa.Table.from_pylist([_flat(row) for row in rows], schema=schema))
    return count


def _flat(row: dict) -> dict:
    return row | {"regions": json.dumps(row["regions"])}
