"""Language layer: inspection findings → grounded answers, chat, and language-model backends with a guard.

The names below are imported when first used: `criteria` and `claims` (which the time-series answers use)
load without the image findings, whose defect-type guesses need torch."""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .chat import ChatImages, ChatSession, Turn
    from .claims import read_claims
    from .composer import Answer, classify, compose
    from .corrections import ChatCorrection, read_correction
    from .criteria import Criteria, CriteriaError, DefectType, load_criteria
    from .findings import DefectGuess, Findings, findings_from
    from .guard import GUARD_MODES
    from .models import BACKENDS, BackendError, LanguageModel, create_language_model

_WHERE = {  # public name → its module
    "ChatImages": ".chat",
    "ChatSession": ".chat",
    "Turn": ".chat",
    "read_claims": ".claims",
    "Answer": ".composer",
    "classify": ".composer",
    "compose": ".composer",
    "ChatCorrection": ".corrections",
    "read_correction": ".corrections",
    "Criteria": ".criteria",
    "CriteriaError": ".criteria",
    "DefectType": ".criteria",
    "load_criteria": ".criteria",
    "DefectGuess": ".findings",
    "Findings": ".findings",
    "findings_from": ".findings",
    "GUARD_MODES": ".guard",
    "BACKENDS": ".models",
    "BackendError": ".models",
    "LanguageModel": ".models",
    "create_language_model": ".models",
}

__all__ = [
    "Answer",
    "BACKENDS",
    "BackendError",
    "ChatCorrection",
    "ChatImages",
    "ChatSession",
    "Criteria",
    "CriteriaError",
    "DefectGuess",
    "DefectType",
    "Findings",
    "GUARD_MODES",
    "LanguageModel",
    "Turn",
    "classify",
    "compose",
    "create_language_model",
    "findings_from",
    "load_criteria",
    "read_claims",
    "read_correction",
]


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(_WHERE[name], __name__), name)
