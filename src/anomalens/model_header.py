"""The header of a model file, validated field by field: the JSON description `model_file` reads and writes
(format version, configuration, backbone weights hash, the expert's state, the calibration, the list of
tensors with their dtypes and shapes). The configuration and the calibration are checked here, each expert's
state by its own `from_state`; what is wrong is a `fields.FieldError` naming the field."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator
from pydantic.dataclasses import dataclass as validated

from .backbones import BACKBONES
from .calibration import METHODS, MIN_ANOMALIES, RULES, SYNTHETIC_RULES, Calibration
from .config import BATCH_MAX, IMAGE_SIZES, InspectorConfig
from .experts import EXPERTS, expert_class
from .experts.base import ALIASES, AUTO_KINDS, Expert, SettingError, checked_settings, settings_class
from .fields import SEED_MAX, FieldError, clipped, first_problem
from .preprocessing import checked_scale
from .version import __version__

FORMAT = "anomalens-model"
FORMAT_VERSION = 1
# safetensors' dtype names (the format's own) → torch's, in which the header lists the tensors
DTYPES = {"F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16", "I64": "int64", "I32": "int32"}
DTYPES |= {"I16": "int16", "I8": "int8", "U8": "uint8", "BOOL": "bool"}

STRICT = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False)  # JSON types as written, no unknown field
# Before experts owned their settings (issue 33) these sat at the top of the inspector's configuration, shared
# by every expert: old model files hold them there, and the inspector still takes them as keywords
# (`Inspector(coreset_ratio=…)`, as scripts and benches call it). Both are read here alone (`resolved_settings`):
# checked as the fused expert's settings (it has them all, as the shared configuration did), and kept for the
# experts that take them (the others ignored them then too).
LEGACY_SETTINGS = ("coreset_ratio", "max_bank", "num_neighbors", "synthetic_images")


@validated(frozen=True, config=STRICT)
class StoredConfig(InspectorConfig):
    """The inspector's configuration, validated: its fields, their types, and values it can run with; the
    expert's settings by the expert (`check_settings`)."""

    # an old file's settings (LEGACY_SETTINGS; None: not there), each checked as the expert checks it
    coreset_ratio: Any = None
    max_bank: Any = None
    num_neighbors: Any = None
    synthetic_images: Any = None

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

    @field_validator("batch_size")
    @classmethod
    def _batch(cls, n: int) -> int:
        if not 1 <= n <= BATCH_MAX:
            raise ValueError(f"must be at least 1 and at most {BATCH_MAX}, not {n}")
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

    @field_validator("n_synthetic", "n_passed")
    @classmethod
    def _counted(cls, n: int, info: ValidationInfo) -> int:
        """Scores counted: none or more; synthetic ones at least MIN_ANOMALIES where they placed the threshold."""
        if n < 0:
            raise ValueError(f"must be at least 0, not {n}")
        if info.field_name == "n_synthetic" and info.data.get("rule") in SYNTHETIC_RULES and n < MIN_ANOMALIES:
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
    # what teaching reads and writes (`evidence`, `lineage`, `experts.defect_types`, `defect_memory`): checked
    # by their readers
    evidence: dict | None = None
    lineage: list | None = None
    defect_types: dict | None = None
    defect_memory: dict | None = None

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


def check_header(header: Header) -> None:
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
    check_settings(header.config)


def resolved_settings(expert: str | type[Expert], given: Mapping[str, Any] | None, options: dict) -> dict:
    """The expert's settings, checked, its defaults filled in: those `given`, and the legacy ones `options`
    holds, which are taken out of them. What is wrong is a SettingError naming the expert and the setting."""
    legacy = {name: options.pop(name) for name in LEGACY_SETTINGS if name in options}
    legacy = {name: value for name, value in legacy.items() if value is not None}  # None: not given
    taken = settings_class(expert).model_fields
    return checked_settings(expert, {k: v for k, v in legacy.items() if k in taken} | dict(given or {})).model_dump()


def check_settings(config: StoredConfig) -> None:
    """The configuration's expert settings (and an old file's, LEGACY_SETTINGS) are the expert's to take."""
    legacy = {name: getattr(config, name) for name in LEGACY_SETTINGS if getattr(config, name) is not None}
    try:  # each as the shared configuration checked it, whichever expert the file holds
        checked_settings("fused", legacy, {"within": "config."})
    except SettingError as error:
        raise FieldError(f"config.{error.setting}", error.problem) from None
    try:
        resolved_settings(config.expert, config.expert_settings, legacy)
    except SettingError as error:
        where = "expert_settings." if error.setting in config.expert_settings else ""
        raise FieldError(f"config.{where}{error.setting}", error.problem) from None


def header_problem(error: ValidationError) -> str:
    """The first problem pydantic found: "field <dotted.path>: <problem>", or one of the header as a whole."""
    problem = first_problem(error)
    if problem.field:
        return str(problem)
    if error.errors()[0]["type"] == "json_invalid":
        return f"header is {problem.problem}"
    return f"header: {problem.problem}"
