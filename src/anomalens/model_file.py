"""Fitted models on disk: one safetensors file whose header carries the JSON description (format version,
configuration, backbone weights hash, the expert's state, the calibration, and the list of tensors with
their dtypes and shapes). Tensors and JSON only, so loading a model file can never run code, unlike a
pickle. A model file stores stage states; any registered expert saves and loads through it with no special
case.

Reading trusts nothing: the header is validated field by field (`Header`), the tensors against the list it
gives, the expert is rebuilt from them, and a loaded model scores one blank image with its backbone before it
is used. Whatever is wrong ends in one `ModelFileError`: "<file>: not a usable AnomaLens model: field
<dotted.path>: <problem>" where a field of the header is at fault (`fields.FieldError`: the configuration and
the calibration are checked here, each expert's state by its own `from_state`), else the problem alone (a file
that is not safetensors, a tensor the header does not list)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator
from pydantic.dataclasses import dataclass as validated
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file

from .backbones import BACKBONES, weights_sha256
from .calibration import METHODS, MIN_ANOMALIES, RULES, SYNTHETIC_RULES, Calibration
from .config import BATCH_MAX, IMAGE_SIZES, InspectorConfig
from .evidence import DecisionEvidence
from .experts import EXPERTS, Expert, ExpertInput, expert_class
from .experts.base import ALIASES, AUTO_KINDS
from .experts.defect_types import DefectExamples
from .features import patch_features
from .fields import SEED_MAX, FieldError, TensorError, clipped, first_problem
from .lineage import Step, lineage_of
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

    @field_validator("image_size")
    @classmethod
    def _size(cls, size: int) -> int:
        low, high = IMAGE_SIZES
        if not low <= size <= high:
            raise ValueError(f"must be from {low} to {high} pixels, not {size}")
        return size

    @field_validator("max_bank", "synthetic_images")
    @classmethod
    def _count(cls, n: int) -> int:
        if n < 1:
            raise ValueError(f"must be at least 1, not {n}")
        return n

    @field_validator("batch_size")
    @classmethod
    def _batch(cls, n: int) -> int:
        if not 1 <= n <= BATCH_MAX:
            raise ValueError(f"must be at least 1 and at most {BATCH_MAX}, not {n}")
        return n

    @field_validator("num_neighbors")
    @classmethod
    def _neighbors(cls, n: int, info: ValidationInfo) -> int:
        if n < 1:
            raise ValueError(f"must be at least 1, not {n}")
        max_bank = info.data.get("max_bank")  # absent: it was refused itself
        if max_bank is not None and n > max_bank:
            raise ValueError(f"must be at most config.max_bank ({max_bank}), the most rows a bank holds, not {n}")
        return n

    @field_validator("seed")
    @classmethod
    def _seed(cls, seed: int) -> int:
        if not 0 <= seed <= SEED_MAX:
            raise ValueError(f"must be from 0 to {SEED_MAX}, not {seed}")
        return seed

    @field_validator("max_false_alarms")
    @classmethod
    def _share(cls, share: float | None) -> float | None:
        if share is not None and not 0 < share < 1:
            raise ValueError(f"must be a share above 0 and below 1, not {share}")
        return share

    @field_validator("scale")
    @classmethod
    def _scale(cls, scale: str | float) -> str | float:
        if isinstance(scale, str) and scale not in ("squash", "aspect"):  # saved as a number, never as text
            raise ValueError(f"must be squash, aspect or a number, not {scale!r}")
        return checked_scale(scale)

    @field_validator("coreset_ratio")
    @classmethod
    def _fraction(cls, ratio: float) -> float:
        if not 0 < ratio <= 1:
            raise ValueError(f"must be above 0 and at most 1, not {ratio}")
        return ratio


@validated(frozen=True, config=STRICT)
class StoredCalibration(Calibration):
    """The calibration, validated: its fields, their types, finite numbers, a spread above 0, and the orders
    deciding and outlining assume."""

    @field_validator("image_scale", "probability_scale")
    @classmethod
    def _spread(cls, scale: float | None) -> float | None:
        if scale is not None and scale <= 0:  # probabilities divide by it
            raise ValueError(f"must be above 0, not {scale}")
        return scale

    @field_validator("pixel_floor")
    @classmethod
    def _floor(cls, floor: float, info: ValidationInfo) -> float:
        threshold = info.data.get("pixel_threshold")  # the overlay spans floor … threshold
        if threshold is not None and floor > threshold:
            raise ValueError(f"must be at most calibration.pixel_threshold ({threshold}), not {floor}")
        return floor

    @field_validator("n_normal")
    @classmethod
    def _normal(cls, n: int) -> int:
        if n < 1:  # a model file's decision was calibrated on normal images
            raise ValueError(f"must be at least 1, not {n}")
        return n

    @field_validator("method")
    @classmethod
    def _known_method(cls, method: str) -> str:
        if method not in METHODS:
            raise ValueError(f"unknown way of scoring normal images {method!r} (known: {', '.join(METHODS)})")
        return method

    @field_validator("n_synthetic")
    @classmethod
    def _synthetic(cls, n: int, info: ValidationInfo) -> int:
        if n < 0:
            raise ValueError(f"must be at least 0, not {n}")
        if info.data.get("rule") in SYNTHETIC_RULES and n < MIN_ANOMALIES:
            raise ValueError(
                f"must be at least {MIN_ANOMALIES} where synthetic anomalies placed the threshold, not {n}"
            )
        return n

    @field_validator("mixture")
    @classmethod
    def _modes(cls, mixture: tuple | None) -> tuple | None:
        if mixture is None:
            return None
        for (weight, _, sigma), mode in zip(mixture, ("low", "high")):
            if not 0 <= weight <= 1 or sigma <= 0:
                raise ValueError(f"the {mode} mode's weight must lie in 0 … 1 and its σ above 0, not {weight}, {sigma}")
        if mixture[0][1] > mixture[1][1]:
            raise ValueError(
                f"the low mode's mean must be at most the high one's, not {mixture[0][1]} > {mixture[1][1]}"
            )
        return mixture

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

    @field_validator("dtype")
    @classmethod
    def _known_dtype(cls, dtype: str) -> str:
        if dtype not in DTYPES.values():
            raise ValueError(f"unknown tensor type {dtype!r} (known: {', '.join(DTYPES.values())})")
        return dtype

    @field_validator("shape")
    @classmethod
    def _sizes(cls, shape: list[int]) -> list[int]:
        if any(size < 0 for size in shape):
            raise ValueError(f"sizes must be at least 0, not {shape}")
        return shape


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


Name = Annotated[str, Field(min_length=1)]


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
    references: list[Name] | None = None  # names of the normal images fitted on (None: not kept)
    # what teaching reads and writes (`evidence`, `lineage`, `experts.defect_types`): checked by their readers
    evidence: dict | None = None
    lineage: list | None = None
    defect_types: dict | None = None

    @field_validator("backbone_weights_sha256")
    @classmethod
    def _fingerprint(cls, digest: str | None) -> str | None:
        if digest is not None and (len(digest) != 64 or digest.strip("0123456789abcdef")):
            raise ValueError(f"must be a SHA-256 digest (64 hexadecimal digits), not {clipped(repr(digest), 80)}")
        return digest

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
    evidence: DecisionEvidence | None = None
    lineage: tuple[Step, ...] = ()
    defect_examples: DefectExamples | None = None

    @property
    def config(self) -> dict:  # the inspector's configuration
        return self.header["config"]

    def matching(self, inspector) -> StoredModel:
        """This model, once sure it fits the inspector's backbone (its public `weights_file`, `backbone` and
        `config`): the weights it was fitted with, and features its expert can score. One blank image is
        scored, so tensors of other shapes than the backbone's fail here, not in the middle of a batch."""
        backbone = inspector.config.backbone  # the configuration's (a field a file omits takes its default)
        if weights_sha256(inspector.weights_file) != self.header["backbone_weights_sha256"]:
            raise unusable(
                self.path,
                f"field backbone_weights_sha256: fitted with other {backbone} weights than {inspector.weights_file} "
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
                    problem = f"cannot score {backbone} features ({channels} channels): {clipped(str(error))}"
                    raise unusable(self.path, f"tensors of the {self.expert.name} expert {problem}") from None
                if self.references is not None:  # which reference an image is most like: features of its width
                    try:
                        self.references.nearest(features)
                    except (RuntimeError, ValueError, IndexError) as error:
                        problem = f"cannot be compared with {backbone} features: {clipped(str(error))}"
                        raise unusable(self.path, f"tensor {REFERENCES} {problem}") from None
        return self


def save_model(path: str | Path, inspector, overwrite: bool = False) -> Path:
    """Writes a fitted inspector, through its public `config`, `weights_file`, `expert` and `calibration`."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} already exists; choose another name or allow overwriting")
    expert_config, tensors = inspector.expert.state()
    names, reference_tensors = inspector.references.state() if inspector.references else (None, {})
    taught, taught_tensors = _taught_state(inspector)
    tensors = {name: tensor.contiguous() for name, tensor in (tensors | reference_tensors | taught_tensors).items()}
    header = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "anomalens_version": __version__,
        "config": asdict(inspector.config),
        "backbone_weights_sha256": weights_sha256(inspector.weights_file),
        "expert": expert_config,
        "calibration": inspector.calibration.to_dict(),
        "references": names,
        **taught,
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
        raise unusable(path, f"not a safetensors file ({clipped(str(error))})") from None
    if not isinstance(metadata.get("anomalens"), str):
        raise unusable(path, "header has no AnomaLens description (a safetensors file of something else)")
    try:
        header = Header.model_validate_json(metadata["anomalens"])
    except ValidationError as error:
        raise unusable(path, _header_problem(error)) from None
    try:
        _check_header(header)
    except FieldError as error:
        raise unusable(path, str(error)) from None
    if header.tensors is not None:
        _check_tensors(path, {name: (spec.dtype, spec.shape) for name, spec in header.tensors.items()}, found)
    return json.loads(metadata["anomalens"])


def read_model(path: str | Path) -> StoredModel:
    header = read_header(path)
    kind = header["expert"]["kind"]
    tensors = load_file(path)
    names, descriptors = header.get("references"), tensors.pop(REFERENCES, None)
    if (names is None) != (descriptors is None):
        problem = f"the names and the {REFERENCES} tensor come together or not at all"
        raise unusable(path, str(FieldError("references", problem)))
    try:
        references = None if names is None or descriptors is None else References(names, descriptors)
    except ValueError as error:
        raise unusable(path, str(FieldError("references", str(error)))) from None
    evidence, lineage, examples = _taught_parts(Path(path), header, tensors)
    try:
        expert = EXPERTS[kind].from_state(header["expert"], tensors)
    except TensorError as error:  # the expert's tensors, named as in the file
        raise unusable(path, str(error.within("tensors"))) from None
    except FieldError as error:
        raise unusable(path, str(error.within("expert"))) from None
    except KeyError as error:  # an expert that reads its state unchecked (one from outside the package)
        raise unusable(path, f"expert {kind}: {error.args[0]!r} missing") from None
    except (ValueError, TypeError, RuntimeError, IndexError, SafetensorError) as error:
        raise unusable(path, f"expert {kind}: {clipped(str(error))}") from None
    calibration = Calibration(**header["calibration"])
    return StoredModel(Path(path), header, expert, calibration, references, evidence, lineage, examples)


def _taught_state(inspector) -> tuple[dict, dict[str, torch.Tensor]]:
    """The header fields and tensors of what teaching keeps: the decision's evidence, the lineage, typed
    defects (each only where the inspector has it)."""
    fields: dict = {}
    tensors: dict[str, torch.Tensor] = {}
    for name, part in (("evidence", inspector.evidence), ("defect_types", inspector.defect_examples)):
        if part is not None:
            fields[name], more = part.state()
            tensors |= more
    if inspector.lineage:
        fields["lineage"] = [step.model_dump() for step in inspector.lineage]
    return fields, tensors


def _taught_parts(path: Path, header: dict, tensors: dict[str, torch.Tensor]):
    """(evidence, lineage, typed defects) from the header and their tensors, which leave `tensors`."""
    own = {name: tensors.pop(name) for name in list(tensors) if name.startswith(("evidence.", "defect_types."))}
    size = header["config"].get("image_size", InspectorConfig.image_size)

    def part(name: str, read):
        if header.get(name) is None:
            return None
        try:
            return read(header[name])
        except TensorError as error:  # named as in the file
            raise unusable(path, str(error.within("tensors"))) from None
        except FieldError as error:
            raise unusable(path, str(error.within(name))) from None

    evidence = part("evidence", lambda state: DecisionEvidence.from_state(state, own, size))
    examples = part("defect_types", lambda state: DefectExamples.from_state(state, own))
    return evidence, part("lineage", lineage_of) or (), examples


def _check_header(header: Header) -> None:
    """What holds between the header's parts: the expert the configuration names is the one saved, and no more
    normal images calibrated the decision than the model was fitted on."""
    named, kind = ALIASES.get(header.config.expert, header.config.expert), header.expert.kind
    if (kind not in AUTO_KINDS) if named == "auto" else (named != kind):
        wanted = " or ".join(AUTO_KINDS) if named == "auto" else named
        raise FieldError(
            "config.expert", f"{header.config.expert!r} makes a {wanted} expert, but expert.kind is {kind}"
        )
    n_normal, references = header.calibration.n_normal, header.references
    if references is not None and n_normal > len(references):
        problem = f"{n_normal} normal images, but the model was fitted on {len(references)} (references)"
        raise FieldError("calibration.n_normal", problem)


def _check_tensors(path: Path, listed: dict[str, tuple], found: dict[str, tuple]) -> None:
    """The file holds exactly the tensors its header lists, each of the listed dtype and shape."""
    for name in sorted(set(listed) | set(found)):
        if name not in found:
            raise unusable(path, f"field tensors.{name}: tensor {name} missing from the file")
        if name not in listed:
            raise unusable(path, f"field tensors: tensor {name} is not in the header's list of tensors")
        if found[name] != listed[name]:
            (dtype, shape), (want_dtype, want_shape) = found[name], listed[name]
            problem = f"tensor {name} is {dtype} {shape}: the header lists it as {want_dtype} {want_shape}"
            raise unusable(path, f"field tensors.{name}: {problem}")


def _spec(stored) -> tuple[str, list[int]]:
    """(dtype, shape) of a tensor in the file, read from its header (the dtype in torch's words)."""
    return DTYPES.get(stored.get_dtype(), stored.get_dtype()), stored.get_shape()


def _header_problem(error: ValidationError) -> str:
    """The first problem pydantic found: "field <dotted.path>: <problem>", or one of the header as a whole."""
    problem = first_problem(error)
    if problem.field:
        return str(problem)
    if error.errors()[0]["type"] == "json_invalid":
        return f"header is {problem.problem}"
    return f"header: {problem.problem}"
