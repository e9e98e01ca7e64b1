"""Consistency guard: a language model's yes/no and location are checked against the vision expert's
findings. A contradiction is corrected to the grounded answer by default (and reported); with
``mode="judge"`` a capable vision-language model looks again and decides, and both opinions are kept."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .composer import Answer

GUARD_MODES = ("correct", "judge", "off")

# Grid names as a model may write them, two-word cells first so "top left" is not read as "top" + "left".
_CELLS = [
    ("top left", r"(top|upper)[ -]left"),
    ("top right", r"(top|upper)[ -]right"),
    ("bottom left", r"(bottom|lower)[ -]left"),
    ("bottom right", r"(bottom|lower)[ -]right"),
    ("center", r"cent(er|re)|middle"),
    ("top", r"top|upper"),
    ("bottom", r"bottom|lower"),
    ("left", r"left"),
    ("right", r"right"),
]
# A leading yes or no ("No defects." is a statement, not a reply); what it means depends on the question.
_REPLY = re.compile(r"^\W*(yes|no)\b(?! (visible |obvious |apparent )?(anomal|defect|damage|flaw|problem|issue))")
_GOOD = r"(normal|fine|ok|okay|flawless|perfect|good|acceptable|defect[- ]free|usable)"
_NEGATIVE = re.compile(
    r"\bno (visible |obvious |apparent )?(anomal|defect|damage|flaw|problem|issue)|"
    r"\bnot (defective|damaged|anomalous|broken|faulty)|\bwithout (any )?(defect|anomal|flaw|damage)|"
    rf"\bfree (of|from) (any )?(defect|anomal|flaw|damage)|\b(is|looks|appears|seems) (to be )?{_GOOD}\b|"
    r"\b(can|may|should) (be )?(ship|pass|use|accept|approve|release)|\bpasses\b"
)
_POSITIVE = re.compile(
    r"\bthere (is|are) ((?!no\b|not\b|nothing\b)\w+ ){0,3}(anomal|defect|damage|flaw|crack|scratch|dent|hole)|"
    r"\b(is|looks|appears|seems) (to be )?(defective|damaged|anomalous|broken|faulty)|\b(has|shows|contains) (an? |some )?(anomal|defect|flaw|damage)|"
    rf"\bnot (be |look |seem )?{_GOOD}\b|\b(cannot|can't|can not|should not|shouldn't|must not|does not|doesn't) "
    r"(be )?(ship|pass|use|accept|approve|release)|\bfails\b|\b(should|must) be (rejected|scrapped|discarded)"
)


@dataclass
class Claims:
    anomalous: bool | None  # None: the text takes no clear side
    locations: list[str]


@dataclass
class GuardReport:
    consistent: bool
    problems: list[str] = field(default_factory=list)
    corrected: bool = False
    judge: dict | None = None  # with mode "judge": {"decision": "expert"|"model", "reason": …}

    def to_dict(self) -> dict:
        return {
            "consistent": self.consistent,
            "problems": self.problems,
            "corrected": self.corrected,
            "judge": self.judge,
        }


def read_claims(text: str, asks_good: bool = False) -> Claims:
    """What a free-text answer says: defect or not, and which grid cells it names. A leading yes means a
    defect, or, with `asks_good` (the question was "is it good?", "can it ship?"), that there is none."""
    lowered = text.lower()
    reply = _REPLY.search(lowered)
    says_defect = reply is not None and (reply.group(1) == "yes") != asks_good
    negative = bool(_NEGATIVE.search(lowered)) or (reply is not None and not says_defect)
    positive = bool(_POSITIVE.search(lowered)) or says_defect
    anomalous = None if negative == positive else positive
    found, rest = [], lowered
    for name, pattern in _CELLS:
        regex = re.compile(rf"\b({pattern})\b")
        match = regex.search(rest)
        if match:
            found.append((match.start(), name))
            rest = regex.sub(lambda m: " " * len(m.group()), rest)  # same length: later positions stay true
    return Claims(anomalous, [name for _, name in sorted(found)])  # in the order the text names them


def check(model_text: str, grounded: Answer) -> list[str]:
    """Contradictions between a model's answer and the grounded one (empty: consistent), and non-answers to
    what was asked. Only the verdict and the location are checked: they are what the anomaly map decides."""
    claims = read_claims(model_text, asks_good="good" in grounded.intents)
    problems = []
    asks_verdict = bool({"defect", "good", "where", "summary"} & set(grounded.intents))
    if asks_verdict and claims.anomalous is not None and claims.anomalous != grounded.anomalous:
        problems.append(
            "the model says "
            + ("there is a defect" if claims.anomalous else "there is no defect")
            + "; the vision expert found "
            + ("one" if grounded.anomalous else "none")
        )
    if {"defect", "good"} & set(grounded.intents) and claims.anomalous is None:  # asked yes or no, answered neither
        problems.append("the model's answer does not say whether there is a defect")
    if "where" in grounded.intents and grounded.anomalous and not claims.locations and claims.anomalous is not False:
        problems.append("the model's answer does not say where the defect is")
    if grounded.anomalous and claims.locations and claims.anomalous is not False:
        wrong = [cell for cell in claims.locations if not _compatible(cell, grounded.locations)]
        if wrong:
            problems.append(
                f"the model places it at the {', '.join(wrong)}; the vision expert's regions are at the "
                + " and the ".join(grounded.locations)
            )
    return problems


def _compatible(cell: str, expert_cells: list[str]) -> bool:
    """ "left" agrees with "top left" and "bottom left" (a coarser name for the same place)."""
    return any(cell == expert or cell in expert.split() for expert in expert_cells)


JUDGE_PROMPT = (
    "Two inspectors disagree about this product image.\n"
    "Vision expert (anomaly map): {expert}\nAssistant: {model}\nDisagreement: {problems}\n"
    "Look at the image and the anomaly overlay again. Who is right? Reply with EXPERT or ASSISTANT on the "
    "first line, then one sentence why."
)


def parse_judgement(text: str) -> str | None:
    first = text.strip().splitlines()[0].lower() if text.strip() else ""
    if "expert" in first and "assistant" not in first:
        return "expert"
    if "assistant" in first and "expert" not in first:
        return "model"
    return None
