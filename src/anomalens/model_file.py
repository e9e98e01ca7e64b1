"""Fitted models on disk: one safetensors file whose header carries the JSON description (format version,
configuration, backbone weights hash, the expert's state, the calibration, and the list of tensors with
their dtypes and shapes). Tensors and JSON only, so loading a model file can never run code, unlike a
pickle. A model file stores stage states; any registered expert saves and loads through it with no special
case.

Reading trusts nothing: the header is validated field by field (`model_header.Header`), the tensors against the list it
gives, the expert is rebuilt from them, and a loaded model scores one blank image with its backbone before it
is used. Whatever is wrong ends in one `ModelFileError`: "<file>: not a usable AnomaLens model: field
<dotted.path>: <problem>" where a field of the header is at fault (`fields.FieldError`: the configuration and
the calibration are checked in `model_header`, each expert's state by its own `from_state`), else the problem alone (a file
that is not safetensors, a tensor the header does not list)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from pydantic import ValidationError
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file

from .backbones import weights_sha256
from .calibration import Calibration
from .config import InspectorConfig
from .defect_memory import DefectMemory
from .evidence import DecisionEvidence
from .experts import EXPERTS, Expert, ExpertInput
from .experts.defect_types import DefectExamples
from .features import patch_features
from .fields import FieldError, TensorError, clipped
from .lineage import Step, lineage_of
from .model_header import DTYPES, FORMAT, FORMAT_VERSION, Header, check_header, header_problem
from .references import TENSOR as REFERENCES
from .references import References
from .version import __version__

UNUSABLE = "not a usable AnomaLens model"


class ModelFileError(ValueError):
    def __init__(self, path: str | Path, reason: str):
        self.path, self.reason = Path(path), reason
        super().__init__(f"{path}: {reason}")


def unusable(path: str | Path, problem: str) -> ModelFileError:
    return ModelFileError(path, f"{UNUSABLE}: {problem}")


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
    defect_memory: DefectMemory | None = None

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
        raise unusable(path, header_problem(error)) from None
    try:
        check_header(header)
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
    evidence, lineage, examples, known = _taught_parts(Path(path), header, tensors)
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
    return StoredModel(Path(path), header, expert, calibration, references, evidence, lineage, examples, known)


def _taught_state(inspector) -> tuple[dict, dict[str, torch.Tensor]]:
    """The header fields and tensors of what teaching keeps: the decision's evidence, the lineage, typed
    defects, the defect memory (each only where the inspector has it)."""
    fields: dict = {}
    tensors: dict[str, torch.Tensor] = {}
    for name, part in (
        ("evidence", inspector.evidence),
        ("defect_types", inspector.defect_examples),
        ("defect_memory", inspector.defect_memory),
    ):
        if part is not None:
            fields[name], more = part.state()
            tensors |= more
    if inspector.lineage:
        fields["lineage"] = [step.model_dump() for step in inspector.lineage]
    return fields, tensors


def _taught_parts(path: Path, header: dict, tensors: dict[str, torch.Tensor]):
    """(evidence, lineage, typed defects, defect memory) from the header and their tensors, which leave
    `tensors`; a file saved before a part was kept has none of it."""
    prefixes = ("evidence.", "defect_types.", "defect_memory.")
    own = {name: tensors.pop(name) for name in list(tensors) if name.startswith(prefixes)}
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
    known = part("defect_memory", lambda state: DefectMemory.from_state(state, own))
    return evidence, part("lineage", lineage_of) or (), examples, known


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
