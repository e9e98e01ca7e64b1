"""What the inspector says about one image, and how a scored map becomes that answer: the calibrated
verdict and probability, what decided it (`Decision`), the map at the image's own size, and the regions a
positive verdict points at.

A part's verdict and probability depend on the part and the model only: each image is decided alone
("per-image") unless batch evidence is asked for ("batch-evidence": the threshold may move on the batch's
own scores, `batch_evidence.batch_refined`, where they are clearly two groups). A zero-shot batch scored against
itself has no model: it is always decided from its batch ("batch (zero-shot)")."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .batch_evidence import batch_refined, reference_shift
from .calibration import Calibration
from .preprocessing import Decoded, failure
from .regions import Region, describe_location, find_regions
from .resampling import at_image_size

PER_IMAGE, BATCH_EVIDENCE, ZERO_SHOT_BATCH = "per-image", "batch-evidence", "batch (zero-shot)"  # decision modes
UNCERTAIN = (0.2, 0.8)  # a probability of a defect in this band (inclusive) is an uncertain verdict


def uncertain(probability: float) -> bool:
    """Whether a verdict of this defect probability is uncertain: a second look is advised."""
    return UNCERTAIN[0] <= probability <= UNCERTAIN[1]


def uncertain_note(probability: float) -> str:
    """How an uncertain verdict is flagged, everywhere alike: "uncertain: 0.64 — a second look is advised"."""
    return f"uncertain: {probability:.2f} — a second look is advised"


@dataclass(frozen=True)
class Decision:
    """What decided a verdict: the mode (PER_IMAGE, BATCH_EVIDENCE or ZERO_SHOT_BATCH), the rule that placed
    the threshold, the threshold and score, the margin between them in normal spreads, the normal images
    behind the threshold, and whether the probability lies in the UNCERTAIN band."""

    mode: str
    rule: str
    threshold: float
    score: float
    margin: float
    n_normal: int
    uncertain: bool
    normal_median: float | None = None
    normal_spread: float | None = None
    normal_dof: int | None = None

    def to_dict(self) -> dict:
        return asdict(self)


SHIFT_NOTE = 0.5  # a batch whose normal-looking parts sit this many normal spreads from the references is noted


def shift_note(scored: Iterable[tuple[Calibration, float]]) -> str | None:
    """A note for the user where a batch's normal-looking parts score unlike the model's references
    (`batch_evidence.reference_shift`, SHIFT_NOTE spreads or more), from its (calibration, score) pairs: the
    verdicts stay as they are — the note says what to expect and what to do. None where they agree, or the
    batch is too small or not one model's."""
    pairs = list(scored)
    if not pairs or len({id(calibration) for calibration, _ in pairs}) > 1:
        return None
    shift = reference_shift(pairs[0][0], [score for _, score in pairs])
    if shift is None or abs(shift) < SHIFT_NOTE:
        return None
    effect = "expect more false alarms than the model states" if shift > 0 else "defects close to the line may pass"
    return (
        f"the normal-looking parts of this batch score {abs(shift):.1f} normal spreads "
        f"{'above' if shift > 0 else 'below'} the model's references: {effect}; verdicts are unchanged — if today's "
        "parts differ from the references (lighting, batch, wear), refit on current good parts"
    )


@dataclass(frozen=True)
class ModelMetadata:
    """What made a result (`predictor.Predictor.metadata`): `model_id` (a model file's stem; "few-shot" or
    "zero-shot" for one made in memory), `model_version` (the SHA-256 of the model file's bytes; None when there
    is no file), the `engine` ("torch", "onnx") and the `expert` that scores."""

    model_id: str
    model_version: str | None
    engine: str
    expert: str

    def to_dict(self) -> dict:
        return asdict(self)


def file_version(path: str | Path) -> str:
    """A model file's version: the SHA-256 (hex) of its bytes (the same bytes, the same version)."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass
class InspectionResult:
    """One image's inspection. `error` is set (and the rest empty) if it could not be read. The decoded
    image, the calibration that decided it and the defect descriptor travel with it, so overlays, findings
    and the chat need neither the file again nor the network."""

    source: str
    score: float | None = None
    anomalous: bool | None = None
    probability: float | None = None  # calibrated probability that the image is anomalous
    confidence: float | None = None  # probability of the verdict given: max(p, 1 − p)
    anomaly_map: np.ndarray | None = field(default=None, repr=False)  # H×W at the decoded image's size
    regions: list[Region] = field(default_factory=list)
    location: str = ""  # "bottom left", … ("" when no defect)
    image_size: tuple[int, int] | None = None  # width, height of the image as given (boxes are in its pixels)
    error: str | None = None
    expert: str = ""  # the expert that scored it
    image: np.ndarray | None = field(default=None, repr=False)  # the decoded H×W×3 image (uint8 or float in [0, 1])
    calibration: Calibration | None = field(default=None, repr=False)
    descriptor: np.ndarray | None = field(default=None, repr=False)  # where it departs from normal (defect types)
    nearest_reference: str = ""  # the normal reference image it is most like ("": not known)
    decision: Decision | None = None  # what decided it
    known_defect: str = ""  # why it is flagged as like a taught defect (`defect_memory`; "": it is not)

    @classmethod
    def failed(cls, source: str, error: BaseException) -> InspectionResult:
        """The result of an image that was read but could not be inspected: what went wrong, by its file
        name, as an unreadable image's result says why (one image's failure never stops a batch)."""
        return cls(source=source, error=f"{source}: could not be inspected ({failure(error)})")

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict:
        """JSON-ready summary (the map and image are left out: they go to image files)."""
        return {
            "source": self.source,
            "ok": self.ok,
            "error": self.error,
            "score": self.score,
            "anomalous": self.anomalous,
            "probability": self.probability,
            "confidence": self.confidence,
            "location": self.location,
            "regions": [r.to_dict() for r in self.regions],
            "image_size": self.image_size,
            "decision": self.decision.to_dict() if self.decision else None,
            "known_defect": self.known_defect,
        }


def decide(
    decoded: Decoded,
    score: float,
    small_map: np.ndarray,
    calibration: Calibration,
    expert: str = "",
    descriptor: np.ndarray | None = None,
    nearest_reference: str = "",
    mode: str = PER_IMAGE,
    known_defect: str = "",
) -> InspectionResult:
    """The result for one scored image: `small_map` is its smoothed map at the input size, `mode` how it is
    decided (see `Decision`). The map comes back at the decoded image's size; region boxes are in the pixels
    of the image as given."""
    shape, (width, height) = decoded.image.shape[:2], decoded.size
    anomalous = calibration.decide(score)
    probability = calibration.probability(score)
    regions = []
    if anomalous:
        # Outline at half the peak's height above a normal pixel, and never below the calibrated pixel
        # threshold unless the peak itself is (so a positive verdict always says where); report the
        # regions whose peak no normal image reaches.
        peak = float(small_map.max())
        half_max = (calibration.pixel_floor + peak) / 2
        level = max(calibration.pixel_threshold, half_max) if peak > calibration.pixel_threshold else half_max
        level = min(level, peak)  # a map all below the normal pixels' floor (a taught model's) still has its peak
        regions = find_regions(small_map, level, seed=calibration.region_threshold, image_size=(width, height))
    return InspectionResult(
        source=decoded.source,
        score=score,
        anomalous=bool(anomalous),
        probability=probability,
        confidence=max(probability, 1 - probability),
        anomaly_map=at_image_size(small_map, shape),
        regions=regions,
        location=describe_location(regions),
        image_size=(width, height),
        image=decoded.image,
        calibration=calibration,
        expert=expert,
        descriptor=descriptor,
        nearest_reference=nearest_reference,
        known_defect=known_defect,
        decision=Decision(
            mode=mode,
            rule=calibration.rule,
            threshold=float(calibration.image_threshold),
            score=float(score),
            margin=float(calibration.margin(score)),
            n_normal=int(calibration.n_normal),
            uncertain=uncertain(probability),
            **calibration.normal_predictive(),
        ),
    )


@dataclass
class Scored:
    """One image scored and not yet decided: what `decide` takes."""

    decoded: Decoded
    score: float
    small_map: np.ndarray
    calibration: Calibration
    expert: str = ""
    descriptor: np.ndarray | None = None
    nearest_reference: str = ""
    known_defect: str = ""

    def decided(self, calibration: Calibration | None = None, mode: str = PER_IMAGE) -> InspectionResult:
        """Its result; an exception while deciding it (its regions, its map at its size) is its error result.
        A zero-shot batch's own calibration is always ZERO_SHOT_BATCH."""
        own = calibration or self.calibration
        try:
            return decide(
                self.decoded,
                self.score,
                self.small_map,
                own,
                self.expert,
                self.descriptor,
                self.nearest_reference,
                ZERO_SHOT_BATCH if own.method == "batch-mixture" else mode,
                self.known_defect,
            )
        except Exception as error:  # noqa: BLE001 - this image's failure alone
            return InspectionResult.failed(self.decoded.source, error)


BATCH_BYTES = 1 << 30  # decoded images and maps a batch decided together may hold; a larger one goes in parts


def decided(
    items: Iterable[Scored | InspectionResult],
    batch_evidence: bool = False,
    scored: Callable[[], None] | None = None,
) -> Iterator[InspectionResult]:
    """Results in order from scored images (and unreadable images' results). By default one at a time, each by
    its own calibration (PER_IMAGE): a part's verdict depends on the part and the model only. `batch_evidence`:
    all scored first, then decided by their calibration refined on the batch's scores (`batch_refined`: it moves
    only for a batch large enough and clearly two groups), held up to BATCH_BYTES of images and maps: past that,
    what is held is decided and the rest follows. `scored()` is called as each item is scored (progress)."""
    items = _counted(items, scored) if scored is not None else items
    if not batch_evidence:
        yield from (item.decided() if isinstance(item, Scored) else item for item in items)
        return
    held: list[Scored | InspectionResult] = []
    size = 0
    for item in items:
        held.append(item)
        size += item.decoded.image.nbytes + item.small_map.nbytes if isinstance(item, Scored) else 0
        if size >= BATCH_BYTES:
            yield from _decided_together(held)
            held, size = [], 0
    yield from _decided_together(held)


def _decided_together(items: list[Scored | InspectionResult]) -> Iterator[InspectionResult]:
    scored = [item for item in items if isinstance(item, Scored)]
    refined: dict[int, Calibration] = {}
    for calibration in {id(item.calibration): item.calibration for item in scored}.values():
        scores = [item.score for item in scored if item.calibration is calibration]
        refined[id(calibration)] = batch_refined(calibration, scores)
    yield from (
        item.decided(refined[id(item.calibration)], BATCH_EVIDENCE) if isinstance(item, Scored) else item
        for item in items
    )


def _counted(
    items: Iterable[Scored | InspectionResult], scored: Callable[[], None]
) -> Iterator[Scored | InspectionResult]:
    for item in items:
        scored()
        yield item
