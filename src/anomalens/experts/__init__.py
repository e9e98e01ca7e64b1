"""Experts turn a batch into patch anomaly maps and image scores, behind one protocol (`base.Expert`):
memory bank (few-shot), PatchCore (full-shot), decoder (trained on synthetic anomalies), fused (memory +
decoder), mutual (zero-shot route B: a batch scored against itself) and CLIP (zero-shot route A: text).
Importing this package registers them all by name."""

from .base import (
    EXPERTS,
    Expert,
    ExpertInput,
    ExpertSettings,
    NormalEvidence,
    NormalImages,
    expert_class,
    register,
    zero_shot_routes,
)
from .clip_zero_shot import ClipZeroShotExpert
from .decoder import DecoderExpert
from .fusion import FusedExpert
from .memory_bank import MemoryBankExpert
from .mutual import MutualExpert
from .patchcore import PatchCoreExpert

__all__ = [
    "EXPERTS",
    "ClipZeroShotExpert",
    "DecoderExpert",
    "Expert",
    "ExpertInput",
    "ExpertSettings",
    "FusedExpert",
    "MemoryBankExpert",
    "MutualExpert",
    "NormalEvidence",
    "NormalImages",
    "PatchCoreExpert",
    "expert_class",
    "register",
    "zero_shot_routes",
]
