"""Experts turn patch features into anomaly maps. Each one: ``fit(features)`` on normal images,
``score(features)`` → (patch maps (B, h, w), image scores (B,)), ``leave_one_out(features)`` for
calibration, and ``state()`` / ``from_state()`` for model files. The zero-shot `MutualScorer` has no fit
and no state: it scores a batch's images against each other."""

from __future__ import annotations

from .memory_bank import MemoryBankExpert
from .mutual import MutualScorer
from .patchcore import PatchCoreExpert

Expert = MemoryBankExpert | PatchCoreExpert
EXPERTS: dict[str, type[Expert]] = {cls.kind: cls for cls in (MemoryBankExpert, PatchCoreExpert)}

__all__ = ["EXPERTS", "Expert", "MemoryBankExpert", "MutualScorer", "PatchCoreExpert"]
