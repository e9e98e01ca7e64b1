"""The grounded answer composer: the default language "backend", with no language model at all.

It recognises what a question asks (is there a defect, is it good, where, how many, how large, how sure,
how it differs from the references, which defect, what normal looks like) and answers from the findings
alone, in AnomalyGPT's words ("Yes, there is an anomaly in the image, at the bottom left of the image."), so
an answer can never contradict the anomaly map. A yes/no follows the question's polarity: "is there a
defect?" and "is it good?" get opposite answers about the same verdict. Deterministic and instant.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..regions import Region, location_names
from ..result import UNCERTAIN, uncertain, uncertain_note
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
# a verdict whose defect probability lies in the UNCERTAIN band (confidence at most this) is flagged for a
# second look; above it, confidence is moderate, then high
LOW_CONFIDENCE = UNCERTAIN[1]
HIGH_CONFIDENCE = 0.90


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
        return "There is no such defect: " + _verdict(f) + "."
    places = " or ".join(f"the {cell}" for cell in premise)
    return f"There is no anomaly at {places} of the image; the anomaly is at {_places(f.regions)}."


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


def _places(regions) -> str:
    """ "the bottom left", "the bottom left and the center", … (strongest region first)."""
    names = [f"the {name}" for name in location_names(regions)]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _hedge(findings: Findings) -> str:
    """ " The verdict is uncertain: 0.64 — a second look is advised …" for an uncertain verdict, else ""."""
    if uncertain(findings.probability):
        return (
            f" The verdict is {uncertain_note(findings.probability)}: the image is close to the decision "
            "threshold, so a person should check it."
        )
    return ""


def _verdict(f: Findings) -> str:
    """ "there is an anomaly in the image, at the bottom left of the image", or "there is no anomaly …"."""
    where = f" in the {f.class_name}" if f.class_name else " in the image"
    if not f.anomalous:
        return f"there is no anomaly{where}"
    some = "are anomalies" if len(f.regions) > 1 else "is an anomaly"
    return f"there {some}{where}, at {_places(f.regions)} of the image"


def answer_defect(f: Findings, focus: int | None) -> str:
    return ("Yes, " if f.anomalous else "No, ") + _verdict(f) + "." + _hedge(f)


def answer_good(f: Findings, focus: int | None) -> str:
    """The same verdict for a question whose yes means good ("is it OK?", "can it ship?")."""
    reply = f"No, the {f.subject} is defective: " if f.anomalous else f"Yes, the {f.subject} looks normal: "
    return reply + _verdict(f) + "." + _hedge(f)


def answer_where(f: Findings, focus: int | None) -> str:
    if not f.anomalous:
        return (
            f"There is no anomaly to locate. The most unusual spot is at the {f.peak_location} of the image, "
            "but it stays within what normal images show."
        )
    assert focus is not None  # an anomalous finding has regions, so a focus
    region = f.regions[focus]
    detail = (
        f"The anomaly is at the {region.location} of the image, around pixel "
        f"({region.centroid[0]:.0f}, {region.centroid[1]:.0f}), inside the box x {region.box[0]}–{region.box[2]}, "
        f"y {region.box[1]}–{region.box[3]}."
    )
    if len(f.regions) > 1:
        others = [r for i, r in enumerate(f.regions) if i != focus]
        detail += f" There {'is' if len(others) == 1 else 'are'} also {_count_words(len(others), 'region')} at {_places(others)}."
    return detail


def answer_count(f: Findings, focus: int | None) -> str:
    if not f.anomalous:
        return "There are no anomalous regions."
    n = len(f.regions)
    return f"There {'is' if n == 1 else 'are'} {_count_words(n, 'anomalous region')}, at {_places(f.regions)} of the image."


def answer_size(f: Findings, focus: int | None) -> str:
    if not f.anomalous:
        return "There is no anomaly, so nothing to measure."
    assert focus is not None  # an anomalous finding has regions, so a focus
    region = f.regions[focus]
    width, height = region.box[2] - region.box[0], region.box[3] - region.box[1]
    text = (
        f"The anomaly at the {region.location} covers about {_percent(region.area_fraction)} of the image "
        f"(a box of {width} × {height} pixels)."
    )
    if len(f.regions) > 1:
        total = sum(r.area_fraction for r in f.regions)
        text += f" All {len(f.regions)} regions together cover {_percent(total)}."
    return text


def answer_confidence(f: Findings, focus: int | None) -> str:
    level = "low" if uncertain(f.probability) else "moderate" if f.confidence < HIGH_CONFIDENCE else "high"
    verdict = "defective" if f.anomalous else "normal"
    text = f"My confidence that the {f.subject} is {verdict} is {level}: {f.confidence:.0%}."
    if f.n_normal and f.scale == f.scale:  # a calibrated decision: explain it in units of normal spread
        sigmas = (f.score - f.threshold) / f.scale
        side = "above" if sigmas >= 0 else "below"
        text += (
            f" Its anomaly score {f.score:.3g} is {abs(sigmas):.1f} normal spreads {side} the threshold "
            f"{f.threshold:.3g}, which {f.n_normal} normal image{'s' * (f.n_normal != 1)} set."
        )
    if uncertain(f.probability):
        text += f" The verdict is {uncertain_note(f.probability)}."
    return text


def answer_reference(f: Findings, focus: int | None) -> str:
    if not f.n_normal:
        return (
            "I had no normal reference images for this product: the verdict is zero-shot, so I cannot "
            "compare it with a known-good part."
        )
    refs = f"the {f.n_normal} normal reference image{'s' * (f.n_normal != 1)}"
    if f.references:
        shown = ", ".join(f.references[:3]) + (", …" if len(f.references) > 3 else "")
        refs += f" ({shown})"
    if not f.anomalous:
        return f"It matches {refs}: every part of it has a close counterpart in them."
    assert focus is not None  # an anomalous finding has regions, so a focus
    region = f.regions[focus]
    text = f"Compared with {refs}, the area at the {region.location} has no close counterpart in any of them"
    if f.normal_peak is not None:
        text += (
            f": its local anomaly score reaches {region.peak:.3g}, where normal images stay below {f.normal_peak:.3g}"
        )
    return text + ". The rest of the image matches them."


def answer_type(f: Findings, focus: int | None) -> str:
    if not f.anomalous:
        return "There is no defect, so there is no defect type to name."
    if f.defect_type:
        text = f"It most likely is a {f.defect_type.name} (similarity {f.defect_type.similarity:.2f} to known examples)"
        if f.defect_type.runner_up:
            text += f"; the next closest type is {f.defect_type.runner_up}"
        return text + "."
    text = "I cannot name the defect type: the anomaly map shows where the image departs from normal, not what kind of defect it is."
    if f.criteria and f.criteria.defects:
        known = ", ".join(d.name for d in f.criteria.defects)
        text += f" The known defect types for the {f.subject} are: {known}."
    return text


def answer_criteria(f: Findings, focus: int | None) -> str:
    if f.criteria and f.criteria.description:
        return f"A normal {f.subject} looks like this: {f.criteria.description}"
    if f.n_normal:
        return f"I learned what a normal {f.subject} looks like from {f.n_normal} normal image{'s' * (f.n_normal != 1)}; no written criteria were given."
    return f"No normality criteria were given for the {f.subject}."


def answer_summary(f: Findings, focus: int | None) -> str:
    parts = [answer_defect(f, focus)]
    if f.anomalous:
        parts.append(answer_size(f, focus))
        if f.defect_type:
            parts.append(answer_type(f, focus))
    parts.append(answer_confidence(f, focus))
    return " ".join(parts)


def answer_why(f: Findings, focus: int | None) -> str:
    """The evidence behind the verdict: the score against the threshold, the region, the references."""
    side = "above" if f.anomalous else "below"
    text = f"{'It is flagged' if f.anomalous else 'It passes'} because its anomaly score {f.score:.3g} is {side} the threshold {f.threshold:.3g}"
    if f.n_normal and f.scale == f.scale:
        sigmas = abs(f.score - f.threshold) / f.scale
        text += (
            f", which {f.n_normal} normal image{'s' * (f.n_normal != 1)} set ({sigmas:.1f} normal spreads {side} it)"
        )
    text += "."
    if f.anomalous:
        assert focus is not None  # an anomalous finding has regions, so a focus
        region = f.regions[focus]
        text += (
            f" The strongest departure from normal is at the {region.location}: it covers about "
            f"{_percent(region.area_fraction)} of the image and its local score reaches {region.peak:.3g}"
        )
        text += f", where normal images stay below {f.normal_peak:.3g}." if f.normal_peak is not None else "."
    else:
        text += f" Even the most unusual spot, at the {f.peak_location}, stays within what normal images show."
    if f.nearest_reference:
        text += f" The closest normal reference is {f.nearest_reference}" + (
            ", and it has nothing like that area." if f.anomalous else "."
        )
    return text + _hedge(f)


def answer_next(f: Findings, focus: int | None) -> str:
    """What a quality engineer would do with the verdict."""
    if uncertain(f.probability):
        return (
            f"Have a person check the {f.subject}: the verdict ({'defective' if f.anomalous else 'normal'}, "
            f"{f.confidence:.0%} confidence) is close to the decision threshold."
            + (f" Look at the {_places(f.regions)} first." if f.anomalous else "")
        )
    if f.anomalous:
        return (
            f"The {f.subject} should be set aside for rework or scrap; look at {_places(f.regions)} of the image "
            "first, and if that area is an acceptable feature, add images like it to the normal references."
        )
    return f"The {f.subject} can be released: there is no anomaly in it."


def answer_help(f: Findings, focus: int | None) -> str:
    return (
        "You can ask: is there a defect? where is it? how many are there? how large is it? how sure are you? "
        "how does it differ from the references? which defect is it? why? what should I do next? "
        "what should a normal part look like?"
    )


ANSWERERS = {
    "help": answer_help,
    "defect": answer_defect,
    "good": answer_good,
    "where": answer_where,
    "count": answer_count,
    "size": answer_size,
    "confidence": answer_confidence,
    "reference": answer_reference,
    "type": answer_type,
    "criteria": answer_criteria,
    "why": answer_why,
    "next": answer_next,
    "summary": answer_summary,
}


def _count_words(n: int, noun: str) -> str:
    words = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five"}
    return f"{words.get(n, str(n))} {noun}{'s' * (n != 1)}"


def _percent(fraction: float) -> str:
    return f"{fraction:.1%}" if fraction >= 0.001 else "less than 0.1 %"
