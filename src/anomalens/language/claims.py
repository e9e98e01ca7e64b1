"""What a free-text answer claims, sentence by sentence and typed — the verdict, a yes/no reply, where the
defect is (or is not), how large, how many, how sure, which defect type, how it compares with the references —
and a check of each claim against the findings with a stated tolerance. The guard reads every answer with it,
the composer uses it to spot a question's false premise, and the QA bench reads options with it."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the image findings import torch (defect types); the series answers read claims without them
    from .findings import Findings

# Tolerances a claim is checked with: an area may be off by half a percentage point or half its size, a box
# side by 2 pixels, a stated confidence by 10 points; certainty words follow the composer's levels.
AREA_ABSOLUTE, AREA_RELATIVE = 0.005, 0.5
BOX_PIXELS = 2
CONFIDENCE_POINTS = 0.10
HIGH, MODERATE = 0.90, 0.70

# Grid names as a model may write them, two-word cells first so "top left" is not read as "top" + "left".
CELLS = [
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
_CELL_WORDS = "|".join(pattern for _, pattern in CELLS)
DEFECT_NOUNS = (
    r"anomal\w*|defect\w*|damage\w*|flaw\w*|crack\w*|scratch\w*|dents?|holes?|stains?|spots?|marks?|chips?|burrs?|"
    r"breaks?|fray\w*|blowholes?|pores?|porosity|spatter|corrosion|rust|cuts?|fractures?|problems?|issues?"
)
# Defect types a model may name without being told (the product's own types come from its criteria).
TYPE_WORDS = (
    "scratch",
    "crack",
    "dent",
    "hole",
    "stain",
    "contamination",
    "burr",
    "chip",
    "break",
    "fray",
    "blowhole",
    "pore",
    "porosity",
    "spatter",
    "corrosion",
    "rust",
    "deformation",
    "bend",
    "fracture",
    "cut",
    "discoloration",
)

# A leading yes or no ("No defects." is a statement, not a reply); what it means depends on the question.
_REPLY = re.compile(r"^\W*(yes|no)\b(?! (visible |obvious |apparent )?(anomal|defect|damage|flaw|problem|issue))")
_GOOD = r"(normal|fine|ok|okay|flawless|perfect|good|acceptable|defect[- ]free|usable)"
_NEGATIVE = re.compile(
    r"\bno (visible |obvious |apparent |real )?(anomal|defect|damage|flaw|problem|issue|distortion|irregularit)|"
    r"\b(does|do) not (have|show|contain) (any |a )?(visible )?(anomal|defect|damage|flaw|distortion|irregularit)|"
    rf"\b(is|looks like) an? {_GOOD} (part|product|object|one|sample|piece|item|image)\b|"
    r"\bnot (defective|damaged|anomalous|broken|faulty)|\bwithout (any )?(defect|anomal|flaw|damage)|"
    rf"\bfree (of|from) (any )?(defect|anomal|flaw|damage)|\b(is|looks|appears|seems) (to be )?(\d+ ?% )?{_GOOD}\b|"
    r"\b(is|are) not (a |an )?(real |actual )?(defect|anomal|flaw|problem)|"
    r"\b(can|may|should) (be )?(ship|pass|use|accept|approve|release)|\bpasses\b|"
    r"\b(does|did|will|would) not fail\b"
)
_POSITIVE = re.compile(
    r"\bthere (is|are|was|were) ((?!no\b|not\b|nothing\b)\w+ ){0,3}(anomal|defect|damage|flaw|crack|scratch|dent|hole)|"
    r"\b(is|looks|appears|seems) (to be )?(defective|damaged|anomalous|broken|faulty)|"
    r"\b(is|are) (a |an )?(small |large |clear |real |visible |tiny )?(defect|anomaly|flaw)s?\b(?![ -](type|score|map))|"
    r"\b(has|have|shows?|contains?|with) (an? |some |several |multiple |many |one or more |two |three )?"
    r"(visible |small |large )?(anomal|defect|flaw|damage)(?!\w*[ -](score|map|detect|type))|"
    rf"\bnot (be |look |seem )?{_GOOD}\b|\b(cannot|can not|should not|must not|does not) "
    r"(be )?(ship|pass|use|accept|approve|release)|\bfails\b|\b(should|must) be (rejected|scrapped|discarded|set aside)"
)
# "no anomaly at the left", "nothing on the right", "not at the top": a place named as free of defects
_ABSENT = re.compile(
    rf"\b(no|not any|nothing)\b(?:(?!\b(?:but|and)\b)[^.;:,]){{0,40}}?\b(at|on|in|near) the (?P<cell>{_CELL_WORDS})\b|"
    rf"\bnot (at|on|in|near) the (?P<other>{_CELL_WORDS})\b"
)
_DESCRIBED = re.compile(
    rf"(^|[,;:] )(the|this|that|its) ((?!no\b)\w+ )?({DEFECT_NOUNS}) (is|are|was|measures?|covers?|spans?|runs?|has|reaches)\b"
)
_PEAK = re.compile(r"\bmost unusual\b|\bwithin what normal\b")  # the normal image's most unusual spot
_PERCENT = re.compile(r"(less than |under |below |about |around |roughly |approximately )?(\d+(?:\.\d+)?) ?%")
# "the probability … is 0.04", "confidence of 99.9": a chance given as a bare number (a fraction, or percent above 1)
_BARE_CHANCE = re.compile(
    r"\b(probability|chance|likelihood|confidence)\b[^.%]{0,60}?\b(is|of|at)\s*:?\s*(\d+(?:\.\d+)?)\b(?!\s?%)"
    r"(?!\s*(normal|spread|times|images?|regions?|pixels?))"
)
_OF_THE_PART = (
    r" ?of (the|its|this) (\w+ )?(image|picture|photo|frame|surface|area|part|product|object|weld|tile|plate)\b"
)
_CONFIDENCE_CONTEXT = re.compile(r"\bsure\b|confiden|certain|probab|likel|chance")
_DEFECT_CHANCE = re.compile(r"\b(chance|probability|likelihood)\b[^.]*\b(defect|anomal|faulty|bad)")
_AREA_CONTEXT = re.compile(
    r"\bof (the|its|this) (image|picture|area|surface|part|product|object|photo|frame)|\bcover|\barea\b|\bsize\b|"
    r"\blarge\b|\bbig\b|\boccup|\btakes up\b|\bspans?\b"
)
_CERTAIN = re.compile(
    r"(?<!not )\b(certain(ly)?|definitely|without (a |any )?doubt|no doubt|absolutely sure|"
    r"completely sure|fully confident|very (sure|certain|confident)|high(ly)? confiden\w*)\b|"
    r"(?<!not )\b100 ?% (sure|certain|confident)"
)
_UNSURE = re.compile(
    r"\bnot (very |entirely |completely |fully |totally |quite )?(sure|certain|confident)\b|\buncertain\b|\bunsure\b|"
    r"\blow confidence\b|\bdoubtful\b"
)
_LEVEL = re.compile(r"\bconfidence\b[^.]*\bis (high|moderate|low)\b")
_THRESHOLD = re.compile(
    r"\b(above|over|exceeds?|higher than|beyond|below|under|lower than|within)\s+(the\s+)?(decision\s+|calibrated\s+)?"
    r"threshold"
)
_REFERENCE_COUNT = re.compile(
    r"\b(\d+) (?:normal |reference |good |known-good )+(?:reference )?(?:images?|references?|parts?|samples?)\b"
)
_BOX = re.compile(r"(\d+) ?[×x] ?(\d+) ?(px|pixels?)")
_PHYSICAL = re.compile(r"\d+(?:\.\d+)? ?(mm|cm|µm|um|millimet\w*|centimet\w*|inch\w*|microns?)\b")
_NUMBERS = {"no": 0, "zero": 0, "one": 1, "a single": 1, "single": 1, "two": 2, "three": 3, "four": 4, "five": 5}
_COUNT = re.compile(  # "also one region", "another two spots", "one of the regions" count no total
    r"(?<!also )(?<!another )(?<!other )(?<!each )(?<!every )(?<!per )(?<!of )(?<![\w.,])"
    r"(?:(?:there (?:is|are|was|were)|found|detected|see|shows?|contains?|has|have|all|i count)\s+)?"
    r"(?:only |just |exactly )?"
    r"(no|zero|one|a single|single|two|three|four|five|\d+)\s+"
    r"((?:separate|distinct|anomalous|defective|different|small|large|suspicious)\s+)*"
    r"(regions?|defects?|anomal(?:y|ies)|areas?|spots?|flaws?)\b"
)
_CANNOT_NAME = re.compile(
    r"\b(cannot|can not|unable to|not able to) (name|tell|say|determine|identify)|\bno defect type"
)
_TYPE_ASSERTED = (
    r"\b(is|looks like|seems to be|appears to be|resembles|likely|probably|type is|a kind of)\s+(an? |the |some )?"
)
_DIFFERS = re.compile(r"\bdiffer|\bunlike\b|\bno (close )?counterpart|\bnot (like|match)|\bdeparts?\b")
_MATCHES = re.compile(r"\bmatch(es)?\b|\bsimilar to\b|\bclose counterpart|\blike the\b|\bresembles?\b")
_REFERENCES = re.compile(r"\breferences?\b|\b(good|normal) (ones|parts|samples|images|examples)\b")


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
    types = re.compile(_TYPE_ASSERTED + r"(?:\w+ ){0,2}?(" + "|".join(map(re.escape, names)) + r")(e?s)?\b")
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

    rest = sentence
    for match in _ABSENT.finditer(sentence):  # read first and blanked: "no anomaly at the left" is no verdict
        add(match.start(), "absent", _cell(match.group("cell") or match.group("other")))
        rest = rest[: match.start()] + " " * (match.end() - match.start()) + rest[match.end() :]
    reply = _REPLY.search(rest) if reply_polarity is not None else None
    if reply:
        add(0, "reply", (reply.group(1) == "yes") != reply_polarity)
    negative, positive = _NEGATIVE.search(rest), _POSITIVE.search(rest)
    if positive:
        add(positive.start(), "verdict", True)
    if negative:
        add(negative.start(), "verdict", False)
    peak = bool(_PEAK.search(rest))
    cells = _cells(rest)
    for position, cell in cells:
        add(position, "peak" if peak else "location", cell)
    placed = cells and re.search(rf"\b({DEFECT_NOUNS})\b", rest)
    described = _DESCRIBED.search(rest)  # "the crack is 1.5 long": its subject is a defect, so there is one
    if (placed or described) and not (peak or positive or negative):
        add(cells[0][0] if placed else described.start(), "verdict", True)  # type: ignore[union-attr]
    _quantities(sentence, add)
    for match in _COUNT.finditer(rest):
        word = match.group(1)
        add(match.start(), "count", _NUMBERS[word] if word in _NUMBERS else int(word))
    for match in _THRESHOLD.finditer(sentence):
        add(
            match.start(),
            "threshold",
            match.group(1) in ("above", "over", "exceed", "exceeds", "higher than", "beyond"),
        )
    _certainty(sentence, add)
    _comparison(sentence, add)
    if not _CANNOT_NAME.search(sentence):
        for match in types.finditer(sentence):
            add(match.start(), "type", match.group(3))
    return [claim for _, claim in sorted(found, key=lambda item: item[0])]


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
    about_confidence = bool(_CONFIDENCE_CONTEXT.search(sentence))
    for match in _PERCENT.finditer(sentence):
        after = sentence[match.end() : match.end() + 40]
        value = float(match.group(2)) / 100
        of_the_part = re.match(_OF_THE_PART, after)  # "100 % of the image is defective": an area, beside a chance
        if not of_the_part and (
            about_confidence or re.match(r" ?(sure|certain|confident|good|defective|normal|ok|fine)\b", after)
        ):
            if "not " + match.group(0).strip() not in sentence:  # "not 100 % sure" claims nothing
                add(match.start(), "confidence", (value, None, bool(_DEFECT_CHANCE.search(sentence))))
        elif of_the_part or _AREA_CONTEXT.search(sentence):
            bound = "less than" if (match.group(1) or "").strip() in ("less than", "under", "below") else "about"
            add(match.start(), "area", (value, bound))
    for match in _BARE_CHANCE.finditer(sentence):
        value = float(match.group(3))
        if value <= 100:
            add(
                match.start(3),
                "confidence",
                (value if value <= 1 else value / 100, None, bool(_DEFECT_CHANCE.search(sentence))),
            )
    for match in _REFERENCE_COUNT.finditer(sentence):
        add(match.start(), "references", int(match.group(1)))
    for match in _BOX.finditer(sentence):
        add(match.start(), "box", (int(match.group(1)), int(match.group(2))))
    for match in _PHYSICAL.finditer(sentence):
        add(match.start(), "physical", match.group(0))


def _certainty(sentence: str, add) -> None:
    level = _LEVEL.search(sentence)
    if level:
        add(level.start(), "confidence", (None, level.group(1), False))
    elif unsure := _UNSURE.search(sentence):
        if not re.search(r"\d ?%", unsure.group(0)):
            add(unsure.start(), "confidence", (None, "low", False))
    elif certain := _CERTAIN.search(sentence):
        add(certain.start(), "confidence", (None, "high", False))


def _comparison(sentence: str, add) -> None:
    """A comparison with the references (True: it differs from them)."""
    if _REFERENCES.search(sentence):
        differs, matches = _DIFFERS.search(sentence), _MATCHES.search(sentence)
        if differs or matches:
            add((differs or matches).start(), "reference", bool(differs))  # type: ignore[union-attr]


def compatible(cell: str, expert_cells: Iterable[str]) -> bool:
    """ "left" agrees with "top left" and "bottom left" (a coarser name for the same place)."""
    return any(cell == expert or cell in expert.split() for expert in expert_cells)


def contradiction(claim: Claim, f: Findings) -> str | None:
    """Why a claim contradicts the findings (None: it holds, within the stated tolerances)."""
    cells = [r.location for r in f.regions] if f.anomalous else []
    kind, value = claim.kind, claim.value
    if kind in ("verdict", "reply") and value != f.anomalous:
        said = "there is a defect" if value else "there is no defect"
        return f"says {said}; the vision expert found {'one' if f.anomalous else 'none'}"
    if kind == "location" and not f.anomalous:
        return f"places a defect at the {value}; the vision expert found none"
    if kind == "location" and not compatible(str(value), cells):
        return f"places the defect at the {value}; the vision expert's regions are at the " + " and the ".join(cells)
    if kind == "references" and value != f.n_normal:
        return f"speaks of {value} normal images; the decision had {f.n_normal}"
    if kind == "absent" and compatible(str(value), cells):
        return f"says there is no defect at the {value}; the vision expert found one there"
    if kind == "peak" and not f.anomalous and not compatible(str(value), [f.peak_location]):
        return f"puts the most unusual spot at the {value}; it is at the {f.peak_location}"
    if kind == "area":
        return _area_problem(value, f)  # type: ignore[arg-type]
    if kind == "box" and not any(
        abs(value[0] - (r.box[2] - r.box[0])) <= BOX_PIXELS and abs(value[1] - (r.box[3] - r.box[1])) <= BOX_PIXELS  # type: ignore[index]
        for r in f.regions
    ):
        return f"gives a box of {value[0]} × {value[1]} pixels; no region has that size"  # type: ignore[index]
    if kind == "physical":
        return f"gives a physical size ({value}); the findings have no scale, only image pixels"
    if kind == "count" and value != (len(f.regions) if f.anomalous else 0):
        return f"counts {value} regions; the vision expert found {len(f.regions) if f.anomalous else 0}"
    if kind == "confidence":
        return _confidence_problem(value, f)  # type: ignore[arg-type]
    if kind == "type":
        known = [g for g in (f.defect_type.name, f.defect_type.runner_up) if g] if f.defect_type else []
        if not f.anomalous or not any(_same_type(str(value), name) for name in known):
            return f"names the defect a {value}; " + (
                f"the defect-type expert says {known[0]}" if known else "no defect-type expert named it"
            )
    if kind == "threshold" and value != f.anomalous:
        return (
            f"puts the score {'above' if value else 'below'} the threshold; it is {'above' if f.anomalous else 'below'}"
        )
    if kind == "reference":
        if not f.n_normal:
            return "compares it with references; the decision had none (zero-shot)"
        if value != f.anomalous:
            return (
                f"says it {'differs from' if value else 'matches'} the references; the vision expert found the opposite"
            )
    return None


def _area_problem(value: tuple[float, str], f: Findings) -> str | None:
    claimed, bound = value
    areas = [r.area_fraction for r in f.regions] if f.anomalous else [0.0]
    areas.append(sum(areas))
    if bound == "less than":
        holds = any(area <= claimed for area in areas)
    else:
        holds = any(abs(claimed - area) <= max(AREA_ABSOLUTE, AREA_RELATIVE * area) for area in areas)
    if holds:
        return None
    actual = ", ".join(f"{a:.1%}" for a in areas[:-1])
    return f"gives an area of {claimed:.2%}; the regions cover {actual}" + (
        f" ({areas[-1]:.1%} together)" if len(areas) > 2 else ""
    )


def _confidence_problem(value: tuple[float | None, str | None, bool], f: Findings) -> str | None:
    number, level, of_defect = value
    if number is not None:
        actual = f.probability if of_defect else f.confidence
        if abs(number - actual) > CONFIDENCE_POINTS:
            what = "chance of a defect" if of_defect else "confidence"
            return f"states a {what} of {number:.0%}; the calibrated value is {actual:.0%}"
        return None
    holds = {
        "high": f.confidence >= HIGH,
        "moderate": MODERATE <= f.confidence < HIGH,
        "low": f.confidence < HIGH,
    }[str(level)]
    return None if holds else f"says its confidence is {level}; it is {f.confidence:.0%}"


def _same_type(said: str, name: str) -> bool:
    said, name = said.lower().rstrip("s"), name.lower().rstrip("s")
    return said == name or said in name.split() or name in said.split()


def false_premise(question: str, f: Findings) -> list[str]:
    """What a question takes for granted that the findings deny: the places it puts a defect where there is
    none ("the scratch on the left — how long is it?"), or ["anything"] when it assumes a defect on an image
    without one ("how long is the crack?"). Empty: no false premise."""
    lowered = question.lower()
    if re.search(r"^\W*(is|are|does|do|did|any|has|have|was|were|can|could|should|would|will|may|must)\b", lowered):
        return []  # a yes/no question asks, it does not assume
    noun = re.search(rf"\b(the|this|that|these|those)\s+(\w+\s+)?({DEFECT_NOUNS})\b", lowered)
    if not noun:
        return []
    if not f.anomalous:
        return ["anything"]
    cells = [cell for _, cell in _cells(lowered)]
    return [cell for cell in cells if not compatible(cell, [r.location for r in f.regions])]
