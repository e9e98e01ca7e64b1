"""What a free-text answer claims, sentence by sentence and typed — the verdict, a yes/no reply, where the
defect is (or is not), how large, how many, how sure, which defect type, how it compares with the references.
The guard reads every answer with it (and checks each claim with `claim_check`), the composer reads questions
with it, and the QA bench reads options with it; the series answers read claims without the image findings."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from .claim_words import (
    ABSENT,
    AREA_CONTEXT,
    BARE_CHANCE,
    BOX,
    CANNOT_NAME,
    CELLS,
    CERTAIN,
    CONFIDENCE_CONTEXT,
    COUNT,
    DEFECT_CHANCE,
    DEFECT_NOUNS,
    DESCRIBED,
    DIFFERS,
    LEVEL,
    MATCHES,
    NEGATIVE,
    NUMBERS,
    OF_THE_PART,
    PEAK,
    PERCENT,
    PHYSICAL,
    POSITIVE,
    REFERENCE_COUNT,
    REFERENCES,
    REPLY,
    THRESHOLD,
    TYPE_ASSERTED,
    TYPE_WORDS,
    UNSURE,
)


@dataclass(frozen=True)
class Claim:
    """One thing an answer states. `value`: verdict/reply/reference/threshold → True for "defective" (or "differs
    from the references", "above the threshold"); location/absent/peak →
    a grid cell; area → (fraction, "about"|"less than"); box → (width, height); physical → the words; count → n;
    confidence → (number or None, "high"|"moderate"|"low"|None, whether it is the chance of a defect);
    type → the name."""

    kind: str
    value: object
    sentence: int


@dataclass
class Claims:
    sentences: list[str]
    items: list[Claim] = field(default_factory=list)

    @property
    def anomalous(self) -> bool | None:
        """The side the whole answer takes (None: none, or both)."""
        sides = {c.value for c in self.items if c.kind in ("verdict", "reply")}
        return sides.pop() if len(sides) == 1 else None  # type: ignore[return-value]

    @property
    def locations(self) -> list[str]:
        """Cells named as defective, in the order the text names them."""
        return [str(c.value) for c in self.items if c.kind == "location"]

    def kinds(self) -> set[str]:
        return {c.kind for c in self.items}


def split_sentences(text: str) -> list[str]:
    """Sentences of an answer; decimals ("1.4 %") and ranges stay whole."""
    return [s.strip() for s in re.split(r"(?<=[.!?])\s+(?=\S)", text.strip()) if s.strip()]


def read_claims(
    text: str, asks_good: bool = False, reply_is_verdict: bool = True, type_names: Iterable[str] = ()
) -> Claims:
    """The claims of an answer. A leading yes means a defect, or, with `asks_good` (the question was "is it
    good?", "can it ship?"), that there is none; with `reply_is_verdict` False ("are you sure?") it is no verdict.
    Defect types are recognised among `type_names` (the product's own) and common ones."""
    names = sorted({n.lower() for n in type_names} | set(TYPE_WORDS), key=len, reverse=True)
    types = re.compile(TYPE_ASSERTED + r"(?:\w+ ){0,2}?(" + "|".join(map(re.escape, names)) + r")(e?s)?\b")
    claims = Claims(split_sentences(text))
    for index, sentence in enumerate(claims.sentences):
        polarity = asks_good if index == 0 and reply_is_verdict else None
        claims.items += _sentence_claims(_expanded(sentence.lower()), index, polarity, types)
    return claims


_CONTRACTIONS = [
    (r"[’‘]", "'"),
    (r"\b(it|there|that|what|this|here)'s\b", r"\1 is"),
    (r"\bcan't\b", "cannot"),
    (r"\bwon't\b", "will not"),
    (r"\b(\w+)n't\b", r"\1 not"),
    (r"\b(\w+)'re\b", r"\1 are"),
]


def _expanded(sentence: str) -> str:
    """ "it's", "doesn't", "there's" written out, so one pattern reads every spelling."""
    for pattern, replacement in _CONTRACTIONS:
        sentence = re.sub(pattern, replacement, sentence)
    return sentence


def _sentence_claims(sentence: str, index: int, reply_polarity: bool | None, types: re.Pattern) -> list[Claim]:
    found: list[tuple[int, Claim]] = []  # (position, claim): claims come out in the order the text makes them

    def add(position: int, kind: str, value: object) -> None:
        found.append((position, Claim(kind, value, index)))

    rest = _absent(sentence, add)
    _verdicts(rest, reply_polarity, add)
    _quantities(sentence, add)
    _counts(rest, add)
    _thresholds(sentence, add)
    _certainty(sentence, add)
    _comparison(sentence, add)
    if not CANNOT_NAME.search(sentence):
        for match in types.finditer(sentence):
            add(match.start(), "type", match.group(3))
    return [claim for _, claim in sorted(found, key=lambda item: item[0])]


def _absent(sentence: str, add) -> str:
    """Places named as free of defects; the sentence comes back with them blanked, as "no anomaly at the left"
    is no verdict (same length: later positions stay true)."""
    rest = sentence
    for match in ABSENT.finditer(sentence):
        add(match.start(), "absent", _cell(match.group("cell") or match.group("other")))
        rest = rest[: match.start()] + " " * (match.end() - match.start()) + rest[match.end() :]
    return rest


def _verdicts(rest: str, reply_polarity: bool | None, add) -> None:
    """A yes/no reply, the verdicts, the places named as defective (or as the most unusual spot), and the verdict
    a placed or described defect implies."""
    reply = REPLY.search(rest) if reply_polarity is not None else None
    if reply:
        add(0, "reply", (reply.group(1) == "yes") != reply_polarity)
    negative, positive = NEGATIVE.search(rest), POSITIVE.search(rest)
    if positive:
        add(positive.start(), "verdict", True)
    if negative:
        add(negative.start(), "verdict", False)
    peak = bool(PEAK.search(rest))
    cells = _cells(rest)
    for position, cell in cells:
        add(position, "peak" if peak else "location", cell)
    placed = cells and re.search(rf"\b({DEFECT_NOUNS})\b", rest)
    described = DESCRIBED.search(rest)  # "the crack is 1.5 long": its subject is a defect, so there is one
    if (placed or described) and not (peak or positive or negative):
        add(cells[0][0] if placed else described.start(), "verdict", True)  # type: ignore[union-attr]


def _counts(rest: str, add) -> None:
    for match in COUNT.finditer(rest):
        word = match.group(1)
        add(match.start(), "count", NUMBERS[word] if word in NUMBERS else int(word))


def _thresholds(sentence: str, add) -> None:
    for match in THRESHOLD.finditer(sentence):
        add(
            match.start(),
            "threshold",
            match.group(1) in ("above", "over", "exceed", "exceeds", "higher than", "beyond"),
        )


# a place word names a place after a preposition or in a list of places ("at the top and the left"), or before
# a place noun ("the left side"); "that is right", "lower than the threshold", "nothing left" name none
_BEFORE_PLACE = re.compile(r"\b(at|on|in|near|to|towards?|along|across|from|and|or)\s+((the|its|this)\s+)?(very\s+)?$")
_PLACE_NOUN = re.compile(r"\s*(corner|side|edge|part|area|region|half|quadrant|portion|section|of the)\b")


def _cells(text: str) -> list[tuple[int, str]]:
    found = []
    for name, pattern in CELLS:
        regex = re.compile(rf"\b({pattern})\b")
        for match in regex.finditer(text):
            before, after = text[max(0, match.start() - 24) : match.start()], text[match.end() :]
            if _BEFORE_PLACE.search(before) or _PLACE_NOUN.match(after) or len(text.split()) <= 3:
                found.append((match.start(), name))
        text = regex.sub(lambda m: " " * len(m.group()), text)  # same length: later positions stay true
    return sorted(found)


def _cell(words: str) -> str:
    return _cells(words)[0][1]


def _quantities(sentence: str, add) -> None:
    """Percentages (an area or a confidence, by their sentence), boxes in pixels, physical sizes."""
    about_confidence = bool(CONFIDENCE_CONTEXT.search(sentence))
    for match in PERCENT.finditer(sentence):
        after = sentence[match.end() : match.end() + 40]
        value = float(match.group(2)) / 100
        of_the_part = re.match(OF_THE_PART, after)  # "100 % of the image is defective": an area, beside a chance
        if not of_the_part and (
            about_confidence or re.match(r" ?(sure|certain|confident|good|defective|normal|ok|fine)\b", after)
        ):
            if "not " + match.group(0).strip() not in sentence:  # "not 100 % sure" claims nothing
                add(match.start(), "confidence", (value, None, bool(DEFECT_CHANCE.search(sentence))))
        elif of_the_part or AREA_CONTEXT.search(sentence):
            bound = "less than" if (match.group(1) or "").strip() in ("less than", "under", "below") else "about"
            add(match.start(), "area", (value, bound))
    for match in BARE_CHANCE.finditer(sentence):
        value = float(match.group(3))
        if value <= 100:
            add(
                match.start(3),
                "confidence",
                (value if value <= 1 else value / 100, None, bool(DEFECT_CHANCE.search(sentence))),
            )
    for match in REFERENCE_COUNT.finditer(sentence):
        add(match.start(), "references", int(match.group(1)))
    for match in BOX.finditer(sentence):
        add(match.start(), "box", (int(match.group(1)), int(match.group(2))))
    for match in PHYSICAL.finditer(sentence):
        add(match.start(), "physical", match.group(0))


def _certainty(sentence: str, add) -> None:
    level = LEVEL.search(sentence)
    if level:
        add(level.start(), "confidence", (None, level.group(1), False))
    elif unsure := UNSURE.search(sentence):
        if not re.search(r"\d ?%", unsure.group(0)):
            add(unsure.start(), "confidence", (None, "low", False))
    elif certain := CERTAIN.search(sentence):
        add(certain.start(), "confidence", (None, "high", False))


def _comparison(sentence: str, add) -> None:
    """A comparison with the references (True: it differs from them)."""
    if REFERENCES.search(sentence):
        differs, matches = DIFFERS.search(sentence), MATCHES.search(sentence)
        if differs or matches:
            add((differs or matches).start(), "reference", bool(differs))  # type: ignore[union-attr]
