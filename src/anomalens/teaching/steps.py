"""The model side of teaching, one step per kind of correction, each through the expert protocol
(`experts.base.Expert`), never a branch on which expert it is; after each the decision is calibrated again on
the evidence the model keeps (`evidence.DecisionEvidence`), as a fit calibrates it.

- Normal images (false alarms) join the memory in place (`Expert.add_normal`): a refit on all the images
  builds the same memory bank, and a PatchCore coreset within its coverage.
- Labelled defects train the light head of a fused expert on the frozen features beside synthetic anomalies
  (`Expert.learn_defects`; a memory expert becomes the memory of one), so its maps learn this product's
  defects beside normal images — the references kept, made up to HEAD_NORMAL with the latest parts the line
  passed (with fewer the head waits, and says so); their image scores join the decision's anomalous evidence,
  which moves it even with no mask.
- Typed defects teach the defect-type head (`experts.defect_types.DefectExamples`).
- Defects marked with a box or a mask join the defect memory (`defect_memory.DefectMemory`), so that the next
  defect like one of them is found, which the decision alone does only where such defects score above every
  normal image (`calibration.image_decision`) (it acts from MIN_REFERENCES normal images on; until then teaching
  says it waits).

Guard rails: no one image can make every later defect pass. A verdict against strong evidence (the model's
defect probability beyond STRONG the other way) is taken, and flagged. An image so taught as normal whose
departure is local (a result would outline at most LOCAL of it, as it outlines a defect) joins the memory but
for the patches outlined, which are held back, so that a mislabelled defect does not teach the memory that defects like it
are normal, unless the person confirms the correction (`Correction.confirmed`); one that departs from normal
all over (a new lighting, a turned part) is taken whole. A taught normal image's score
counts in the decision at most MAX_PULL normal spreads above the threshold in force, and each labelled defect's
share of the head's training is capped (`experts.head_training`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from functools import partial

import numpy as np
import torch
import torch.nn.functional as F

from ..calibration import Calibration
from ..defect_memory import MIN_REFERENCES, WAITING, DefectMemory
from ..embedded import Embedded, embedded, expert_input
from ..experts import ExpertInput, FusedExpert, NormalEvidence, NormalImages
from ..experts.base import AUTO_KINDS, LabelledDefects
from ..experts.defect_types import FORMS, DefectExamples, defect_descriptors
from ..features import patch_features
from ..inspector import Inspector
from ..maps import smooth
from ..preprocessing import SQUASH, ImageInput
from ..synthetic_evidence import anomalous_evidence
from .corrections import Correction, TeachingError, mask_array

STRONG = 0.99  # a normal verdict on a defect probability above this (a defect one below 1 − it) is flagged
LOCAL = 0.25  # … and, outlined on at most this share of it (a defect is a local departure), guarded
HELD_BACK = "the defect it outlines is held back from its memory (confirm the correction to teach it whole)"
HEAD_WAITS = (
    "the defects count in the decision and name their types, but the head learns defects' look only beside two "
    "normal images or more: teach a normal image, give the parts the line passed, or fit it again on more than one"
)
MAX_PULL = 2.0  # normal spreads above the threshold in force a taught normal image's score counts at most
# passed parts scored at a teaching, the latest: enough for a prediction bound, few enough to score at each one
MAX_PASSED = 64
# the fewest normal images the head learns beside (one to learn from, one to calibrate on), made up with passed
# parts where the model keeps fewer; not more: made up to 8, "where" after 20 corrections from one reference fell
# on ballscrew_pitting (0.44 against 0.61, 3 seeds) and rose on mvtec_transistor (0.70 against 0.62)
HEAD_NORMAL = 2


def normal_step(inspector: Inspector, corrections: list[Correction]) -> list[str]:
    """The images join the memory in place and the decision's normal evidence; the flags raised."""
    assert inspector.expert is not None and inspector.evidence is not None and inspector.calibration is not None
    before = inspector.calibration
    seen = _embedded(inspector, [c.image for c in corrections])
    normal = seen.normal_images()
    held_back, flags = _guarded(inspector, corrections, seen, normal)
    added = inspector.expert.add_normal(normal, held_back)
    scores, maps = seen.per_image(added)
    ceiling = before.image_threshold + MAX_PULL * before.image_scale
    pixels = None if seen.tiled else torch.from_numpy(np.stack(seen.first_tiles))
    first_id = int(added.memory_ids[0]) if added.memory_ids is not None else -1
    inspector.evidence = inspector.evidence.with_normal(np.minimum(scores, ceiling), maps, pixels, first_id)
    features = seen.joined.features
    if inspector.references is not None and features is not None:
        inspector.references = inspector.references.extended(seen.sources, features)
    return flags


def _guarded(
    inspector: Inspector, corrections: list[Correction], seen: Embedded, normal: NormalImages
) -> tuple[torch.Tensor, list[str]]:
    """(inputs, h, w) the patches held back from the memory — what the model outlines on an image taught as
    normal against strong evidence, where that is local and not confirmed — and what the person is told."""
    assert inspector.expert is not None and inspector.calibration is not None
    before = inspector.calibration
    predicted = NormalEvidence(*inspector.expert.score(ExpertInput(features=normal.features)), "predicted")
    probabilities = [before.probability(score) for score in seen.per_image(predicted)[0]]
    outlined = _outlined(predicted.maps, seen.layout.size, before)  # (inputs, h, w)
    owners = seen.image_owners()
    shares = torch.zeros(len(corrections)).index_add_(0, owners, outlined.flatten(1).float().mean(1))
    local = shares / torch.bincount(owners, minlength=len(corrections)) <= LOCAL  # an image's mean over its tiles
    strong = torch.tensor([p > STRONG and not c.confirmed for c, p in zip(corrections, probabilities)])
    flags = [
        f"{c.name}: taught as normal, though the model gave it a defect probability of {p:.3f}; "
        + (HELD_BACK if held else "it departs from normal all over, and is taken whole")
        for c, p, sure, held in zip(corrections, probabilities, strong.tolist(), local.tolist())
        if sure
    ]
    return outlined & (strong & local)[owners][:, None, None], flags


def _outlined(patch_maps: torch.Tensor, size: int, calibration: Calibration) -> torch.Tensor:
    """(n, h, w) the patches a positive result outlines as its defect (`result.decide`): where the smoothed map
    reaches half its peak's height above a normal pixel, and the pixel threshold."""
    smoothed = smooth(patch_maps, size)[:, None]
    peaks = smoothed.flatten(1).amax(1)[:, None, None]
    level = torch.clamp((calibration.pixel_floor + peaks) / 2, min=calibration.pixel_threshold)
    return F.adaptive_max_pool2d(smoothed, (patch_maps.shape[-2], patch_maps.shape[-1]))[:, 0] >= level


def defect_step(inspector: Inspector, corrections: list[Correction], passed: Sequence[ImageInput] = ()) -> list[str]:
    """The labelled defects train the model's head (a memory model becomes fused) beside its normal images
    (`_normal_beside`: `passed`, the parts the line passed, oldest first, make them up) and join the decision's
    anomalous evidence; typed ones teach the defect-type head. The flags raised."""
    assert inspector.expert is not None and inspector.evidence is not None and inspector.calibration is not None
    layout = inspector.layout(inspector.expert)
    if layout.scale != SQUASH:
        raise TeachingError(f"defects are taught to models that read whole images (scale squash), not {layout.scale}")
    seen = _embedded(inspector, [c.image for c in corrections])
    features = seen.joined.features
    assert features is not None  # the memory experts need them
    regions = torch.from_numpy(np.stack([_region(c, size, layout.size) for c, size in zip(corrections, seen.sizes)]))
    exact = torch.tensor([c.where == "mask" for c in corrections])
    flags = [
        f"{c.name}: taught as defective, though the model gave it a defect probability of {p:.3f}"
        for c, p in zip(corrections, map(inspector.calibration.probability, _scores(inspector, features)))
        if p < 1 - STRONG
    ]
    kept = _normal_beside(inspector, passed)
    if kept is None:  # the defects still count in the decision, name types and join the defect memory
        flags.append(HEAD_WAITS)
    else:
        if not inspector.expert.learns_defects:
            _fused_around_memory(inspector)
        learned = inspector.expert.learn_defects(kept, LabelledDefects(features, regions, exact))
        inspector.evidence = inspector.evidence.with_maps(smooth(learned.maps, layout.size).numpy(), learned.method)
    inspector.evidence = inspector.evidence.with_defects(_scores(inspector, features))
    _learn_types(inspector, corrections, features)
    _remember(inspector, corrections, features, regions, flags)
    return flags


def passed_scores(inspector: Inspector, images: Sequence[ImageInput]) -> np.ndarray:
    """The scores the model as taught gives the latest MAX_PASSED parts the line passed and no one corrected: its
    normal side, scored as new parts are. One that cannot be read, or that is like a taught defect, is left out."""
    results = inspector.predict(list(images)[-MAX_PASSED:])
    return np.array([r.score for r in results if r.ok and not r.known_defect], np.float64)


def refresh_synthetic(inspector: Inspector) -> None:
    """The synthetic anomalies made again from the kept references and scored against the memory as it now is
    (`synthetic_evidence.anomalous_evidence`, as a fit scores them)."""
    assert inspector.expert is not None and inspector.evidence is not None
    pixels = inspector.evidence.pixels
    if pixels is None or inspector.backbone is None:
        return
    embed = partial(patch_features, inspector.backbone)
    synthetic = anomalous_evidence(inspector.expert, pixels, embed, inspector.config.seed)
    inspector.evidence = inspector.evidence.with_synthetic(synthetic)


def _embedded(inspector: Inspector, images: list) -> Embedded:
    """The images as the model's expert reads them; one that cannot be read is an error naming it."""
    assert inspector.expert is not None
    expert = inspector.expert
    seen = embedded(images, inspector.layout(expert), expert, inspector.backbone, inspector.config.batch_size)
    if seen.skipped:
        raise TeachingError(seen.skipped[0])
    return seen


def _scores(inspector: Inspector, features: list[torch.Tensor]) -> np.ndarray:
    assert inspector.expert is not None
    return inspector.expert.score(ExpertInput(features=features))[1].double().numpy()


def _region(correction: Correction, size: tuple[int, int], side: int) -> np.ndarray:
    """Where the defect lies, squashed to the input's `side`: its mask, its box, or the whole image."""
    width, height = size
    if correction.mask is not None:
        mask = torch.from_numpy(mask_array(correction, (height, width))).float()[None, None]
        return F.interpolate(mask, size=(side, side), mode="area")[0, 0].numpy()
    region = np.zeros((side, side), np.float32)
    if correction.box is None:
        region[:] = 1
        return region
    x0, y0, x1, y1 = correction.box
    if x1 > width or y1 > height:
        raise TeachingError(f"{correction.name}: box {correction.box} reaches past the image ({width}×{height})")
    rows = slice(int(y0 * side / height), int(np.ceil(y1 * side / height)))
    region[rows, int(x0 * side / width) : int(np.ceil(x1 * side / width))] = 1
    return region


def _fused_around_memory(inspector: Inspector) -> None:
    """The model's memory expert becomes the memory of a fused one, its scores normalised as that one's."""
    assert inspector.expert is not None and inspector.evidence is not None
    if inspector.expert.name not in AUTO_KINDS:
        raise TeachingError(f"a {inspector.expert.name} model does not learn labelled defects")
    fused = FusedExpert.around(inspector.expert, inspector.config, inspector.evidence.normal_scores)
    inspector.evidence = inspector.evidence.rescaled(*fused.statistics["memory_score"])
    inspector.expert, inspector.config = fused, replace(inspector.config, expert="fused")


def _normal_beside(inspector: Inspector, passed: Sequence[ImageInput]) -> NormalImages | None:
    """The normal images the head learns beside: the references the model keeps (memory images 0 … p − 1) and,
    to make HEAD_NORMAL, the latest parts the line passed that can be read (not in the memory: scored as new
    parts are). None with fewer (a model fitted on one reference, given no passed parts): without them a model
    fitted on one reference stays a memory bank, however many defects it is taught, until a normal image is."""
    assert inspector.expert is not None and inspector.evidence is not None and inspector.backbone is not None
    kept = inspector.evidence.pixels
    if kept is None:
        return None
    found = _latest_readable(inspector, passed, HEAD_NORMAL - len(kept))
    pixels = torch.cat([kept, *(torch.from_numpy(seen.first_tiles[0])[None] for seen in found)])
    if len(pixels) < HEAD_NORMAL:
        return None
    features = expert_input(inspector.backbone, kept.float().div(255).numpy(), inspector.expert).features
    assert features is not None  # the memory experts need them
    for seen in found:
        features = [torch.cat([f, more]) for f, more in zip(features, seen.joined.features or [])]
    embed = partial(patch_features, inspector.backbone)
    memory_ids = torch.cat([torch.arange(len(kept)), torch.full((len(pixels) - len(kept),), -1)])
    return NormalImages(features, pixels, embed, memory_ids=memory_ids)


def _latest_readable(inspector: Inspector, images: Sequence[ImageInput], wanted: int) -> list[Embedded]:
    """The latest `wanted` of `images` that can be read, each embedded as the model's expert reads it."""
    assert inspector.expert is not None
    layout, found = inspector.layout(inspector.expert), list[Embedded]()
    for image in reversed(images):
        if len(found) >= wanted:
            break
        seen = embedded([image], layout, inspector.expert, inspector.backbone, inspector.config.batch_size)
        if not seen.skipped:
            found.append(seen)
    return found


def _remember(
    inspector: Inspector, corrections: list[Correction], features, regions: torch.Tensor, flags: list[str]
) -> None:
    """Defects marked with a box or a mask join the model's defect memory; one known only by its verdict does
    not (where it lies is not known). Where the memory cannot act yet (too few references), `flags` says so."""
    assert inspector.expert is not None and inspector.evidence is not None
    marked = [i for i, c in enumerate(corrections) if c.where in ("box", "mask")]
    if not marked:
        return
    names = [corrections[i].name for i in marked]
    known = DefectMemory.of(inspector.expert, [f[marked] for f in features], regions[marked], names)
    if known.names:  # an empty mask marks no patch
        inspector.defect_memory = inspector.defect_memory.joined(known) if inspector.defect_memory else known
    if known.names and inspector.evidence.normal_scores.size < MIN_REFERENCES:
        flags.append(WAITING)


def _learn_types(inspector: Inspector, corrections: list[Correction], features) -> None:
    """Typed defects' descriptors join the model's examples, described from the model's map as a result's is —
    not only within the person's mark: a query has none, and examples described unlike the queries named types
    worse (bench/defect_types.md: 0.36 against 0.68 on magnetic_tile at 4 references)."""
    assert inspector.expert is not None
    typed = [i for i, c in enumerate(corrections) if c.type]
    if not typed:
        return
    chosen = [f[typed] for f in features]
    form = inspector.defect_examples.form if inspector.defect_examples else FORMS[0]  # one form per model
    descriptors = defect_descriptors(chosen, inspector.expert.score(ExpertInput(features=chosen))[0], form)
    names = [str(corrections[i].type).strip() for i in typed]
    known = inspector.defect_examples or DefectExamples((), np.empty((0, descriptors.shape[1]), np.float32))
    inspector.defect_examples = known.with_examples(names, descriptors)
