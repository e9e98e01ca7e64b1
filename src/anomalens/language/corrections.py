"""A person correcting an inspection in the chat: "this one is fine", "false alarm", "there is a crack at the top
left", "it's not a scratch, it's a crack". Read only from plain statements: a question, a hedge ("maybe", "might",
"not sure") or a sentence that says nothing clear is no correction, so a chat that only asks changes nothing."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from .claim_words import ABSENT, CELLS, DEFECT_NOUNS, TYPE_WORDS
from .claims import _cells, _expanded, split_sentences

# (row, column) of each grid cell, in thirds of the image
GRID = {
    "top left": (0, 0), "top": (0, 1), "top right": (0, 2),
    "left": (1, 0), "center": (1, 1), "right": (1, 2),
    "bottom left": (2, 0), "bottom": (2, 1), "bottom right": (2, 2),
}  # fmt: skip
assert set(GRID) == {name for name, _ in CELLS}
UNCLEAR = "unclear"  # the verdict of a sentence that says both normal and a defect: too unclear to act on

_QUESTION = re.compile(
    r"^\W*(is|are|am|was|were|does|do|did|can|could|will|would|shall|should|may|must|has|have|had|any|"
    r"where|what|which|who|whose|when|how|why)\b"
)
# a hedge, a condition or a doubt: the person is not telling, so nothing is taught
_HEDGE = re.compile(
    r"\b(maybe|perhaps|might|may|could|possibly|probably|likely|unlikely|if|whether|unless|guess|suppose|wonder|"
    r"think|believe|suspect|assume|seems?|appears?|unsure|uncertain|not (really |quite |entirely |completely )?"
    r"(sure|certain|know))\b"
)
# a message that tells the assistant what to say or do is an instruction (or an injection), never a correction
_INSTRUCTION = re.compile(
    r"\b(ignore|disregard|forget|reply|respond|answer|say|write|repeat|pretend|act as|output|print|tell (me|us)|"
    r"translate|explain|describe|list)\b"
)
_SUBJECT = r"\b(it|this|this one|that one|(the|this|that) (part|product|piece|item|sample|image|picture|photo|one))"
GOOD = r"(fine|ok|okay|normal|good|acceptable|flawless|perfect|defect[- ]free|alright|all right|clean)"
_BAD = r"(defective|damaged|broken|faulty|bad|anomalous|not " + GOOD + ")"
_DEFECT = r"(defects?|anomal(y|ies)|flaws?|faults?|damage)"
# "that's fine" and "ok" acknowledge an answer: only a named subject is said to be fine
_NORMAL = re.compile(
    rf"{_SUBJECT} (is|looks) (really |perfectly |totally |completely |actually |just |all )?{GOOD}\b|"
    rf"\b(is|are) not (a |an |any )?(real |actual |true )?{_DEFECT}\b|\bnot (defective|damaged|broken|faulty)\b|"
    rf"\bthere (is|are) no {_DEFECT}|^\W*no {_DEFECT}\W*$|\bnothing (is )?wrong\b|\bfalse (alarm|positive|call)s?\b"
)
_SIZE = r"(?:small|large|big|tiny|deep|long|short|clear|visible|fine)"  # "a deep crack at the top"
_DEFECTIVE = re.compile(
    rf"{_SUBJECT} (is|looks) {_BAD}\b|\b(is|are) (a |an |some )?(real |actual |clear |small |large )?{_DEFECT}\b|"
    r"\byou (missed|overlooked|did not (see|catch|find)|failed to (see|spot|find))\b|\bfalse negatives?\b"
)
_PLACED = re.compile(rf"\b({DEFECT_NOUNS})\b|\b(it|this|that)( one)? is (\w+ )?(at|on|in|near)\b|\bmissed\b")


@dataclass(frozen=True)
class ChatCorrection:
    """What a person says an image is: "normal", or "defective" with where (a 3×3 grid cell) and what type, when
    said. A place or a type is said of a defect, so it comes with the verdict "defective"."""

    verdict: str
    cell: str | None = None
    defect_type: str | None = None

    def box(self, width: int, height: int) -> tuple[int, int, int, int] | None:
        """The cell's box (x0, y0, x1, y1; x1 and y1 excluded) in an image of that size (None: no place said)."""
        if self.cell is None:
            return None
        row, column = GRID[self.cell]
        return column * width // 3, row * height // 3, (column + 1) * width // 3, (row + 1) * height // 3

    def to_dict(self) -> dict:
        return {"verdict": self.verdict, "cell": self.cell, "defect_type": self.defect_type}


def read_correction(text: str, known_types: Iterable[str] = ()) -> ChatCorrection | None:
    """The correction a chat message makes (None: it makes none, or contradicts itself). `known_types`: the
    product's defect type names, read as types beside the common ones. Over several sentences the last one to say
    a place or a type gives it."""
    if text.strip().endswith("?") or _INSTRUCTION.search(text.lower()):
        return None
    names = {n: n for n in TYPE_WORDS} | {n.lower().strip(): n for n in known_types if n.strip()}
    said = [s for s in (_statement(_expanded(s.lower()), names) for s in split_sentences(text)) if s]
    verdicts = {verdict for verdict, _, _ in said}
    if len(verdicts) != 1 or UNCLEAR in verdicts:
        return None  # nothing said, or normal and a defect both said
    cells = [cell for _, cell, _ in said if cell]
    types = [kind for _, _, kind in said if kind]
    return ChatCorrection(verdicts.pop(), cells[-1] if cells else None, types[-1] if types else None)


def _statement(sentence: str, names: dict[str, str]) -> tuple[str, str | None, str | None] | None:
    """(verdict, cell, type) one sentence says (None: nothing; the verdict UNCLEAR: normal and a defect)."""
    if sentence.endswith("?") or _QUESTION.search(sentence) or _HEDGE.search(sentence):
        return None
    sentence = ABSENT.sub(_blank, sentence)  # "no crack at the left" says where it is not
    normal = bool(_NORMAL.search(sentence))
    things = "|".join(re.escape(name).replace("_", "[ _-]") for name in sorted(names, key=len, reverse=True))
    negated = rf"\b(not|no|without)\s+([\w-]+\s+){{0,3}}?({things}|{_DEFECT})(e?s)?\b"
    sentence = re.sub(negated, _blank, sentence)  # "not a scratch, a crack": only the crack is said
    typed = _typed(sentence, things)
    kind = (names.get(re.sub(r"[ -]", "_", typed)) or names.get(typed)) if typed else None
    cells = _cells(sentence) if kind or _PLACED.search(sentence) else []
    defective = bool(_DEFECTIVE.search(sentence) or kind or cells)
    if not (normal or defective):
        return None
    verdict = UNCLEAR if normal and defective else "normal" if normal else "defective"
    return verdict, cells[0][1] if cells else None, kind


def _typed(sentence: str, things: str) -> str | None:
    """The last defect type the sentence says the image has ("it is a crack", "you missed a dent", "the crack is")."""
    asserted = re.compile(
        r"\b(?:is|are|was|were|has|have|had|with|missed|found|but)\s+(?:(?:a|an|some|one|the)\s+)?"
        rf"(?:[\w-]+\s+){{0,2}}?({things})(?:e?s)?\b|\bthe ({things}) (?:is|are)\b|"
        rf"^\W*(?:(?:a|an|some)\s+)?(?:{_SIZE}\s+)?({things})(?:e?s)?\b"
    )
    found = [m.group(1) or m.group(2) or m.group(3) for m in asserted.finditer(sentence)]
    return found[-1] if found else None


def _blank(match: re.Match) -> str:
    return " " * len(match.group())  # same length: the positions of the rest stay true


def confirmation(correction: ChatCorrection) -> str:
    """The correction said back, so the person sees what was understood."""
    if correction.verdict == "normal":
        return "Noted: you say this image is normal, with no defect."
    if not (correction.defect_type or correction.cell):
        return "Noted: you say this image is defective."
    what = correction.defect_type.replace("_", " ") if correction.defect_type else "defect"
    where = f" at the {correction.cell}" if correction.cell else ""
    return f"Noted: you say there is {'an' if what[0] in 'aeiou' else 'a'} {what}{where}."
