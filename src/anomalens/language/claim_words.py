"""The words a free-text answer makes its claims in: grid cells, defect nouns and types, and the patterns that
read a verdict, a yes/no reply, a place free of defects, a size, a count, a certainty, a threshold or a comparison
with the references. `claims` reads sentences with them; `corrections` reads a person's corrections with them."""

import re

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
CELL_WORDS = "|".join(pattern for _, pattern in CELLS)
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
REPLY = re.compile(r"^\W*(yes|no)\b(?! (visible |obvious |apparent )?(anomal|defect|damage|flaw|problem|issue))")
GOOD = r"(normal|fine|ok|okay|flawless|perfect|good|acceptable|defect[- ]free|usable)"
NEGATIVE = re.compile(
    r"\bno (visible |obvious |apparent |real )?(anomal|defect|damage|flaw|problem|issue|distortion|irregularit)|"
    r"\b(does|do) not (have|show|contain) (any |a )?(visible )?(anomal|defect|damage|flaw|distortion|irregularit)|"
    rf"\b(is|looks like) an? {GOOD} (part|product|object|one|sample|piece|item|image)\b|"
    r"\bnot (defective|damaged|anomalous|broken|faulty)|\bwithout (any )?(defect|anomal|flaw|damage)|"
    rf"\bfree (of|from) (any )?(defect|anomal|flaw|damage)|\b(is|looks|appears|seems) (to be )?(\d+ ?% )?{GOOD}\b|"
    r"\b(is|are) not (a |an )?(real |actual )?(defect|anomal|flaw|problem)|"
    r"\b(can|may|should) (be )?(ship|pass|use|accept|approve|release)|\bpasses\b|"
    r"\b(does|did|will|would) not fail\b"
)
POSITIVE = re.compile(
    r"\bthere (is|are|was|were) ((?!no\b|not\b|nothing\b)\w+ ){0,3}(anomal|defect|damage|flaw|crack|scratch|dent|hole)|"
    r"\b(is|looks|appears|seems) (to be )?(defective|damaged|anomalous|broken|faulty)|"
    r"\b(is|are) (a |an )?(small |large |clear |real |visible |tiny )?(defect|anomaly|flaw)s?\b(?![ -](type|score|map))|"
    r"\b(has|have|shows?|contains?|with) (an? |some |several |multiple |many |one or more |two |three )?"
    r"(visible |small |large )?(anomal|defect|flaw|damage)(?!\w*[ -](score|map|detect|type))|"
    rf"\bnot (be |look |seem )?{GOOD}\b|\b(cannot|can not|should not|must not|does not) "
    r"(be )?(ship|pass|use|accept|approve|release)|\bfails\b|\b(should|must) be (rejected|scrapped|discarded|set aside)"
)
# "no anomaly at the left", "nothing on the right", "not at the top": a place named as free of defects
ABSENT = re.compile(
    rf"\b(no|not any|nothing)\b(?:(?!\b(?:but|and)\b)[^.;:,]){{0,40}}?\b(at|on|in|near) the (?P<cell>{CELL_WORDS})\b|"
    rf"\bnot (at|on|in|near) the (?P<other>{CELL_WORDS})\b"
)
DESCRIBED = re.compile(
    rf"(^|[,;:] )(the|this|that|its) ((?!no\b)\w+ )?({DEFECT_NOUNS}) (is|are|was|measures?|covers?|spans?|runs?|has|reaches)\b"
)
PEAK = re.compile(r"\bmost unusual\b|\bwithin what normal\b")  # the normal image's most unusual spot
PERCENT = re.compile(r"(less than |under |below |about |around |roughly |approximately )?(\d+(?:\.\d+)?) ?%")
# "the probability … is 0.04", "confidence of 99.9": a chance given as a bare number (a fraction, or percent above 1)
BARE_CHANCE = re.compile(
    r"\b(probability|chance|likelihood|confidence)\b[^.%]{0,60}?\b(is|of|at)\s*:?\s*(\d+(?:\.\d+)?)\b(?!\s?%)"
    r"(?!\s*(normal|spread|times|images?|regions?|pixels?))"
)
OF_THE_PART = (
    r" ?of (the|its|this) (\w+ )?(image|picture|photo|frame|surface|area|part|product|object|weld|tile|plate)\b"
)
CONFIDENCE_CONTEXT = re.compile(r"\bsure\b|confiden|certain|probab|likel|chance")
DEFECT_CHANCE = re.compile(r"\b(chance|probability|likelihood)\b[^.]*\b(defect|anomal|faulty|bad)")
AREA_CONTEXT = re.compile(
    r"\bof (the|its|this) (image|picture|area|surface|part|product|object|photo|frame)|\bcover|\barea\b|\bsize\b|"
    r"\blarge\b|\bbig\b|\boccup|\btakes up\b|\bspans?\b"
)
CERTAIN = re.compile(
    r"(?<!not )\b(certain(ly)?|definitely|without (a |any )?doubt|no doubt|absolutely sure|"
    r"completely sure|fully confident|very (sure|certain|confident)|high(ly)? confiden\w*)\b|"
    r"(?<!not )\b100 ?% (sure|certain|confident)"
)
UNSURE = re.compile(
    r"\bnot (very |entirely |completely |fully |totally |quite )?(sure|certain|confident)\b|\buncertain\b|\bunsure\b|"
    r"\blow confidence\b|\bdoubtful\b"
)
LEVEL = re.compile(r"\bconfidence\b[^.]*\bis (high|moderate|low)\b")
THRESHOLD = re.compile(
    r"\b(above|over|exceeds?|higher than|beyond|below|under|lower than|within)\s+(the\s+)?(decision\s+|calibrated\s+)?"
    r"threshold"
)
REFERENCE_COUNT = re.compile(
    r"\b(\d+) (?:normal |reference |good |known-good )+(?:reference )?(?:images?|references?|parts?|samples?)\b"
)
BOX = re.compile(r"(\d+) ?[×x] ?(\d+) ?(px|pixels?)")
PHYSICAL = re.compile(r"\d+(?:\.\d+)? ?(mm|cm|µm|um|millimet\w*|centimet\w*|inch\w*|microns?)\b")
NUMBERS = {"no": 0, "zero": 0, "one": 1, "a single": 1, "single": 1, "two": 2, "three": 3, "four": 4, "five": 5}
COUNT = re.compile(  # "also one region", "another two spots", "one of the regions" count no total
    r"(?<!also )(?<!another )(?<!other )(?<!each )(?<!every )(?<!per )(?<!of )(?<![\w.,])"
    r"(?:(?:there (?:is|are|was|were)|found|detected|see|shows?|contains?|has|have|all|i count)\s+)?"
    r"(?:only |just |exactly )?"
    r"(no|zero|one|a single|single|two|three|four|five|\d+)\s+"
    r"((?:separate|distinct|anomalous|defective|different|small|large|suspicious)\s+)*"
    r"(regions?|defects?|anomal(?:y|ies)|areas?|spots?|flaws?)\b"
)
CANNOT_NAME = re.compile(
    r"\b(cannot|can not|unable to|not able to) (name|tell|say|determine|identify)|\bno defect type"
)
TYPE_ASSERTED = (
    r"\b(is|looks like|seems to be|appears to be|resembles|likely|probably|type is|a kind of)\s+(an? |the |some )?"
)
DIFFERS = re.compile(r"\bdiffer|\bunlike\b|\bno (close )?counterpart|\bnot (like|match)|\bdeparts?\b")
MATCHES = re.compile(r"\bmatch(es)?\b|\bsimilar to\b|\bclose counterpart|\blike the\b|\bresembles?\b")
REFERENCES = re.compile(r"\breferences?\b|\b(good|normal) (ones|parts|samples|images|examples)\b")
