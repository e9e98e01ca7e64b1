"""Saved state, checked field by field: one error and one message for every field a model file holds.

Whoever gives a field its meaning checks it where it reads it (the configuration and the calibration in
`model_file`, each expert in its `from_state`), and says what is wrong with it as a `FieldError`: the field's
dotted path within what that reader was given, and the problem. Readers that hand part of their state to
another (a fused expert to its memory expert) put their own name in front (`FieldError.within`), and the
model file ends the path at the header's top ("expert.memory.grid"). The message always reads
"field <dotted.path>: <problem>".

Fields are validated with pydantic in strict mode: JSON types exactly as written (a string "9" is not a
number, a bool is not a count), no NaN or infinity. `validated` turns pydantic's first complaint into a
`FieldError`."""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

STRICT_STATE = ConfigDict(strict=True, allow_inf_nan=False, extra="ignore")  # an expert's state, as saved
SEED_MAX = 2**31 - 2  # seeds go to faiss (a C int, after + 1), torch and numpy: one bound for all

Count = Annotated[int, Field(ge=1)]  # how many of something there are: at least one
Seed = Annotated[int, Field(ge=0, le=SEED_MAX)]
Positive = Annotated[float, Field(gt=0)]  # finite (STRICT_STATE), above 0: a spread, a temperature
Fraction = Annotated[float, Field(gt=0, le=1)]


class FieldError(ValueError):
    """A field a reader cannot use: `field`, its dotted path within what the reader was given."""

    def __init__(self, field: str, problem: str):
        self.field, self.problem = field, problem
        super().__init__(f"field {field}: {problem}")

    def within(self, prefix: str) -> FieldError:
        """The same problem, its path seen from one level up (`prefix`: the name the reader's part has there)."""
        return type(self)(f"{prefix}.{self.field}" if self.field else prefix, self.problem)


class TensorError(FieldError):
    """A tensor a reader cannot use: `field`, the tensor's name within what the reader was given. In a model
    file its path is "tensors.<name in the file>" (`within` puts a part's prefix in front of the name)."""


M = TypeVar("M", bound=BaseModel)


def validated(model: type[M], data: Any) -> M:
    """`data` as `model`, or the first problem pydantic finds as a FieldError."""
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise first_problem(error) from None


def first_problem(error: ValidationError) -> FieldError:
    """pydantic's first complaint as a FieldError (the field "" when it is about the whole of the data)."""
    first = error.errors()[0]
    field = ".".join(str(part) for part in first["loc"])
    more = f" (and {error.error_count() - 1} more problems)" if error.error_count() > 1 else ""
    if first["type"] == "missing":
        return FieldError(field, f"missing{more}")
    if first["type"] in ("unexpected_keyword_argument", "extra_forbidden"):
        return FieldError(field, f"not a field of this model format{more}")
    if first["type"] == "json_invalid":
        return FieldError(field, f"not valid JSON ({first['msg'].removeprefix('Invalid JSON: ')})")
    message = first["msg"].removeprefix("Value error, ")
    got = "" if first["type"] == "value_error" else f", not {clipped(repr(first['input']), 60)}"
    return FieldError(field, f"{message[:1].lower()}{message[1:]}{got}{more}")


def clipped(text: str, limit: int = 300) -> str:
    """On one line, and short: a message that quotes a value or a library's error."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
