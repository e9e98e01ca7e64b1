"""Independent claim checker for AnomaLens chat answers (benchmark side).

Reads an answer sentence by sentence, pulls out the claims it makes about one inspected image (verdict,
yes/no polarity, location, size, count, confidence, defect type, reference comparison) and checks each
against the findings dict the answer was grounded on. Written from the benchmark spec alone: it shares no
code with the product's guard, so a bench run can show where the two disagree.

Regex rules over lower-cased, normalised text. Where a sentence is genuinely ambiguous the rules lean
towards not flagging; contradictions of the listed kinds are flagged.

    check_answer(findings, question, answer) -> [{"kind", "sentence", "claim", "ok", "why"}, ...]
    premise(findings, question)              -> description of a false premise, or None
    premise_corrected(findings, question, answer) -> whether the answer rejects that premise
"""

from __future__ import annotations

import re

# --- vocabulary -------------------------------------------------------------------------------------------

COMMON_TYPES = (
    "scratch", "crack", "dent", "hole", "stain", "contamination", "burr", "chip", "break", "fray", "blowhole",
    "pore", "porosity", "spatter", "corrosion", "rust", "deformation", "bend", "fracture", "cut", "missing part",
    "discoloration",
)  # fmt: skip
GENERIC = r"anomal(?:y|ies)|defects?|flaws?|faults?|damages?|irregularit(?:y|ies)|abnormalit(?:y|ies)"
ANOMALOUS_AREA = r"anomalous (?:regions?|areas?|spots?|parts?)"
NOT_A_DEFECT_NOUN = r"(?![\w-]|\s+(?:types?|scores?|maps?|threshold|detection|detector|model|expert|kind))"
NEG_WORD = re.compile(r"\b(?:no|not|never|cannot|without|zero|nothing)\b")
WORD_NUMBERS = {"no": 0, "zero": 0, "one": 1, "a single": 1, "single": 1, "only one": 1, "two": 2, "three": 3}
WORD_NUMBERS |= {"four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10}

# --- grid places ------------------------------------------------------------------------------------------

PLACE = (
    r"(?:(?:top|upper|bottom|lower)[\s-]*(?:left|right)|(?:left|right)[\s-]*(?:top|upper|bottom|lower)"
    r"|top|upper|bottom|lower|left|right|centre|center|middle)"
)
HAND = r"(?:[\s-]hand)?"
PLACE_NOUN = r"(?:corner|side|edge|part|area|region|half|portion|section|border|quadrant|spot|anomaly|defect)"
# A place word counts only where it names a place: after a preposition, or before a place noun
# ("that's right", "none left" and "on top of that" are not places).
PLACE_MENTION = re.compile(
    rf"\b(?:at|on|in|near|of|around|to|towards?|within)\s+(?:the\s+)?(?:very\s+|far\s+|image\s+)?(?P<a>{PLACE}){HAND}\b"
    r"(?!\s+(?:of\s+(?:that|this|it)\b|quality|way|answer|direction|amount|order|decision|choice|one|thing|time))"
    rf"|\bthe\s+(?P<b>{PLACE}){HAND}[\s-]+{PLACE_NOUN}\b"
    rf"|\b(?P<c>{PLACE}){HAND}[\s-]+(?:corner|side|edge|half|quadrant|portion|region|area)\b"
)
GRID_WORD = {"top": "top", "upper": "top", "bottom": "bottom", "lower": "bottom", "left": "left"}
GRID_WORD |= {"right": "right", "center": "center", "centre": "center", "middle": "center"}


def place_of(text: str) -> frozenset[str]:
    """The grid components a place phrase names: "upper-left corner" -> {top, left}."""
    return frozenset(GRID_WORD[w] for w in re.findall(r"top|upper|bottom|lower|left|right|centre|center|middle", text))


def place_name(place: frozenset[str]) -> str:
    order = ["top", "bottom", "left", "right", "center"]  # vertical first: "top left"
    return " ".join(w for w in order if w in place)


def fits(named: frozenset[str], location: frozenset[str]) -> bool:
    """A coarser word fits a finer cell: "left" fits "top left", "top left" does not fit "top"."""
    return bool(named) and named <= location


def overlaps(a: frozenset[str], b: frozenset[str]) -> bool:
    return fits(a, b) or fits(b, a)


def region_places(findings: dict) -> list[frozenset[str]]:
    return [place_of(r["location"]) for r in findings.get("regions") or []]


# --- text -------------------------------------------------------------------------------------------------

SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[A-Z\"'(\[])")  # a decimal point has no space after it
CLAUSE_SPLIT = re.compile(  # ", only at the center" starts a new clause: a negation before it does not reach it
    r"[:;]|\s*—\s*|\s[–-]\s|,\s*(?=(?:but|only|instead|rather|while|whereas|however)\b)|\bbut\b"
)
INTERJECTION = re.compile(r"^\s*(?P<word>yes|no|yeah|yep|yup|nope)\b\s*[,.!;:—–-]+\s*|^\s*(?P<alone>yes|no)\s*$")


def split_sentences(text: str) -> list[str]:
    lines = [re.sub(r"^\s*(?:[-*•]|\d+[.)])\s+", "", line) for line in text.splitlines()]  # list bullets
    return [s.strip() for line in lines for s in SENTENCE_END.split(line) if s.strip()]


def normalise(text: str) -> str:
    t = text.lower().replace("’", "'").replace("‘", "'")
    t = re.sub(r"\bcan't\b", "cannot", t)
    t = re.sub(r"\bwon't\b", "will not", t)
    t = re.sub(r"n't\b", " not", t)
    t = re.sub(r"\bi'm\b", "i am", t)
    t = re.sub(r"\b(it|that|there|this|what|which|here)'s\b", r"\1 is", t)
    t = re.sub(r"'re\b", " are", t)
    return re.sub(r"\s+", " ", t).strip()


def body_of(sentence_norm: str) -> str:
    """The sentence without a leading "Yes,"/"No," (its own claim kind, and not a negation of what follows)."""
    return INTERJECTION.sub("", sentence_norm, count=1)


def clauses(body: str) -> list[str]:
    return [c.strip() for c in CLAUSE_SPLIT.split(body) if c and c.strip()]


def defect_types(findings: dict) -> list[str]:
    criteria = findings.get("criteria") or {}
    named = [d.get("name", "") for d in criteria.get("defects") or []]
    guess = findings.get("defect_type") or {}
    named += [guess.get("name") or "", guess.get("runner_up") or ""]  # the expert's own names, e.g. "blow_hole"
    words = {re.sub(r"[_-]+", " ", n.lower()).strip() for n in [*named, *COMMON_TYPES]}
    return sorted((w for w in words if w), key=len, reverse=True)  # longest first: "blowhole" before "hole"


def singular(word: str) -> str:
    word = re.sub(r"[_-]+", " ", word.lower()).strip()
    if word.endswith("ies"):
        return word[:-3] + "y"
    if re.search(r"(?:ch|sh|x|ss)es$", word):
        return word[:-2]
    if word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


class Vocab:
    """The regexes that depend on the defect-type names of one findings dict."""

    def __init__(self, findings: dict):
        types = "|".join(re.escape(t).replace(r"\ ", r"\s+") for t in defect_types(findings))
        self.types = rf"(?:{types})(?:e?s)?"
        self.noun = rf"(?:{ANOMALOUS_AREA}|{GENERIC}|{self.types})"
        self.generic = rf"(?:{ANOMALOUS_AREA}|{GENERIC})"
        self.context = re.compile(rf"\b{self.noun}\b|\b(?:regions?|areas?|spots?|counterparts?|anomalous|defective)\b")
        # "no anomaly", "not a defect", "free of defects"; only generic nouns ("no scratch" says nothing of others)
        self.neg_exist = re.compile(
            rf"\b(?:no|zero|without(?: any)?|free (?:of|from)|not (?:a|an|any|a single))\s+"
            rf"(?!(?:other|further|additional|second|another)\b)(?:[\w-]+\s+){{0,2}}?"
            rf"{self.generic}{NOT_A_DEFECT_NOUN}"
        )  # "no other defects" leaves the one found
        self.pos_exist = re.compile(
            r"\b(?:there\s+(?:is|are|was|were|seems to be|appears to be)|has|have|had|shows?|showing|contains?"
            r"|containing|detected|found|see|seen|with|reveals?)\s+"
            rf"(?P<mid>(?:(?!(?:for|of)\b)[\w%.-]+\s+){{0,3}}?){self.noun}{NOT_A_DEFECT_NOUN}"
        )  # "has been tested for defects" says none is there
        # where a place is said to hold no defect: "no anomaly at the left", "not at the left"
        self.neg_place = re.compile(
            rf"\bno\s+(?:[\w-]+\s+){{0,2}}?{self.noun}\b|\bnothing\b|\bnone\b|\bwithout\b|\bfree (?:of|from)\b"
            r"|\bnot\s+(?:[\w-]+\s+){0,2}?(?=(?:at|on|in|near|located|found|present|visible|detected|seen"
            r"|anywhere|there)\b)"  # stops before "at": the place mention starts there
            r"|\b(?:does|do) not exist\b|\bno such\b"
        )
        self.type_assert = re.compile(
            r"\b(?:is|are|be|looks? like|seems? to be|appears? to be|resembles?|likely|probably|classified as"
            r"|consistent with|suggests?|indicates?|kind of|sort of|type of|shows?|has|have|contains?)\s+"
            r"(?:(?:a|an|some|one|the|small|large|tiny|fine|thin|deep|shallow|minor|major|possible|probable|clear"
            rf"|visible|likely|typical|single)\s+){{0,3}}(?P<t>{self.types})\b"
        )
        self.premise_np = re.compile(
            r"\b(?:the|this|that|these|those|your)\s+"
            r"(?P<mid>(?:(?!(?:has|have|had|is|are|was|were|a|an|with|shows?|of|there|any|no|or|and|in|on|at)\b)"
            rf"[\w-]+\s+){{0,3}}?)(?P<noun>{self.noun}){NOT_A_DEFECT_NOUN}"
            rf"(?:\s+(?:on|at|in|near|to)\s+(?:the\s+)?(?:very\s+|far\s+)?(?P<place>{PLACE}))?"
        )


# --- verdict ----------------------------------------------------------------------------------------------

BAD_STATE = r"defective|anomalous|damaged|faulty|flawed|broken|bad|nok|rejected|a reject|scrap|an? (?:defect|anomaly)"
GOOD_STATE = (
    r"normal|good|fine|ok|okay|acceptable|flawless|defect-free|defect free|intact|healthy|shippable|in spec"
    r"|within spec|shipped|accepted"
)
NOT_PREDICATE = (  # "normal images", "0.6 normal spreads", "the good ones": an attribute, not a verdict
    r"(?![\w-]|\s+(?:images?|references?|spreads?|samples?|ones|examples?|data|range|variations?|distribution"
    r"|behaviou?r|limits?|bounds?|levels?|regions?|areas?|spots?|scores?|training|texture|appearance|patterns?"
    r"|threshold|maps?|types?|sign|idea|question|match|counterparts?|news|kind)\b)"
)
LINK = r"(?:is|are|was|were|be|been|being|looks?|seems?|appears?|remains?|stays?)"
STATE = re.compile(
    rf"(?P<pre>\b(?:not|never|cannot|no longer)\s+(?:\w+\s+){{0,2}})?\b{LINK}\b(?P<mid>(?:\s+[\w%.'-]+){{0,3}}?)\s+"
    rf"(?:(?P<bad>{BAD_STATE})|(?P<good>{GOOD_STATE})){NOT_PREDICATE}"
)
PASS_FAIL = re.compile(
    r"\b(?P<neg>(?:does|do|did|will|would|should|can|could)\s+not\s+)?(?:(?P<pass>pass(?:es|ed)?)|fails?|failed)\b"
    r"(?!\s+(?:the\s+)?(?:threshold|above|below|over))"
)
HYPOTHETICAL = re.compile(r"\b(?:if|whether|unless|confidence|probability|chance|likelihood|odds)\b")


def stated_verdicts(body: str, vocab: Vocab, skip_hypothetical: bool = True) -> list[bool]:
    """Verdicts a sentence states, True = defective. "confidence that it is defective" states none."""
    found = []
    for clause in clauses(body):
        place_starts = [m.start() for m in PLACE_MENTION.finditer(clause)]

        def counts(m: re.Match, clause: str = clause) -> bool:
            return not (skip_hypothetical and HYPOTHETICAL.search(clause[: m.start()]))

        for m in vocab.neg_exist.finditer(clause):
            names_place = any(p >= m.end() and not clause[m.end() : p].strip() for p in place_starts)
            if counts(m) and not names_place:  # "no anomaly at the left" is an absent_location claim
                found.append(False)
        for m in vocab.pos_exist.finditer(clause):
            if counts(m) and not NEG_WORD.search(m["mid"]):  # "there is no ..." is neg_exist's
                before = " ".join(clause[: m.start()].split()[-3:])
                found.append(not NEG_WORD.search(before))  # "does not have any defects"
        for m in STATE.finditer(clause):
            if counts(m):
                negated = bool(NEG_WORD.search((m["pre"] or "") + m["mid"]))
                found.append((m["bad"] is not None) != negated)
        for m in PASS_FAIL.finditer(clause):
            if counts(m):
                found.append((m["pass"] is None) != bool(m["neg"]))
        if re.search(r"\bnothing (?:unusual|abnormal|wrong)\b", clause):
            found.append(False)
    return found


def verdict_name(defective: bool) -> str:
    return "defective" if defective else "not defective"


def truth_name(findings: dict) -> str:
    return "the verdict is defective" if findings["anomalous"] else "the verdict is not defective"


# --- polarity ---------------------------------------------------------------------------------------------

YES_NO_QUESTION = re.compile(
    r"^\s*(?:is|are|was|were|does|do|did|can|could|should|shall|would|will|has|have|any|must)\b"
)
CERTAINTY_QUESTION = re.compile(r"\byou\s+(?:\w+\s+)?(?:sure|certain|confident)\b|\bhow (?:sure|certain|confident)\b")
GOOD_MEANING = re.compile(
    r"\b(?:good|ok|okay|fine|normal|acceptable|pass(?:es)?|ship(?:ped|pable)?|usable|use|flawless|intact|in spec"
    r"|defect[- ]free|healthy)\b|\bfree (?:of|from)\b|\bwithout (?:any )?(?:defects?|anomal\w*|flaws?)\b"
)
FREE_OF = re.compile(r"\bfree (?:of|from)\b|\bdefect[- ]free\b|\bwithout (?:any )?(?:defects?|anomal\w*|flaws?)\b")
BAD_MEANING = re.compile(
    r"\b(?:defects?|defective|anomal\w*|damaged?|faulty|flaws?|flawed|broken|reject(?:ed)?|scrap(?:ped)?"
    r"|problems?|issues?|wrong|bad|fail(?:s|ed)?|abnormal|unusual)\b"
)


def yes_means_defective(question_norm: str) -> bool | None:
    """What a "yes" to this question claims, or None where a yes/no is not about the verdict."""
    q = question_norm
    if not YES_NO_QUESTION.search(q) or CERTAINTY_QUESTION.search(q) or re.search(r"\bnot\b", q):
        return None
    if PLACE_MENTION.search(q):  # "is there a defect at the left?": a yes/no about one place
        return None
    if FREE_OF.search(q):
        return False
    good, bad = bool(GOOD_MEANING.search(q)), bool(BAD_MEANING.search(q))
    return None if good == bad else bad  # both or neither: ambiguous; a type-only question is neither


def polarity_claims(findings: dict, question: str, sentence: str) -> list[dict]:
    m = INTERJECTION.match(normalise(sentence))
    meaning = yes_means_defective(normalise(question))
    if not m or meaning is None:
        return []
    word = m["word"] or m["alone"]
    said_yes = word in ("yes", "yeah", "yep", "yup")
    defective = said_yes == meaning
    claim = f'"{word}" to "{question.strip()}" means {verdict_name(defective)}'
    return [claim_of("polarity", sentence, claim, defective == findings["anomalous"], truth_name(findings))]


# --- location ---------------------------------------------------------------------------------------------

PEAK = re.compile(r"\bmost (?:unusual|anomalous|suspicious|salient|striking)\b|\bpeak\b|\bhottest\b")
ECHO = re.compile(r"\byou (?:asked|mention|mentioned|mean|meant|refer|referred)\b|\byour question\b|\bare referring\b")
REF_CONTEXT = re.compile(
    r"\breferences?\b|\bnormal (?:reference )?(?:images?|samples?|examples?|ones|parts?)\b"
    r"|\bgood (?:ones|images?|samples?|examples?|parts?)\b|\bcounterparts?\b"
)
REF_DIFFER = re.compile(
    r"\bno (?:\w+ )?counterparts?\b|\bwithout (?:a |any )?(?:\w+ )?counterparts?\b|\bdiffers?\b|\bdiffering\b"
    r"|\bdifferent from\b|\bunlike\b|\bdeviates?\b|\bdeparts?\b|\bnothing like\b|\bstands? out\b"
    r"|\bnot (?:\w+ ){0,2}?(?:match|matching|like|similar|consistent|found|seen|present)\b"
)
REF_MATCH = re.compile(
    r"\bmatch(?:es|ed|ing)?\b|\bcounterparts?\b|\blike the\b|\bsimilar to\b|\bconsistent with\b|\bin line with\b"
    r"|\bresembles?\b|\bcorresponds? to\b|\bsame as\b|\bindistinguishable\b"
)


def ref_polarity(clause: str) -> str | None:
    if REF_DIFFER.search(clause):
        return "differ"
    return "match" if REF_MATCH.search(clause) else None


def places_in(body: str, vocab: Vocab, loose: bool = False) -> list[tuple[frozenset[str], bool, bool]]:
    """(place, said to hold no defect, is the most-unusual-spot of a description) for each place named."""
    peak = bool(PEAK.search(body))
    if not (peak or loose or vocab.context.search(body)):
        return []  # "a gear in the center" says nothing about a defect
    refs = bool(REF_CONTEXT.search(body))
    found = []
    for clause in clauses(body):
        ends = [m.end() for m in vocab.neg_place.finditer(clause)]
        matches_refs = refs and ref_polarity(clause) == "match"  # "the area at the left matches them"
        for m in PLACE_MENTION.finditer(clause):
            negated = matches_refs or any(e <= m.start() for e in ends)
            if ECHO.search(clause) and not negated:
                continue  # "the scratch on the left you asked about" repeats the question, it asserts nothing
            found.append((place_of(m["a"] or m["b"] or m["c"]), negated, peak))
    return found


def location_claims(findings: dict, sentence: str, body: str, vocab: Vocab, loose: bool) -> list[dict]:
    regions = region_places(findings)
    at = ", ".join(r["location"] for r in findings.get("regions") or []) or "none (no anomalous region)"
    claims = []
    for place, negated, peak in places_in(body, vocab, loose):
        name = place_name(place)
        if negated:
            ok = not any(fits(place, r) for r in regions)
            claims.append(claim_of("absent_location", sentence, f"no defect at the {name}", ok, f"regions: {at}"))
        elif peak:
            spots = [place_of(findings.get("peak_location") or ""), *regions]
            ok = any(fits(place, s) for s in spots)
            why = f"the most unusual spot is at the {findings.get('peak_location')}"
            claims.append(claim_of("location", sentence, f"most unusual spot at the {name}", ok, why))
        else:
            ok = any(fits(place, r) for r in regions)
            claims.append(claim_of("location", sentence, f"defect at the {name}", ok, f"regions: {at}"))
    return claims


# --- size and count ---------------------------------------------------------------------------------------

PERCENT = re.compile(r"(?<![\d.])(?P<n>\d+(?:\.\d+)?)\s*(?:%|percent\b|per cent\b)")
BOX = re.compile(r"(?<![\d.])(?P<w>\d+)\s*(?:×|x|\*|by)\s*(?P<h>\d+)\s*(?:pixels?|px)\b")
PHYSICAL = re.compile(
    r"(?<![\d.])(?P<n>\d+(?:\.\d+)?)\s*(?P<unit>mm|cm|µm|μm|um|millimet(?:er|re)s?|centimet(?:er|re)s?"
    r"|micromet(?:er|re)s?|microns?|inch(?:es)?)(?![\w])"
)
UPPER_BOUND = re.compile(r"(?:\b(?:less than|under|below|at most|no more than)|<)\s*(?:about\s+)?$")
LOWER_BOUND = re.compile(r"(?:\b(?:more than|over|above|at least)|>)\s*(?:about\s+)?$")  # \b: "cover" is not "over"
COVER_BEFORE = re.compile(
    r"\b(?:cover(?:s|ing|ed)?|takes? up|occup(?:y|ies|ying)|spans?)\s+(?:\w+\s+){0,3}?$"
    r"|\b(?:area|size|share|fraction)\s+(?:of\s+\w+\s+)?(?:is\s+)?(?:about\s+|roughly\s+|around\s+)?$"
)
CONF_WORDS = re.compile(
    r"\b(?:sure|certain|certainty|confident|confidence|probability|probable|chances?|likelihood|likely|odds)\b"
)
COUNT = re.compile(
    r"(?<![\w.])(?P<n>\d+|no|zero|a single|single|only one|one|two|three|four|five|six|seven|eight|nine|ten)\s+"
    r"(?P<adj>(?:(?:separate|distinct|anomalous|defective|suspicious|unusual|abnormal|visible|small|large|main"
    r"|different|such)\s+){0,2})(?P<noun>regions?|areas?|spots?|defects?|anomal(?:y|ies)|flaws?|blobs?|patches?)\b"
    r"(?!\s+(?:types?|scores?|maps?))"
)
ONLY_ONE = re.compile(r"\bthe only (?:(?:anomalous|defective)\s+)?(?:anomaly|defect|region|area|spot|flaw)\b")


def is_size_percent(body: str, m: re.Match) -> bool:
    after, before = body[m.end() :], body[: m.start()]
    if re.match(r"\s*of\b(?!\s+(?:(?:my|its|the|our|this)\s+)?(?:confidence|certainty|probability|chance|\d))", after):
        return True  # "1.4% of the image"
    return bool(COVER_BEFORE.search(before))  # "covers about 1.4%"


def size_claims(findings: dict, sentence: str, body: str) -> list[dict]:
    regions = findings.get("regions") or []
    fractions = [100 * r["area_fraction"] for r in regions]
    actual = [*fractions, sum(fractions)]  # one region or all of them together
    shown = ", ".join(f"{a:.2f}%" for a in fractions) or "no region"
    claims = []
    for m in PERCENT.finditer(body):
        if not is_size_percent(body, m):
            continue
        said, before = float(m["n"]), body[: m.start()]
        upper, lower = bool(UPPER_BOUND.search(before)), bool(LOWER_BOUND.search(before))
        ok = any(abs(said - a) <= max(0.5, 0.5 * a) or (upper and a <= said) or (lower and a >= said) for a in actual)
        bound = "less than " if upper else "more than " if lower else ""
        claims.append(claim_of("size", sentence, f"covers {bound}{m['n']}% of the image", ok, f"regions: {shown}"))
    boxes = [(r["box"][2] - r["box"][0], r["box"][3] - r["box"][1]) for r in regions]
    for m in BOX.finditer(body):
        w, h = int(m["w"]), int(m["h"])
        ok = any(abs(w - bw) <= 2 and abs(h - bh) <= 2 for bw, bh in boxes)
        why = "boxes: " + (", ".join(f"{bw} × {bh}" for bw, bh in boxes) or "none")
        claims.append(claim_of("size", sentence, f"a box of {w} × {h} pixels", ok, why))
    for m in PHYSICAL.finditer(body):  # no scale is known, so no physical size is supported
        why = "the findings hold no physical scale"
        claims.append(claim_of("size", sentence, f"{m['n']} {m['unit']}", False, why))
    return claims


def count_claims(findings: dict, sentence: str, body: str) -> list[dict]:
    actual = len(findings.get("regions") or [])
    counts = []
    for m in COUNT.finditer(body):
        word, before = m["n"], body[: m.start()]
        if word in ("no", "zero") and not re.search(r"region|area|spot|blob|patch", m["noun"]):
            continue  # "no defects" is a verdict; "no anomalous regions" is a count too
        if re.search(r"\b(?:also|another|besides|additional|in addition)\b", before):
            continue  # "there is also one region at the top": not the total
        if WORD_NUMBERS.get(word) == 1 and re.search(r"\b(?:another|other|second|each|per)\b", body):
            continue  # "one region at the top, another at the left"
        counts.append(int(word) if word.isdigit() else WORD_NUMBERS[word])
    if ONLY_ONE.search(body):
        counts.append(1)
    why = f"the findings hold {actual} anomalous region(s)"
    return [claim_of("count", sentence, f"{n} anomalous region(s)", n == actual, why) for n in counts]


# --- confidence -------------------------------------------------------------------------------------------

HEDGE = re.compile(
    r"\bnot (?:100 ?%|one hundred percent|entirely|completely|fully|absolutely|totally|perfectly) "
    r"(?:sure|certain|confident)\b"
)
LOW = re.compile(
    r"\b(?:not|never|cannot)\s+(?:(?:be|feel|am|so|very|quite|really|too|say|tell)\s+){0,2}(?:for\s+)?"
    r"(?:sure|certain|confident)\b|\buncertain\w*|\bunsure\b|\blow(?:er)? (?:confidence|certainty)\b"
    r"|\b(?:confidence|certainty) is (?:\w+ )?low\b"
)
MODERATE = re.compile(r"\bmoderate(?:ly)?\b|\bmedium (?:confidence|certainty)\b")
HIGH = re.compile(
    r"\b(?:very|highly|extremely|absolutely|completely|totally|fully|entirely)\s+(?:sure|certain|confident)\b"
    r"|\b(?:am|are|is|be)\s+certain\b|\bcertainly\b|\bdefinite(?:ly)?\b|\bwithout (?:a |any )?doubts?\b"
    r"|\bno doubt\b|\bundoubtedly\b|\bhigh(?:ly)? (?:confidence|certainty)\b"
    r"|\b(?:confidence|certainty) is (?:\w+ )?high\b"
)
DECIMAL_CONF = re.compile(
    r"\b(?:confidence|probability|certainty|chance|likelihood)\s*(?:of\s+|is\s+|=\s*|:\s*)?(?:about\s+|around\s+)?"
    r"(?P<n>0?\.\d+|1\.0+)(?![\d%])"
)
CHANCE_OF_DEFECT = re.compile(
    r"\b(?:probability|chances?|likelihood|odds|confidence)\s+(?:of|that|for)\s+(?:\w+\s+){0,3}?"
    r"(?:a defect|an anomaly|defect|defective|anomal\w*|faulty|bad)\b"
)


def stated_side(body: str, vocab: Vocab) -> bool | None:
    """Which verdict a sentence's number is the chance of: True defective, False normal, None unsaid."""
    if CHANCE_OF_DEFECT.search(body):
        return True
    sides = set(stated_verdicts(body, vocab, skip_hypothetical=False))
    return sides.pop() if len(sides) == 1 else None


def confidence_claims(findings: dict, sentence: str, body: str, vocab: Vocab) -> list[dict]:
    p, conf = findings["probability"], findings["confidence"]
    side = stated_side(body, vocab)
    # a chance that it IS defective is P(defective); of being normal 1 - P; a bare confidence is the verdict's
    target = p if side is True else 1 - p if side is False else conf
    target_name = "P(defective)" if side is True else "P(normal)" if side is False else "confidence"
    numbers = []
    for m in PERCENT.finditer(body):
        after = body[m.end() :]
        attached = re.match(r"\s*(?:sure|certain|confident|good|defective|normal|anomalous|ok)\b", after)
        if is_size_percent(body, m) or re.search(r"\bnot\s+$", body[: m.start()]):
            continue  # "I'm not 100% sure" is no claim
        if attached or CONF_WORDS.search(body):
            numbers.append((float(m["n"]) / 100, m["n"] + "%"))
    numbers += [(float(m["n"]), m["n"]) for m in DECIMAL_CONF.finditer(body)]
    claims = []
    for value, text in numbers:
        ok = abs(value - target) <= 0.10
        why = f"{target_name} is {target:.2f}"
        claims.append(claim_of("confidence", sentence, f"{target_name} {text}", ok, why))
    if HEDGE.search(body):
        return claims
    why = f"confidence is {conf:.2f}"
    if LOW.search(body):
        claims.append(claim_of("confidence", sentence, "low confidence", conf < 0.90, why))
    elif MODERATE.search(body) and CONF_WORDS.search(body):
        claims.append(claim_of("confidence", sentence, "moderate confidence", 0.70 <= conf < 0.90, why))
    elif HIGH.search(body):
        claims.append(claim_of("confidence", sentence, "high confidence", conf >= 0.90, why))
    return claims


# --- defect type and references ---------------------------------------------------------------------------

TYPE_UNKNOWN = re.compile(r"\b(?:cannot|can not|unable|impossible|not possible|whether|if|no way)\b")


def type_claims(findings: dict, sentence: str, body: str, vocab: Vocab) -> list[dict]:
    guess = findings.get("defect_type")
    known = {singular(guess["name"]), singular(guess.get("runner_up") or "")} - {""} if guess else set()
    why = f"the defect-type expert says {guess['name']}" if guess else "the findings name no defect type"
    claims = []
    for clause in clauses(body):
        if TYPE_UNKNOWN.search(clause) or ECHO.search(clause):
            continue  # "I cannot name the defect type", "the scratch you asked about"
        for m in vocab.type_assert.finditer(clause):
            if re.search(r"\bnot\s+$", clause[: m.start()]):
                continue  # "not likely a scratch"
            name = singular(m["t"])
            claims.append(claim_of("type", sentence, f"the defect is a {name}", name in known, why))
    return claims


ELSEWHERE = re.compile(r"\b(?:rest|remainder|elsewhere|else|apart from|except|other (?:parts|areas|regions))\b")
ONE_AREA = re.compile(r"\b(?:the|this|that|one|an?) (?:area|region|spot)\b")
WHOLE = re.compile(r"\b(?:every|whole|entire|all)\b")


def reference_claims(findings: dict, sentence: str, body: str) -> list[dict]:
    if not REF_CONTEXT.search(body):
        return []
    n_normal = findings.get("n_normal", 0)
    said = {int(n) for n in re.findall(r"(?<![\w.])(\d+)\s+(?:normal\s+|good\s+)?(?:reference\s+)?images\b", body)}
    claims = []
    for clause in clauses(body):
        polarity = ref_polarity(clause)
        if polarity == "match":
            if ELSEWHERE.search(clause):
                continue  # "the rest of the image matches them" is fine on a defective image
            one_area = PLACE_MENTION.search(clause) or ONE_AREA.search(clause)
            if one_area and not WHOLE.search(clause):
                continue  # one area matching says nothing about the rest
        if polarity is None:
            continue
        defective = polarity == "differ"
        claim = "differs from the references (anomaly)" if defective else "matches the references (normal)"
        ok, why = defective == findings["anomalous"], truth_name(findings)
        if n_normal == 0:
            ok, why = False, "zero-shot: no reference images were compared"
        elif said - {n_normal}:
            ok, why = False, f"{n_normal} reference images were compared, not {', '.join(map(str, sorted(said)))}"
        claims.append(claim_of("reference", sentence, claim, ok, why))
    return claims


# --- the checker ------------------------------------------------------------------------------------------


def claim_of(kind: str, sentence: str, claim: str, ok: bool, why: str) -> dict:
    return {"kind": kind, "sentence": sentence, "claim": claim, "ok": bool(ok), "why": "" if ok else why}


def sentence_claims(findings: dict, question: str, sentence: str, vocab: Vocab) -> list[dict]:
    body = body_of(normalise(sentence))
    asks_where = bool(re.search(r"\bwhere\b", normalise(question)))
    verdicts = [
        claim_of("verdict", sentence, verdict_name(d), d == findings["anomalous"], truth_name(findings))
        for d in dict.fromkeys(stated_verdicts(body, vocab))
    ]
    locations = location_claims(findings, sentence, body, vocab, loose=asks_where)
    says_defect_at = any(c["kind"] == "location" and c["claim"].startswith("defect at") for c in locations)
    if says_defect_at and not verdicts:  # naming the defect's place says there is one
        claim = "defective (a defect's place is named)"
        verdicts.append(claim_of("verdict", sentence, claim, findings["anomalous"], truth_name(findings)))
    found = [
        *verdicts,
        *locations,
        *size_claims(findings, sentence, body),
        *count_claims(findings, sentence, body),
        *confidence_claims(findings, sentence, body, vocab),
        *type_claims(findings, sentence, body, vocab),
        *reference_claims(findings, sentence, body),
    ]
    unique = {(c["kind"], c["claim"]): c for c in reversed(found)}  # "10.20% ... 10.20%" is one claim
    return [c for c in found if unique[(c["kind"], c["claim"])] is c]


def check_answer(findings: dict, question: str, answer: str) -> list[dict]:
    """Every claim the answer makes about the image, each checked against the findings."""
    vocab = Vocab(findings)
    sentences = split_sentences(answer)
    claims = polarity_claims(findings, question, sentences[0]) if sentences else []
    for sentence in sentences:
        claims += sentence_claims(findings, question, sentence, vocab)
    return claims


# --- false premises ---------------------------------------------------------------------------------------


def premised(findings: dict, question: str, vocab: Vocab) -> tuple[str, frozenset[str]] | None:
    """(defect noun, grid place or empty) of a false premise in the question, or None."""
    q = normalise(question)
    if re.search(r"\b(?:if|whether)\b", q):
        return None  # "if there is a defect, where is it?" presupposes nothing
    asks_place = re.match(  # "is the scratch on the left?" asks where it is; it takes only its existence for granted
        rf"^(?:is|are|was|were)\s+(?:the|this|that)\s+.*\b{PLACE}{HAND}"
        r"(?:\s+(?:corner|side|edge|part|area|half)|\s+of the (?:image|picture|part|object))?\s*\??$",
        q,
    )
    regions = region_places(findings)
    for m in vocab.premise_np.finditer(q):
        noun = singular(m["noun"])
        if not findings["anomalous"]:
            return noun, frozenset()
        place = place_of(m["mid"]) or (place_of(m["place"]) if m["place"] and not asks_place else frozenset())
        if place and not any(fits(place, r) for r in regions):
            return noun, place
    return None


def premise(findings: dict, question: str) -> str | None:
    """A short description of what the question wrongly takes for granted (a defect, or its place), or None."""
    found = premised(findings, question, Vocab(findings))
    if found is None:
        return None
    noun, place = found
    if not place:
        return f"presupposes a {noun}, but the image is not anomalous"
    at = ", ".join(r["location"] for r in findings["regions"])
    return f"presupposes a {noun} at the {place_name(place)}, but the anomalous regions are at: {at}"


REJECT_EXISTENCE = re.compile(r"\b(?:does|do) not exist\b|\bno such\b|\bnothing to (?:measure|locate|name)\b")


def premise_corrected(findings: dict, question: str, answer: str) -> bool:
    """True when the answer rejects the question's false premise (True also when there is none)."""
    vocab = Vocab(findings)
    found = premised(findings, question, vocab)
    if found is None:
        return True
    noun, place = found
    text = normalise(answer)
    claims = check_answer(findings, question, answer)
    says_normal = any(c["kind"] == "verdict" and c["claim"] == "not defective" for c in claims)
    rejects_noun = re.search(rf"\bno\s+(?:[\w-]+\s+){{0,2}}?{vocab.noun}\b|\bnot an?\s+{vocab.noun}\b", text)
    if not place:  # a defect on a normal image: the answer must deny it and claim nothing of it
        accepts = any(c["kind"] in ("size", "type") for c in claims) or any(
            not c["ok"] for c in claims if c["kind"] in ("verdict", "polarity", "location", "count")
        )
        rejects = says_normal or rejects_noun or REJECT_EXISTENCE.search(text)
        return bool(rejects) and not accepts
    places = [p for s in split_sentences(answer) for p in places_in(body_of(normalise(s)), vocab, loose=True)]
    accepts = any(not negated and not peak and overlaps(p, place) for p, negated, peak in places)
    elsewhere = any(not negated and not overlaps(p, place) for p, negated, _ in places)
    denied_there = any(negated and overlaps(p, place) for p, negated, _ in places)
    rejects = denied_there or elsewhere or says_normal or REJECT_EXISTENCE.search(text)
    return bool(rejects) and not accepts
