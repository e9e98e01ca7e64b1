"""Fitted inspectors on disk: one safetensors file whose header carries the JSON description
(format version, configuration, backbone id and weights hash, expert settings, calibration).
Tensors and JSON only, so loading a model file can never run code, unlike a pickle."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file

from . import __version__
from .calibration import Calibration
from .experts import EXPERTS

FORMAT = "anomalens-model"
FORMAT_VERSION = 1


class ModelFileError(ValueError):
    def __init__(self, path: str | Path, reason: str):
        self.path, self.reason = Path(path), reason
        super().__init__(f"{path}: {reason}")


def save_inspector(inspector, path: str | Path, overwrite: bool = False) -> Path:
    inspector._require_fitted()
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} already exists; choose another name or allow overwriting")
    expert_config, tensors = inspector.expert.state()
    header = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "anomalens_version": __version__,
        "config": asdict(inspector.config), "backbone_weights_sha256": inspector.weights_sha256,
        "expert": expert_config, "calibration": inspector.calibration.to_dict(),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    save_file({k: v.contiguous() for k, v in tensors.items()}, tmp, metadata={"anomalens": json.dumps(header)})
    tmp.replace(path)  # never leave a half-written model under the user's name
    return path


def read_header(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(path, "model file not found")
    try:
        with safe_open(path, framework="pt") as handle:
            metadata = handle.metadata() or {}
    except (SafetensorError, OSError, ValueError) as error:
        raise ModelFileError(path, f"not a safetensors model file ({error})") from None
    if "anomalens" not in metadata:
        raise ModelFileError(path, "safetensors file without an AnomaLens header")
    header = json.loads(metadata["anomalens"])
    if header.get("format") != FORMAT or header.get("format_version", 0) > FORMAT_VERSION:
        raise ModelFileError(path, f"unsupported model format {header.get('format')} v{header.get('format_version')}")
    return header


def load_inspector(path: str | Path, weights: str | Path | None = None):
    from .inspector import Inspector, InspectorConfig

    header = read_header(path)
    config = InspectorConfig(**header["config"])
    inspector = Inspector(config.backbone, weights=weights,
                          **{k: v for k, v in asdict(config).items() if k != "backbone"})
    if inspector.weights_sha256 != header["backbone_weights_sha256"]:
        raise ModelFileError(path, f"was fitted with other {config.backbone} weights than {inspector.weights_file}")
    kind = header["expert"]["kind"]
    if kind not in EXPERTS:
        raise ModelFileError(path, f"unknown expert {kind!r}")
    try:
        inspector.expert = EXPERTS[kind].from_state(header["expert"], load_file(path))
    except ValueError as error:
        raise ModelFileError(path, str(error)) from None
    inspector.calibration = Calibration(**header["calibration"])
    return inspector
