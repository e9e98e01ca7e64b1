"""The grounded answer composer: the default language "backend", with no language model at all.

It recognises what a question asks (is there a defect, is it good, where, how many, how large, how sure,
how it differs from the references, which defect, what normal looks like) and answers from the findings
alone, in AnomalyGPT's words ("Yes, there is an anomaly in the image, at the bottom left of the image."), so
an answer can never contradict the anomaly map. A yes/no follows the question's polarity: "is there a
defect?" and "is it good?" get opposite answers about the same verdict. Deterministic and instant. The
answer to each intent is in `answers`; this module reads the question (its intents, the region it is about, a
false premise) and puts the answers together.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..regions import Region, location_names
from .answers import ANSWERERS, named_places, verdict_clause
from .claim_check import false_premise
from .claims import read_claims
from .findings import Findings

# Intent patterns, matched on the lower-cased question; several may match one, answered in this order.
INTENTS: dict[str, re.Pattern] = {
    name: re.compile(pattern)
    for name, pattern in {
        "defect": r"\b(defect|anomal|flaw|damage|broken|crack|scratch|ok|okay|good|fine|normal|pass|fail|reject|"
        r"accept|problem|wrong|issue|faulty|bad)\w*|^(is|are|does|do|any|has|have|can you see)\b",
        "where": r"\bwhere\b|\blocat|\bposition|\bwhich (part|side|corner|area|region)\b",
        "count": r"\bhow many\b|\bnumber of\b|\bcount\b",
        "size": r"\bhow (big|large|small|wide|long)\b|\bsize\b|\barea\b|\bextent\b|\bdimension",
        "type": r"\b(what|which) (kind|type|sort|class)\b|\bwhich defect\b|"
        r"\bwhat (is|'s) (it|that|this|the (defect|anomaly|problem|flaw))\b|\bclassif|\bcaused?\b",
        "reference": r"\breference|\bcompar|\bdiffer|\bversus\b|\bvs\.?\s|\bgood (one|sample|part)s\b",
        "confidence": r"\bhow (sure|confident|certain)\b|\bconfiden|\bcertain|\bsure\b|\bprobab|\breliab",
        "criteria": r"\bshould\b.*\blook|\bcriteria\b|\bwhat (does|do) an? (good|normal)\b|\bwhat is normal\b",
        "why": r"\bwhy\b|\bevidence\b|\bwhat makes you\b|\bhow do you know\b|\breason|\bbased on\b|\bjustify",
        "next": r"\bwhat (should|do|can|must|shall) (i|we) do\b|\bnext step|\bwhat now\b|\brecommend|\bwhat to do\b|"
        r"\bdo next\b|\baction\b",
        "summary": r"\bdescribe|\bsummar|\bexplain|\breport|\bdetails?\b|\btell me\b",
        "help": r"\bhelp\b|\bwhat can (i|you)\b",
    }.items()
}
# Yes/no polarity: the first verdict word a question uses says whether "yes" means good ("is it OK?", "can it
# ship?", "is it free of defects?") or defective ("is there a defect?", "should it be rejected?").
_POLARITY = re.compile(
    r"(?P<good>\b(good|ok|okay|accept(able|ed)?|fine|normal|flawless|perfect|intact|usable|alright|all right|"
    r"in spec|within spec|conform\w*|defect[- ]?free|free (of|from)|without (any )?(defect|anomal|flaw)|ship\w*|"
    r"pass(es|ed)?|approv\w*|releas\w*|use (it|this|that|them)|be used)\b)|"
    r"(?P<bad>\b(defect|anomal|flaw|damage|broken|crack|scratch|dent|fail|reject|scrap|discard|problem|wrong|"
    r"issue|faulty|bad)\w*)"
)
# A yes/no question about the part ("can you tell me …" is a request, not one)
YES_NO = re.compile(r"^((is|are|does|do|did|any|has|have|was|were)|(can|could|should|would|will|may|must)(?! you\b))\b")
# Regions are listed strongest first (highest peak): the strongest region is the true defect more often than
# the largest one, which is often a broad, faint false area (QA benchmark, location: 0.504 → 0.537; fused
# expert 0.512 → 0.560). Ordinals count in that order; size words pick by area.
ORDINALS = {"first": 0, "main": 0, "strongest": 0, "second": 1, "third": 2, "fourth": 3, "fifth": 4, "last": -1}
SIZE_ORDINALS = {"largest": 0, "biggest": 0, "smallest": -1}


@dataclass
class Answer:
    """An answer and what it claims, so a guard can check another backend's answer against it."""

    text: str
    intents: list[str]
    anomalous: bool  # the verdict the answer states
    locations: list[str] = field(default_factory=list)  # grid cells it names as defective
    focus: int | None = None  # index of the region the answer is about (for follow-ups like "how big is it?")
    # what the question wrongly took for granted (claim_check.false_premise)
    premise: list[str] = field(default_factory=list)


def classify(question: str) -> list[str]:
    """The intents a question asks about, in answering order (empty when none is recognised)."""
    text = question.lower().strip()
    found = [name for name, pattern in INTENTS.items() if pattern.search(text)]
    first = _POLARITY.search(text)
    asks_good = bool(first and first.group("good"))  # a yes means the part is good
    if "defect" not in found and YES_NO.search(text) and asks_good:
        found.insert(0, "defect")  # "can it ship?", "should we use it?": a verdict asked in other words
    if "defect" in found and len(found) > 1 and not YES_NO.search(text):
        found.remove("defect")  # "how large is the defect?" asks for the size, not the verdict
    if "defect" in found and asks_good:
        found[found.index("defect")] = "good"  # "is it OK?": yes means no defect
    if "type" in found and "where" in found:
        found.remove("type")  # "what is the location …" style phrasings
    if {"why", "next"} & set(found) and "summary" in found:
        found.remove("summary")  # "explain why", "tell me what to do"
    return found


def compose(question: str, findings: Findings, focus: int | None = None, previous: list[str] | None = None) -> Answer:
    """Answer a question from the findings. In a conversation, `focus` is the region the last turn was
    about and `previous` its intents: a bare follow-up ("and the other one?") asks the same again."""
    intents = classify(question)
    if not intents:
        words = "|".join(ORDINALS | SIZE_ORDINALS)
        follow_up = previous and re.search(rf"\b({words}|other|next|another|it|that|this|one)\b", question.lower())
        intents = list(previous) if previous and follow_up else ["summary"]
    focus = _focus(question, findings.regions, focus)
    parts = [ANSWERERS[intent](findings, focus) for intent in intents]
    premise = false_premise(question, findings)
    text = " ".join(dict.fromkeys(p for p in parts if p))  # keep order, drop repeats
    if premise and not rejects_premise(text, premise, findings):
        text = correct_premise(premise, findings) + " " + text
    return Answer(
        text=text,
        intents=intents,
        anomalous=findings.anomalous,
        locations=_named_locations(findings),
        focus=focus,
        premise=premise,
    )


def rejects_premise(text: str, premise: list[str], f: Findings) -> bool:
    """Whether an answer already denies a false premise: no defect at all, or none at each place assumed."""
    claims = read_claims(text, reply_is_verdict=False)
    if not f.anomalous:
        return any(c.kind == "verdict" and c.value is False for c in claims.items)
    absent = {str(c.value) for c in claims.items if c.kind == "absent"}
    return set(premise) <= absent


def correct_premise(premise: list[str], f: Findings) -> str:
    """The sentence that denies a false premise ("There is no anomaly at the left of the image.")."""
    if not f.anomalous:
        return "There is no such defect: " + verdict_clause(f) + "."
    places = " or ".join(f"the {cell}" for cell in premise)
    return f"There is no anomaly at {places} of the image; the anomaly is at {named_places(f.regions)}."


def _focus(question: str, regions: tuple[Region, ...], focus: int | None) -> int | None:
    """Which region a question is about: named by ordinal ("the second one", "the largest"), "the other one"
    after a region was discussed, else the previous focus ("it"), else the strongest."""
    if not regions:
        return None
    listed = sorted(range(len(regions)), key=lambda i: -regions[i].peak)
    by_size = sorted(range(len(regions)), key=lambda i: -regions[i].area_fraction)
    words = re.findall(r"[a-z]+", question.lower())
    for word in words:
        for ordinals, order in ((ORDINALS, listed), (SIZE_ORDINALS, by_size)):
            if word in ordinals:
                rank = ordinals[word]
                return order[rank] if -len(order) <= rank < len(order) else order[-1]
    if focus is not None and ({"other", "next", "another"} & set(words)):
        position = listed.index(focus) if focus in listed else -1
        return listed[(position + 1) % len(listed)]
    return focus if focus is not None and focus < len(regions) else listed[0]


def _named_locations(findings: Findings) -> list[str]:
    """The grid cells an answer may name as defective: the regions', strongest first."""
    return location_names(findings.regions) if findings.anomalous else []
