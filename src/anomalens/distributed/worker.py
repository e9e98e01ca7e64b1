"""The Ray Data actor that inspects a batch (`InspectWorker`: the model loaded once per actor, each image read —
fetched first where it is a URI — hashed, decoded and inspected here) and the Parquet row it makes of each
image (`row_schema`)."""

from __future__ import annotations

import hashlib
import json
import math
import os
import socket
import tempfile
from dataclasses import asdict, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from ..data.sources import fetched, is_uri
from ..result import InspectionResult, file_version
from ..service import Inspection


def row_schema():
    """The Parquet schema of a row: one image's inspection, what made it, when and where."""
    import pyarrow as pa

    region = pa.struct(
        [
            ("box", pa.list_(pa.int32())),  # x0, y0, x1, y1 in the image's pixels (x1, y1 exclusive)
            ("area_fraction", pa.float64()),
            ("peak", pa.float64()),
            ("centroid", pa.list_(pa.float64())),  # x, y
            ("location", pa.string()),
        ]
    )
    return pa.schema(
        [
            ("source", pa.string()),  # the image's absolute path, or its URI
            ("image_sha256", pa.string()),  # of the image's bytes, taken by the worker that read them (null: unread)
            ("width", pa.int32()),
            ("height", pa.int32()),
            ("score", pa.float64()),
            ("verdict", pa.string()),  # anomalous | normal | error
            ("anomalous", pa.bool_()),
            ("probability", pa.float64()),
            ("confidence", pa.float64()),
            ("location", pa.string()),
            ("regions", pa.list_(region)),
            ("defect_type", pa.string()),
            ("error", pa.string()),
            ("model_id", pa.string()),
            ("model_version", pa.string()),  # SHA-256 of the model file
            ("engine", pa.string()),
            ("expert", pa.string()),
            ("decision_mode", pa.string()),
            ("overlay", pa.string()),
            ("time", pa.timestamp("us", tz="UTC")),
            ("worker", pa.string()),  # host:pid of the actor that inspected it
            ("result", pa.string()),  # the result's JSON, as `detect` writes it (the records keep it)
            ("findings", pa.string()),  # JSON: what a chat about it is rebuilt from (null: unreadable)
        ]
    )


class InspectWorker:
    """One actor of the pool: loads the model once, then inspects batches of image paths (decoded here) into
    rows, and draws each readable image's overlay beside the Parquet files."""

    def __init__(self, model: str, weights: str | None, overlays: str, max_pixels: int | None, class_name: str):
        from ..predictor import load_predictor, model_identity
        from ..service import InspectionService

        self.service = InspectionService(weights=weights)
        self.predictor = load_predictor(model, weights)
        self.metadata = self.predictor.metadata  # the model file hashed once per actor
        self.model_id, self.model_version = model_identity(self.predictor)  # what `detect --records` records
        self.overlays = Path(overlays)
        self.overlays.mkdir(parents=True, exist_ok=True)
        self.max_pixels, self.class_name = max_pixels, class_name
        self.worker = f"{socket.gethostname()}:{os.getpid()}"

    def __call__(self, batch: dict[str, np.ndarray]):
        import pyarrow as pa

        sources = [str(p) for p in batch["source"]]
        with tempfile.TemporaryDirectory(prefix="anomalens-fetched-") as folder:
            local = [self._read(source, Path(folder)) for source in sources]
            readable = [path for path, _, error in local if error is None]
            inspected = iter(
                self.service.inspect(self.predictor, readable, class_name=self.class_name, max_pixels=self.max_pixels)
            )
            rows = [
                self._row(source, _named(next(inspected), path, source), digest)
                if error is None
                else self._row(source, Inspection(InspectionResult(source=source, error=error), None), None)
                for source, (path, digest, error) in zip(sources, local)
            ]
        return pa.Table.from_pylist(rows, schema=row_schema())

    @staticmethod
    def _read(source: str, folder: Path) -> tuple[str, str | None, str | None]:
        """(local path, SHA-256 of its bytes, error): a remote image fetched into `folder`, a local one hashed
        here, where its bytes are read anyway, not again by the driver (the records' hash: `result.file_version`)."""
        try:
            if is_uri(source):
                path, digest = fetched(source, folder)
                return str(path), digest, None
            return source, file_version(source), None
        except (OSError, ValueError) as error:
            return source, None, f"{source}: cannot be read ({error})"

    def _row(self, path: str, inspection, digest: str | None) -> dict[str, Any]:
        overlay = None
        if inspection.ok:
            named = hashlib.sha1(path.encode()).hexdigest()[:10]  # one overlay per source, whatever its stem
            file = self.overlays / f"{Path(path).stem}-{named}_overlay.png"
            try:
                inspection.overlay().save(file)
                overlay = str(file)
            except Exception as error:  # noqa: BLE001 - this image's failure alone, as `detect` reports it
                file.unlink(missing_ok=True)
                inspection = inspection.failed(error)
        result = inspection.result
        record = result.to_dict() | ({"overlay": overlay} if overlay else {})
        guess = inspection.findings.defect_type if inspection.findings else None
        width, height = result.image_size or (None, None)
        meta = self.metadata
        return {
            "source": path,
            "image_sha256": digest,
            "width": width,
            "height": height,
            "score": result.score,
            "verdict": "error" if not result.ok else "anomalous" if result.anomalous else "normal",
            "anomalous": result.anomalous,
            "probability": result.probability,
            "confidence": result.confidence,
            "location": result.location,
            "regions": [region.to_dict() for region in result.regions],
            "defect_type": guess.name if guess else None,
            "error": result.error,
            "model_id": self.model_id,
            "model_version": self.model_version,
            "engine": meta.engine,
            "expert": result.expert or meta.expert,
            "decision_mode": result.decision.mode if result.decision else None,
            "overlay": overlay,
            "time": datetime.now(UTC),
            "worker": self.worker,
            "result": json.dumps(_plain(record)),
            "findings": json.dumps(_plain(asdict(inspection.findings))) if inspection.findings else None,
        }


def _named(inspection, path: str, source: str):
    """A fetched image's inspection, its error naming the URI rather than the local copy."""
    error = inspection.result.error
    if path == source or error is None:
        return inspection
    return Inspection(replace(inspection.result, source=source, error=error.replace(path, source)), None)


def _plain(value: Any) -> Any:
    """Plain JSON, as the records keep it (`records.chats.findings_json`, without needing the records extra):
    numpy numbers and arrays as Python's, tuples as lists, non-finite floats as None."""
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, np.ndarray | np.generic):
        return _plain(value.tolist())
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, str | bool | int):
        return value
    return str(value)
