"""Language layer: inspection findings → grounded answers, chat, and language-model backends with a guard."""

from .chat import ChatImages, ChatSession, Turn
from .claims import read_claims
from .composer import Answer, classify, compose
from .criteria import Criteria, CriteriaError, DefectType, load_criteria
from .findings import DefectGuess, Findings, findings_from
from .guard import GUARD_MODES
from .models import BACKENDS, BackendError, LanguageModel, create_language_model

__all__ = [
    "Answer",
    "BACKENDS",
    "BackendError",
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
]
