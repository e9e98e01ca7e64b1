"""Fitted models on disk: one safetensors file whose header carries the JSON description (format version,
configuration, backbone weights hash, the expert's state, the calibration). Tensors and JSON only, so
loading a model file can never run code, unlike a pickle. A model file stores stage states; any
registered expert saves and loads through it with no special case."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file

from .backbones import weights_sha256
from .calibration import Calibration
from .experts import EXPERTS, Expert
from .version import __version__

FORMAT = "anomalens-model"
FORMAT_VERSION = 1


class ModelFileError(ValueError):
    def __init__(self, path: str | Path, reason: str):
        self.path, self.reason = Path(path), reason
        super().__init__(f"{path}: {reason}")


@dataclass
class StoredModel:
    path: Path
    config: dict  # the inspector's configuration
    backbone_sha256: str | None
    expert: Expert
    calibration: Calibration

    def matching(self, weights_file: str | Path | None) -> StoredModel:
        """This model, once it is sure the backbone's weights are the ones it was fitted with."""
        if weights_sha256(weights_file) != self.backbone_sha256:
            raise ModelFileError(
                self.path, f"was fitted with other {self.config['backbone']} weights than {weights_file}"
            )
        return self


def save_model(path: str | Path, inspector, overwrite: bool = False) -> Path:
    """Writes a fitted inspector, through its public `config`, `weights_file`, `expert` and `calibration`."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} already exists; choose another name or allow overwriting")
    expert_config, tensors = inspector.expert.state()
    header = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "anomalens_version": __version__,
        "config": asdict(inspector.config),
        "backbone_weights_sha256": weights_sha256(inspector.weights_file),
        "expert": expert_config,
        "calibration": inspector.calibration.to_dict(),
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


def read_model(path: str | Path) -> StoredModel:
    header = read_header(path)
    kind = header["expert"]["kind"]
    if kind not in EXPERTS:
        raise ModelFileError(path, f"unknown expert {kind!r}")
    try:
        expert = EXPERTS[kind].from_state(header["expert"], load_file(path))
    except ValueError as error:
        raise ModelFileError(path, str(error)) from None
    calibration = Calibration(**header["calibration"])
    return StoredModel(Path(path), header["config"], header["backbone_weights_sha256"], expert, calibration)
