"""Experts turn patch features into anomaly maps. Each one: ``score(features)`` → (patch maps (B, h, w),
image scores (B,)) and ``state()`` / ``from_state()`` for model files. The memory experts are fitted with
``fit(features)`` on normal images and calibrated by ``leave_one_out(features)``; the decoder is trained on
synthetic anomalies and the fused expert combines it with a memory expert (see ``anomalens.training``).
The zero-shot `MutualScorer` has no fit and no state: it scores a batch's images against each other."""

from __future__ import annotations

from .decoder import DecoderExpert
from .fusion import FusedExpert
from .memory_bank import MemoryBankExpert
from .mutual import MutualScorer
from .patchcore import PatchCoreExpert

Expert = MemoryBankExpert | PatchCoreExpert | DecoderExpert | FusedExpert
EXPERTS: dict[str, type[Expert]] = {
    cls.kind: cls for cls in (MemoryBankExpert, PatchCoreExpert, DecoderExpert, FusedExpert)
}

__all__ = ["EXPERTS", "DecoderExpert", "Expert", "FusedExpert", "MemoryBankExpert", "MutualScorer", "PatchCoreExpert"]
