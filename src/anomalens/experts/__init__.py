"""Experts turn patch features into anomaly maps. Each one: ``fit(features)`` on normal images,
``score(features)`` → (patch maps (B, h, w), image scores (B,)), ``leave_one_out(features)`` for
calibration, and ``state()`` / ``from_state()`` for model files."""

from __future__ import annotations

from .memory_bank import MemoryBankExpert
from .patchcore import PatchCoreExpert

Expert = MemoryBankExpert | PatchCoreExpert
EXPERTS: dict[str, type[Expert]] = {cls.kind: cls for cls in (MemoryBankExpert, PatchCoreExpert)}

__all__ = ["EXPERTS", "Expert", "MemoryBankExpert", "PatchCoreExpert"]
