"""Fitted models on disk: one safetensors file whose header carries the JSON description (format version,
configuration, backbone weights hash, the expert's state, the calibration, and the list of tensors with
their dtypes and shapes). Tensors and JSON only, so loading a model file can never run code, unlike a
pickle. A model file stores stage states; any registered expert saves and loads through it with no special
case.

Reading trusts nothing: the header is validated field by field (`Header`), the tensors against the list it
gives, the expert is rebuilt from them, and a loaded model scores one blank image with its backbone before it
is used. Whatever is wrong ends in one `ModelFileError`: "<file>: not a usable AnomaLens model: <field>
<problem>"."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator
from pydantic.dataclasses import dataclass as validated
from pydantic_core import ErrorDetails
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file

from .backbones import BACKBONES, weights_sha256
from .calibration import RULES, Calibration
from .config import InspectorConfig
from .experts import EXPERTS, Expert, ExpertInput, expert_class
from .features import patch_features
from .preprocessing import checked_scale
from .references import TENSOR as REFERENCES
from .references import References
from .version import __version__

FORMAT = "anomalens-model"
FORMAT_VERSION = 1
UNUSABLE = "not a usable AnomaLens model"
# safetensors' dtype names (the format's own) → torch's, in which the header lists the tensors
DTYPES = {"F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16", "I64": "int64", "I32": "int32"}
DTYPES |= {"I16": "int16", "I8": "int8", "U8": "uint8", "BOOL": "bool"}


class ModelFileError(ValueError):
    def __init__(self, path: str | Path, reason: str):
        self.path, self.reason = Path(path), reason
        super().__init__(f"{path}: {reason}")


def unusable(path: str | Path, problem: str) -> ModelFileError:
    return ModelFileError(path, f"{UNUSABLE}: {problem}")


STRICT = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False)  # JSON types as written, no unknown field


@validated(frozen=True, config=STRICT)
class StoredConfig(InspectorConfig):
    """The inspector's configuration, validated: its fields, their types, and values it can run with."""

    @field_validator("backbone")
    @classmethod
    def _known_backbone(cls, name: str) -> str:
        if name not in BACKBONES:
            raise ValueError(f"unknown backbone {name!r} (known: {', '.join(BACKBONES)})")
        return name

    @field_validator("expert")
    @classmethod
    def _known_expert(cls, name: str) -> str:
        expert_class(name)  # a ValueError that names the choices
        return name

    @field_validator("image_size", "max_bank", "num_neighbors", "batch_size")
    @classmethod
    def _count(cls, n: int) -> int:
        if n < 1:
            raise ValueError(f"must be at least 1, not {n}")
        return n

    @field_validator("scale")
    @classmethod
    def _scale(cls, scale: str | float) -> str | float:
        return checked_scale(scale)

    @field_validator("coreset_ratio")
    @classmethod
    def _fraction(cls, ratio: float) -> float:
        if not 0 < ratio <= 1:
            raise ValueError(f"must be above 0 and at most 1, not {ratio}")
        return ratio


@validated(frozen=True, config=STRICT)
class StoredCalibration(Calibration):
    """The calibration, validated: its fields, their types, finite numbers, a spread above 0."""

    @field_validator("image_scale", "probability_scale")
    @classmethod
    def _spread(cls, scale: float | None) -> float | None:
        if scale is not None and scale <= 0:  # probabilities divide by it
            raise ValueError(f"must be above 0, not {scale}")
        return scale

    @field_validator("rule")
    @classmethod
    def _known_rule(cls, rule: str) -> str:
        if rule not in RULES:  # a rule of a later AnomaLens would be decided wrongly by this one
            raise ValueError(f"unknown decision rule {rule!r} (known: {', '.join(RULES)}): upgrade, or fit it again")
        return rule


class TensorSpec(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")
    dtype: str
    shape: list[int]


class ExpertState(BaseModel):
    """The expert's JSON state: its kind, then whatever that expert keeps (its `from_state` reads it)."""

    model_config = ConfigDict(strict=True, extra="allow")
    kind: str

    @field_validator("kind")
    @classmethod
    def _saved_kind(cls, kind: str) -> str:
        saved = sorted(name for name, expert in EXPERTS.items() if "normal" in expert.needs)
        if kind not in saved:
            raise ValueError(f"unknown expert {kind!r} (model files hold {', '.join(saved)})")
        return kind


class Header(BaseModel):
    """The JSON header as `save_model` writes it; fields a later version adds are ignored."""

    model_config = ConfigDict(strict=True, allow_inf_nan=False)
    format: Literal["anomalens-model"]
    format_version: int
    anomalens_version: str
    config: StoredConfig
    backbone_weights_sha256: str | None
    expert: ExpertState
    calibration: StoredCalibration
    tensors: dict[str, TensorSpec] | None = None  # None: written before the list was kept
    references: list[str] | None = None  # names of the normal images fitted on (None: not kept)

    @field_validator("format_version")
    @classmethod
    def _readable(cls, version: int) -> int:
        if version > FORMAT_VERSION:
            raise ValueError(
                f"{version} is newer than this AnomaLens ({__version__}) reads ({FORMAT_VERSION}): upgrade"
            )
        if version < 1:
            raise ValueError(f"{version} is not a version (they start at 1)")
        return version


@dataclass
class StoredModel:
    path: Path
    header: dict  # as the file holds it
    expert: Expert
    calibration: Calibration
    references: References | None = None

    @property
    def config(self) -> dict:  # the inspector's configuration
        return self.header["config"]

    def matching(self, inspector) -> StoredModel:
        """This model, once sure it fits the inspector's backbone (its public `weights_file`, `backbone` and
        `config`): the weights it was fitted with, and features its expert can score. One blank image is
        scored, so tensors of other shapes than the backbone's fail here, not in the middle of a batch."""
        backbone = self.config["backbone"]
        if weights_sha256(inspector.weights_file) != self.header["backbone_weights_sha256"]:
            raise unusable(
                self.path,
                f"backbone_weights_sha256: fitted with other {backbone} weights than {inspector.weights_file} "
                "(load it with the weights it was fitted with)",
            )
        if inspector.backbone is not None:
            size = self.expert.input_size or inspector.config.image_size
            with torch.inference_mode():
                pixels = torch.full((1, 3, size, size), 0.5)
                features = patch_features(inspector.backbone, pixels)
                try:
                    self.expert.score(ExpertInput(pixels, features))
                except (RuntimeError, ValueError, IndexError) as error:
                    channels = ", ".join(str(f.shape[1]) for f in features)
                    problem = f"cannot score {backbone} features ({channels} channels): {_clipped(str(error))}"
                    raise unusable(self.path, f"tensors of the {self.expert.name} expert {problem}") from None
        return self


def save_model(path: str | Path, inspector, overwrite: bool = False) -> Path:
    """Writes a fitted inspector, through its public `config`, `weights_file`, `expert` and `calibration`."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} already exists; choose another name or allow overwriting")
    expert_config, tensors = inspector.expert.state()
    names, reference_tensors = inspector.references.state() if inspector.references else (None, {})
    tensors = {name: tensor.contiguous() for name, tensor in (tensors | reference_tensors).items()}
    header = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "anomalens_version": __version__,
        "config": asdict(inspector.config),
        "backbone_weights_sha256": weights_sha256(inspector.weights_file),
        "expert": expert_config,
        "calibration": inspector.calibration.to_dict(),
        "references": names,
        "tensors": {
            name: {"dtype": str(t.dtype).removeprefix("torch."), "shape": list(t.shape)} for name, t in tensors.items()
        },
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    try:
        save_file(tensors, tmp, metadata={"anomalens": json.dumps(header)})
        tmp.replace(path)  # never leave a half-written model under the user's name
    finally:
        tmp.unlink(missing_ok=True)  # nor a half-written one under another
    return path


def read_header(path: str | Path) -> dict:
    """The header, once it and the list of tensors are valid (no tensor is read)."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(path, "model file not found")
    try:
        with safe_open(path, framework="pt") as handle:
            metadata = handle.metadata() or {}
            found = {name: _spec(handle.get_slice(name)) for name in handle.keys()}
    except (SafetensorError, OSError, ValueError) as error:
        raise unusable(path, f"not a safetensors file ({_clipped(str(error))})") from None
    if "anomalens" not in metadata:
        raise unusable(path, "header has no AnomaLens description (a safetensors file of something else)")
    try:
        header = Header.model_validate_json(metadata["anomalens"])
    except ValidationError as error:
        raise unusable(path, _problem(error)) from None
    if header.tensors is not None:
        _check_tensors(path, {name: (spec.dtype, spec.shape) for name, spec in header.tensors.items()}, found)
    return json.loads(metadata["anomalens"])


def read_model(path: str | Path) -> StoredModel:
    header = read_header(path)
    kind = header["expert"]["kind"]
    tensors = load_file(path)
    names, descriptors = header.get("references"), tensors.pop(REFERENCES, None)
    if (names is None) != (descriptors is None):
        raise unusable(path, f"references: the names and the {REFERENCES} tensor come together or not at all")
    try:
        references = None if names is None or descriptors is None else References(names, descriptors)
    except ValueError as error:
        raise unusable(path, f"references: {error}") from None
    try:
        expert = EXPERTS[kind].from_state(header["expert"], tensors)
    except KeyError as error:
        raise unusable(path, f"expert {kind}: {error.args[0]!r} missing") from None
    except (ValueError, TypeError, RuntimeError, IndexError, SafetensorError) as error:
        raise unusable(path, f"expert {kind}: {_clipped(str(error))}") from None
    return StoredModel(Path(path), header, expert, Calibration(**header["calibration"]), references)


def _check_tensors(path: Path, listed: dict[str, tuple], found: dict[str, tuple]) -> None:
    """The file holds exactly the tensors its header lists, each of the listed dtype and shape."""
    for name in sorted(set(listed) | set(found)):
        if name not in found:
            raise unusable(path, f"tensor {name} missing")
        if name not in listed:
            raise unusable(path, f"tensor {name} is not in the header's list of tensors")
        if found[name] != listed[name]:
            (dtype, shape), (want_dtype, want_shape) = found[name], listed[name]
            raise unusable(path, f"tensor {name} is {dtype} {shape}: the header lists it as {want_dtype} {want_shape}")


def _spec(stored) -> tuple[str, list[int]]:
    """(dtype, shape) of a tensor in the file, read from its header (the dtype in torch's words)."""
    return DTYPES.get(stored.get_dtype(), stored.get_dtype()), stored.get_shape()


def _problem(error: ValidationError) -> str:
    """The first problem pydantic found, as "<field> <problem>"."""
    first: ErrorDetails = error.errors()[0]
    field = ".".join(str(part) for part in first["loc"]) or "header"
    more = f" (and {error.error_count() - 1} more problems)" if error.error_count() > 1 else ""
    if first["type"] == "missing":
        return f"{field} missing{more}"
    if first["type"] in ("unexpected_keyword_argument", "extra_forbidden"):
        return f"{field} is not a field of this model format{more}"
    if first["type"] == "json_invalid":
        return f"header is not valid JSON ({first['msg'].removeprefix('Invalid JSON: ')})"
    message = first["msg"].removeprefix("Value error, ")
    got = "" if first["type"] == "value_error" else f", not {_clipped(repr(first['input']), 60)}"
    return f"{field}: {message[:1].lower()}{message[1:]}{got}{more}"


def _clipped(text: str, limit: int = 300) -> str:
    """On one line, and short: a message that quotes a value or a library's error."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
