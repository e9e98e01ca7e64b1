"""Fusion of the memory expert (memory bank or PatchCore) with the trained decoder.

The two experts' maps live on different scales (a feature distance, a probability), so each is first
normalised by its own normal statistics — z = (value − median) / scale over normal images the expert had not
fitted on — and the normalised maps are summed with weights: the decoder sharpens *where*. The decoder's
probability is taken as its logit first: a sigmoid squeezes normal patches against 0, so a scale measured
there is tiny and the z of a confident patch runs into the hundreds (99.9th percentile ≈ 800 on
magnetic_tile's test maps), which lets the decoder's tail decide the fused map whatever its weight.

The image score — *whether* — is the memory expert's alone (normalised the same way). A weighted sum of
the two normalised image scores let a weak decoder decide: on magnetic_tile (decoder image AUROC 0.68)
a decoder share of 0.25 took image AUROC from 0.954 to 0.834, since z-scores are unbounded and the
decoder's tail on new normal images is long. The decoder's image score is not a reliable detector on
its own, and nothing label-free tells in advance when it is.

Taught, a fused expert keeps its memory and trains its decoder again on defects a person labelled
(`learn_defects`); a memory expert that is taught defects becomes the memory of a fused one (`around`)."""

from __future__ import annotations

from typing import Annotated, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from ..fields import STRICT_STATE, FieldError, validated
from ..robust import median_and_spread
from .base import EXPERTS, Expert, ExpertInput, LabelledDefects, NormalEvidence, NormalImages, memory_kind, register
from .decoder import DecoderExpert, DecoderScorer, DecoderSettings, held_out_split
from .patchcore import PatchCoreSettings

MAP_DECODER_WEIGHT = 0.25  # the decoder's share of the fused map (bench: ≥ memory AUPRO on all 3 sets; 0.5 on 2)


def map_statistics(maps: torch.Tensor) -> list[float]:
    """[median, scale] of normal patch values; the scale is the distance from the median to the 99th
    percentile, which stays meaningful when most normal patches sit at one value (a probability near 0)."""
    values = maps.flatten().double().numpy()
    median = float(np.median(values))
    return [median, max(float(np.quantile(values, 0.99)) - median, 1e-6)]


def decoder_logits(maps: torch.Tensor) -> torch.Tensor:
    """The decoder's patch probabilities as logits, the scale its maps are normalised and fused on."""
    return torch.logit(maps.double(), eps=1e-6).float()


def score_statistics(scores: torch.Tensor) -> list[float]:
    """[median, robust σ] of normal image scores (the calibration's own spread estimate)."""
    return list(median_and_spread(scores.double().numpy()))


class FusedSettings(PatchCoreSettings, DecoderSettings):
    """Its memory's (PatchCore's, where it makes one) and its decoder's."""


@register
class FusedExpert(Expert):
    name = "fused"
    needs = DecoderExpert.needs
    learns_defects = True
    Settings = FusedSettings

    def __init__(self, memory: Expert, decoder: DecoderExpert, statistics: dict | None = None):
        """`statistics`: for "memory_map", "memory_score" and "decoder_logit", [median, scale] of that
        expert's patch values (the decoder's as logits) or image scores on normal images."""
        self.memory, self.decoder, self.statistics = memory, decoder, statistics or {}

    @classmethod
    def create(cls, config, n_normal: int | None = None) -> FusedExpert:
        return cls(EXPERTS[memory_kind(n_normal)].create(config, n_normal), DecoderExpert.create(config))

    def fit(self, normal: NormalImages) -> NormalEvidence:
        """The decoder trained and calibrated on its held-out split; the memory expert fitted on all normal
        images, its leave-one-out scores of that split fused with the decoder's."""
        decoder = self.decoder.fit(normal)
        memory = self.memory.fit(NormalImages(normal.features))
        _, held = held_out_split(len(normal), self.decoder.seed)
        self.statistics = {
            "memory_map": map_statistics(memory.maps),
            "memory_score": score_statistics(memory.scores),
            "decoder_logit": map_statistics(decoder_logits(decoder.maps)),
        }
        return NormalEvidence(
            *fuse((memory.maps[held], memory.scores[held]), decoder.maps, self.statistics), "held-out"
        )

    @classmethod
    def around(cls, memory: Expert, config, memory_scores: np.ndarray) -> FusedExpert:
        """A fused expert over a fitted memory expert, its decoder not yet trained (`learn_defects` trains it);
        its image scores normalised by the memory's normal `memory_scores`, scored as if new (as `fit`)."""
        statistics = {"memory_score": score_statistics(torch.as_tensor(memory_scores))}
        return cls(memory, DecoderExpert.create(config), statistics)

    def add_normal(self, normal: NormalImages, held_back: torch.Tensor | None = None) -> NormalEvidence:
        memory = self.memory.add_normal(normal, held_back)
        decoder_maps = self.decoder.score(ExpertInput(features=normal.features))[0]
        fused = fuse((memory.maps, memory.scores), decoder_maps, self.statistics)
        return NormalEvidence(*fused, memory.method, memory.memory_ids)

    def learn_defects(self, normal: NormalImages, defects: LabelledDefects) -> NormalEvidence:
        """The decoder trained again on synthetic anomalies from a split of `normal` and on the labelled
        `defects`; the memory as it is. Map statistics as `fit` takes them: the memory's on every normal image
        (each left out of the memory), the decoder's on the split it was not trained on, whose fused maps and
        scores are the evidence."""
        assert normal.features is not None  # its needs
        decoder = self.decoder.retrain(normal, defects)
        owners = normal.memory_ids if normal.memory_ids is not None else torch.full((len(normal),), -1)
        memory_maps, memory_scores = self.memory.left_out(normal.features, owners)
        _, held = held_out_split(len(normal), self.decoder.seed)
        self.statistics |= {
            "memory_map": map_statistics(memory_maps),
            "decoder_logit": map_statistics(decoder_logits(decoder.maps)),
        }
        return NormalEvidence(
            *fuse((memory_maps[held], memory_scores[held]), decoder.maps, self.statistics), "held-out"
        )

    def score(self, batch: ExpertInput) -> tuple[torch.Tensor, torch.Tensor]:
        return fuse(self.memory.score(batch), self.decoder.score(batch)[0], self.statistics)

    def memory_rows(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        return self.memory.memory_rows(features)

    def row_distances(self, features: list[torch.Tensor], rows: list[torch.Tensor] | None = None) -> torch.Tensor:
        return self.memory.row_distances(features, rows)

    def left_out(self, features: list[torch.Tensor], owners: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        decoder_maps = self.decoder.score(ExpertInput(features=features))[0]
        return fuse(self.memory.left_out(features, owners), decoder_maps, self.statistics)

    def left_out_scores(self, features: list[torch.Tensor], owners: list[int]) -> torch.Tensor | None:
        scores = self.memory.left_out_scores(features, owners)
        if scores is None:
            return None
        median, scale = self.statistics["memory_score"]  # the image score is the memory expert's, normalised
        return (scores - median) / scale

    def module(self) -> FusedScorer:
        return FusedScorer(self.memory.module(), self.decoder.module(), self.statistics)

    def state(self) -> tuple[dict, dict[str, torch.Tensor]]:
        (memory_config, memory_tensors), (decoder_config, decoder_tensors) = self.memory.state(), self.decoder.state()
        tensors = {f"memory.{k}": v for k, v in memory_tensors.items()}
        tensors |= {f"decoder.{k}": v for k, v in decoder_tensors.items()}
        return {
            "kind": self.name,
            "memory": memory_config,
            "decoder": decoder_config,
            "statistics": self.statistics,
        }, tensors

    @classmethod
    def from_state(cls, config: dict, tensors: dict[str, torch.Tensor]) -> FusedExpert:
        """Rebuilt from `state()`: each part by its own expert (its fields' paths under "memory." and
        "decoder."), and the normal statistics, a finite median and a scale above 0 each."""

        statistics = config.get("statistics") if isinstance(config, dict) else None
        if isinstance(statistics, dict) and "decoder_logit" not in statistics:
            problem = (
                "a fused model from an older AnomaLens (decoder statistics on the probability scale): fit it again"
            )
            raise FieldError("statistics", problem)
        state = validated(FusedState, config)
        largest = torch.finfo(torch.float32).max  # maps are float32: a statistic beyond makes them infinite
        for name, (median, scale) in state.statistics.model_dump().items():
            if abs(median) > largest:
                raise FieldError(f"statistics.{name}.0", f"a median must lie within ±{largest:.3g}, not {median}")
            if not 0 < scale <= largest:  # maps and scores are divided by it
                raise FieldError(
                    f"statistics.{name}.1", f"a scale must be above 0 and at most {largest:.3g}, not {scale}"
                )

        def part(name: str, kind: str) -> Expert:
            prefix = f"{name}."
            try:
                return EXPERTS[kind].from_state(
                    config[name], {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
                )
            except FieldError as error:  # TensorErrors too: the part's tensors are "<name>.<tensor>" in the file
                raise error.within(name) from None

        memory = part("memory", state.memory.kind)
        decoder = part("decoder", state.decoder.kind)
        assert isinstance(decoder, DecoderExpert)  # its kind is "decoder"
        return cls(memory, decoder, state.statistics.model_dump())


Statistic = Annotated[list[float], Field(min_length=2, max_length=2)]  # [median, scale], finite


class Statistics(BaseModel):
    model_config = STRICT_STATE
    memory_map: Statistic
    memory_score: Statistic
    decoder_logit: Statistic


class MemoryPart(BaseModel):
    """The memory part's kind; the rest of its state is its own expert's to check."""

    model_config = ConfigDict(strict=True, extra="allow")
    kind: Literal["memory_bank", "patchcore"]  # the experts "auto" makes (`base.AUTO_KINDS`)


class DecoderPart(BaseModel):
    model_config = ConfigDict(strict=True, extra="allow")
    kind: Literal["decoder"]


class FusedState(BaseModel):
    """What `FusedExpert.state` writes beside its tensors."""

    model_config = STRICT_STATE
    kind: Literal["fused"]
    memory: MemoryPart
    decoder: DecoderPart
    statistics: Statistics


def fuse(
    memory: tuple[torch.Tensor, torch.Tensor], decoder_maps: torch.Tensor, statistics: dict
) -> tuple[torch.Tensor, torch.Tensor]:
    """Fused (maps, scores) from the memory expert's (maps, scores) and the decoder's maps of the same images."""

    def normalised(name: str, values: torch.Tensor) -> torch.Tensor:
        median, scale = statistics[name]
        return (values - median) / scale

    maps = (1 - MAP_DECODER_WEIGHT) * normalised("memory_map", memory[0]) + MAP_DECODER_WEIGHT * normalised(
        "decoder_logit", decoder_logits(decoder_maps)
    )
    return maps, normalised("memory_score", memory[1])


class FusedScorer(nn.Module):
    """The fused scoring step as one module: both experts' scorers and the normal statistics."""

    def __init__(self, memory: nn.Module, decoder: DecoderScorer, statistics: dict):
        super().__init__()
        self.memory, self.decoder, self.statistics = memory, decoder, statistics

    def forward(self, features: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        return fuse(self.memory(features), self.decoder(features)[0], self.statistics)
