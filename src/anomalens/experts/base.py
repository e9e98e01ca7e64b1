"""What every expert is. An expert turns a batch into patch anomaly maps (B, h, w) and image scores (B,);
the inspector composes it with the other stages and never asks which expert it holds.

An expert says what it needs (`needs`), and the inspector provides exactly that:
- "features": the backbone's patch features of the batch (`ExpertInput.features`);
- "normal": it is fitted on normal images (`fit`), which also gives the normal evidence its decision is
  calibrated on; without it, the expert is ready when built (zero-shot);
- "normal_pixels": fitting also needs the normal images themselves (e.g. to synthesise anomalies from);
- "batch": it scores a whole batch against itself, and its decision is calibrated on that batch;
- "text": it is built from words about the product (class name, defects), not from a configuration alone.

An expert's own settings are its `Settings` (a pydantic model with defaults and checks, in the expert's file;
none here): the inspector's configuration holds the chosen expert's as a plain mapping (`expert_settings`),
checked by `checked_settings` when the inspector is built, and `create` reads them with `own_settings`.
Model files hold an expert as `state()` → (JSON-ready config with "kind", tensors) and rebuild it with
`from_state`; `register` makes a class known by its `name`, so any registered expert saves and loads.
`from_state` trusts nothing it is given: it checks every field and tensor it reads, and says what it cannot
use as a `fields.FieldError` (a field of its state) or `fields.TensorError` (one of its tensors).
Teaching changes a fitted expert in place, with no refit: `add_normal` takes more normal images into its memory
(a false alarm marked normal), and an expert that `learns_defects` trains on defects a person labelled
(`LabelledDefects`). Naming a defect's type is not an expert's business: the defect-type head
(`defect_types`) names it from the descriptors that results carry."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import torch
from pydantic import BaseModel, ConfigDict, ValidationError
from torch import nn

from ..fields import TensorError, first_problem

Progress = Callable[[str, int, int], None]  # (stage, done, total)
FEW_SHOT_MAX = 16  # "auto": the few-shot memory bank up to this many references, PatchCore above
ALIASES = {"memory": "auto", "both": "fused"}  # the command line's names
AUTO_KINDS = ("memory_bank", "patchcore")  # the experts "auto" makes
TAUGHT_MEMORY_BECOMES = "fused"  # what a memory expert taught labelled defects becomes (`settings_class`)


@dataclass
class ExpertInput:
    """One batch as an expert sees it: the preprocessed pixels (B, 3, S, S) in [0, 1] ("pixels") and the
    backbone's per-stage patch features (B, C_i, h, w) ("features")."""

    pixels: torch.Tensor | None = None
    features: list[torch.Tensor] | None = None

    @staticmethod
    def joined(parts: list[ExpertInput]) -> ExpertInput:
        """Several batches as one, in order (made alike: all have pixels, or none)."""
        pixels = torch.cat([p.pixels for p in parts if p.pixels is not None]) if parts[0].pixels is not None else None
        features = [torch.cat(s) for s in zip(*(p.features for p in parts))] if parts[0].features is not None else None
        return ExpertInput(pixels, features)


@dataclass
class NormalImages:
    """What fitting gets: the normal images' patch features ("features") and the images as uint8
    (N, 3, S, S) ("normal_pixels"); `embed` turns more float pixel batches into features (synthetic ones)."""

    features: list[torch.Tensor] | None = None
    pixels: torch.Tensor | None = None
    embed: Callable[[torch.Tensor], list[torch.Tensor]] | None = None
    text_start: Callable[[], torch.Tensor] | None = None  # CLIP backbones: (2, E) "normal"/"anomalous" text
    progress: Progress | None = None  # (stage, done, total) of long fits
    # Tiled images (experts that `reads_tiles`): per entry, (image index, tile top, tile left) on the image's
    # canvas in pixels, and the tiles' side. None: every entry is a whole image of its own.
    places: torch.Tensor | None = None
    tile_size: int | None = None
    # Teaching: the memory image (its id in the expert's memory) each entry is, -1 where it is not in the
    # memory: such an image is scored as if new by leaving itself out (`Expert.left_out`).
    memory_ids: torch.Tensor | None = None

    def __len__(self) -> int:
        if self.features is not None:
            return len(self.features[0])
        assert self.pixels is not None  # fitting gets features, pixels or both
        return len(self.pixels)

    def owners(self) -> torch.Tensor:
        """(n,) the image each entry (tile) belongs to: leave-one-out leaves out all of an image's tiles."""
        return torch.arange(len(self)) if self.places is None else self.places[:, 0]


@dataclass
class LabelledDefects:
    """Defective images a person labelled, as teaching gives them: their patch features, and what is known of
    where each defect lies, at the input size: `regions` (n, S, S) in [0, 1] is the defect's mask where it was
    drawn (`exact`), else the box it lies in, or the whole image where only the verdict was given."""

    features: list[torch.Tensor]  # per stage (n, C_i, h, w)
    regions: torch.Tensor  # (n, S, S)
    exact: torch.Tensor  # (n,) bool: regions[i] is the defect's own mask, not a place it lies somewhere in

    def __len__(self) -> int:
        return len(self.regions)


@dataclass
class NormalEvidence:
    """Normal images scored as if new (leave-one-out or held out): what the decision is calibrated on."""

    maps: torch.Tensor  # (n, h, w) patch maps
    scores: torch.Tensor  # (n,)
    method: str  # how they were obtained: "leave-one-out", "self-similarity", "held-out"
    memory_ids: torch.Tensor | None = None  # `add_normal`: the id each image was given in the memory


class ExpertSettings(BaseModel):
    """An expert's own settings: none here; an expert with some subclasses it with fields, defaults and checks.
    Strict (a count is an integer, not text or a bool), finite, and no setting it does not have."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True, allow_inf_nan=False)


class SettingError(ValueError):
    """A setting an expert cannot take: "expert <name>: setting <setting> <problem>"."""

    def __init__(self, expert: str, setting: str, problem: str):
        self.expert, self.setting, self.problem = expert, setting, problem
        # pydantic's "input should be …" reads as the setting's own: "setting n should be a valid integer"
        super().__init__(f"expert {expert}: setting {setting} {problem.removeprefix('input ')}")


class Expert:
    """Base of every expert; subclasses set `name` and `needs` and implement what their needs call for."""

    name: ClassVar[str]
    needs: ClassVar[frozenset[str]] = frozenset({"features", "normal"})
    # Scores that are already anomaly probabilities are decided at 0.5; others are calibrated on normal
    # evidence (fitted experts) or on the batch ("batch").
    probability_scores: ClassVar[bool] = False
    resize_mode: ClassVar[str] = "bilinear"  # how images are brought to the input size
    input_size: int | None = None  # pixels a side the expert reads (None: the inspector's image_size)
    standardises_exposure: ClassVar[bool] = False  # each image's exposure standardised before scoring
    # Scores tiles of an image one by one (leave-one-out by image); experts that read whole images squash
    # each image to the input size whatever the inspector's scale.
    reads_tiles: ClassVar[bool] = False
    learns_defects: ClassVar[bool] = False  # implements `learn_defects`
    Settings: ClassVar[type[ExpertSettings]] = ExpertSettings

    @classmethod
    def own_settings(cls, config: Any) -> ExpertSettings:
        """This expert's settings in the inspector's configuration (checked when it was built). Under "auto" or
        "fused" they sit beside those of the other experts the name may make: each takes its own."""
        given = config.expert_settings
        return cls.Settings.model_validate({name: given[name] for name in cls.Settings.model_fields if name in given})

    @classmethod
    def create(cls, config: Any, n_normal: int | None = None) -> Expert:
        """A new expert from the inspector's configuration (and the number of normal images, when fitted)."""
        return cls()

    @classmethod
    def from_text(
        cls,
        class_name: str | None = None,
        defects: Sequence[str] = (),
        weights: str | Path | None = None,
        model: str | None = None,
    ) -> Expert:
        """An expert that needs "text": built from words about the product (`class_name`, `defects`) on a
        language-image model (`weights` a file, `model` its name)."""
        raise TypeError(f"the {cls.name} expert is not built from text")

    def fit(self, normal: NormalImages) -> NormalEvidence:
        raise TypeError(f"the {self.name} expert is not fitted (zero-shot): call predict(images) directly")

    def score(self, batch: ExpertInput) -> tuple[torch.Tensor, torch.Tensor]:
        """Patch anomaly maps (B, h, w) and image scores (B,)."""
        raise NotImplementedError

    def add_normal(self, normal: NormalImages, held_back: torch.Tensor | None = None) -> NormalEvidence:
        """Takes more normal images into the memory in place (no refit from scratch) and gives their evidence:
        each scored as if new, leaving itself out of the memory it just joined. `held_back` (n, h, w): patches
        that add nothing to the memory (where an image taught as normal is outlined as a defect)."""
        raise TypeError(f"the {self.name} expert cannot take normal images in place: fit it again with them")

    def learn_defects(self, normal: NormalImages, defects: LabelledDefects) -> NormalEvidence:
        """Learns what these labelled defects look like, beside the normal images given (with `memory_ids`),
        and gives the normal evidence its maps are now calibrated on. Only where `learns_defects`."""
        raise TypeError(f"the {self.name} expert does not learn labelled defects")

    def memory_rows(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        """Per stage of its memory (B, h·w, C_i): each patch as the memory holds it (`defect_memory` keeps some)."""
        raise TypeError(f"the {self.name} expert has no memory of patches")

    def row_distances(self, features: list[torch.Tensor], rows: list[torch.Tensor] | None = None) -> torch.Tensor:
        """(B, h, w) each patch's distance to the nearest of `rows` (per stage (N, C_i), as `memory_rows` gives);
        None: to the nearest normal patch in its memory."""
        raise TypeError(f"the {self.name} expert has no memory of patches")

    def left_out(self, features: list[torch.Tensor], owners: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Patch maps (B, h, w) and image scores (B,) of images scored with memory image `owners[j]` left out
        (-1: none), as a reference's own normal evidence was."""
        raise TypeError(f"the {self.name} expert has no memory to leave images out of")

    def left_out_scores(self, features: list[torch.Tensor], owners: list[int]) -> torch.Tensor | None:
        """Image scores (B,) of images made from fitted reference `owners[j]` (synthetic anomalies), each scored
        as that reference's own normal evidence was: with the reference left out. None: this expert cannot,
        and its decision is calibrated on normal evidence alone."""
        return None

    def module(self) -> nn.Module:
        """The scoring step as one torch module, features (or pixels) → (patch maps, image scores), for export."""
        raise NotImplementedError(f"the {self.name} expert cannot be exported yet")

    def state(self) -> tuple[dict, dict[str, torch.Tensor]]:
        raise TypeError(f"the {self.name} expert has no model to save: it needs no fitting")

    @classmethod
    def from_state(cls, config: dict, tensors: dict[str, torch.Tensor]) -> Expert:
        raise TypeError(f"the {cls.name} expert is not loaded from model files")


EXPERTS: dict[str, type[Expert]] = {}
E = TypeVar("E", bound=type[Expert])


def register(cls: E) -> E:
    """Class decorator: make an expert known by its name (to the inspector, the CLI and model files)."""
    EXPERTS[cls.name] = cls
    return cls


def expert_class(name: str, n_normal: int | None = None, zero_shot: bool = False) -> type[Expert]:
    """The class an expert name means; "auto" is the few-shot memory bank up to FEW_SHOT_MAX normal
    images, PatchCore above. With `zero_shot`, the name must be a route that needs no normal images."""
    if zero_shot and name not in zero_shot_routes():
        raise ValueError(f"unknown zero-shot route {name!r}; choose one of {', '.join(zero_shot_routes())}")
    kind = ALIASES.get(name, name)
    if kind == "auto":
        kind = "memory_bank" if n_normal is None or n_normal <= FEW_SHOT_MAX else "patchcore"
    if kind not in EXPERTS:
        raise ValueError(f"unknown expert {name!r}: choose auto, memory, {', '.join(sorted(EXPERTS))} or both")
    return EXPERTS[kind]


def settings_class(expert: str | type[Expert]) -> type[ExpertSettings]:
    """The settings an expert (or a name) takes; "auto" may make any of AUTO_KINDS, so it takes each one's. A
    memory expert taught defects becomes the memory of a fused one (`FusedExpert.around`), whose decoder reads
    the same configuration: a memory expert's inspector takes the fused expert's settings too."""
    if not isinstance(expert, str):
        return expert.Settings
    kinds = AUTO_KINDS if ALIASES.get(expert, expert) == "auto" else (expert_class(expert).name,)
    parts = [EXPERTS[kind].Settings for kind in kinds]
    if set(kinds) <= set(AUTO_KINDS):
        parts.append(EXPERTS[TAUGHT_MEMORY_BECOMES].Settings)
    # a part another part extends adds nothing (and would make the classes' order inconsistent)
    leaves = tuple(dict.fromkeys(p for p in parts if not any(o is not p and issubclass(o, p) for o in parts)))
    return leaves[0] if len(leaves) == 1 else type("JoinedSettings", leaves, {})


def checked_settings(
    expert: str | type[Expert], given: Mapping[str, Any], context: dict | None = None
) -> ExpertSettings:
    """`given` as the expert's settings (its defaults for the others), or a SettingError naming the expert, the
    setting and the problem. `context`: passed to the checks (how a message names the other settings)."""
    cls, name = settings_class(expert), expert if isinstance(expert, str) else expert.name
    unknown = sorted(set(given) - set(cls.model_fields))
    if unknown:
        known = ", ".join(cls.model_fields) or "none"
        raise SettingError(name, str(unknown[0]), f"is not one of this expert's settings (they are: {known})")
    try:
        return cls.model_validate(dict(given), context=context)
    except ValidationError as error:
        problem = first_problem(error)
        raise SettingError(name, problem.field, problem.problem) from None


def zero_shot_routes() -> list[str]:
    """The registered experts that need no normal images."""
    return sorted(name for name, cls in EXPERTS.items() if "normal" not in cls.needs)


def memory_kind(n_normal: int | None) -> str:
    """The memory expert that suits this many normal images."""
    return expert_class("auto", n_normal).name


def stored_tensor(tensors: dict[str, torch.Tensor], name: str, dims: int) -> torch.Tensor:
    """The tensor `name` of a saved state, once it is there with `dims` dimensions (`from_state`)."""
    if name not in tensors:
        raise TensorError(name, "missing")
    tensor = tensors[name]
    if tensor.dim() != dims:
        raise TensorError(name, f"must have {dims} dimension{'s' * (dims != 1)}, not shape {list(tensor.shape)}")
    return tensor


def stored_image_ids(tensors: dict[str, torch.Tensor], rows: int) -> torch.Tensor:
    """The "image_ids" tensor of a memory's saved state: the image (≥ 0, int64) each of its `rows` came from."""
    ids = stored_tensor(tensors, "image_ids", 1)
    if ids.dtype != torch.int64 or len(ids) != rows or (rows and int(ids.min()) < 0):
        raise TensorError("image_ids", f"must be {rows} image numbers (int64, ≥ 0), not {ids.dtype} {list(ids.shape)}")
    return ids
