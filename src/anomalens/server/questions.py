"""A question put to a chat (about an image or a series): 1–2,000 characters, not only spaces, trimmed."""

from typing import Annotated

from pydantic import AfterValidator, Field


def _has_words(question: str) -> str:
    if not question.strip():
        raise ValueError("the question is empty (it holds only spaces)")
    return question.strip()


Question = Annotated[
    str, Field(min_length=1, max_length=2000, json_schema_extra={"pattern": r"\S"}), AfterValidator(_has_words)
]
