"""Consistency guard: every claim of a language model's answer (claims.py) is checked against the vision
expert's findings, and what was asked but not answered is noticed. By default (`correct`) only a wrong sentence
is replaced, by the grounded statement of the same facts, a missing answer is added, and a question's false
premise is denied; the turn's report says what changed. The grounded answer replaces the model's text wholesale
only when none of it holds (a fallback). With `judge` a capable vision-language model looks again and decides,
and both opinions are kept."""

from __future__ import annotations

from dataclasses import dataclass, field

from .answers import ANSWERERS
from .claim_check import contradiction
from .claims import Claims, read_claims, split_sentences
from .composer import Answer, correct_premise, rejects_premise
from .findings import Findings

GUARD_MODES = ("correct", "judge", "off")

# The claims that answer each intent (an anomalous finding, a normal one); an intent not listed needs none.
_ANSWERED_BY: dict[str, tuple[set[str], set[str]]] = {
    "defect": ({"verdict", "reply"}, {"verdict", "reply"}),
    "good": ({"verdict", "reply"}, {"verdict", "reply"}),
    "summary": ({"verdict", "reply"}, {"verdict", "reply"}),
    "where": ({"location"}, {"verdict", "peak"}),
    "count": ({"count"}, {"count", "verdict"}),
    "size": ({"area", "box"}, {"verdict"}),
    "confidence": ({"confidence"}, {"confidence"}),
    "why": ({"threshold"}, {"threshold"}),
    "type": ({"type"}, set()),  # only when a defect-type expert has named it (see check)
}
_UNANSWERED = {
    "defect": "whether there is a defect",
    "good": "whether there is a defect",
    "summary": "whether there is a defect",
    "where": "where the defect is",
    "count": "how many regions there are",
    "size": "how large it is",
    "confidence": "how sure it is",
    "why": "what the verdict rests on (the score against the threshold)",
    "type": "which defect type it is",
}
# The grounded statement that replaces a wrong claim of each kind (an intent of the composer).
_STATEMENT = {
    "location": "where",
    "absent": "where",
    "peak": "where",
    "area": "size",
    "box": "size",
    "physical": "size",
    "count": "count",
    "confidence": "confidence",
    "type": "type",
    "reference": "reference",
    "references": "reference",
    "threshold": "why",
}


@dataclass(frozen=True)
class Problem:
    text: str  # what is wrong, in words
    kind: str  # the claim kind, the intent left unanswered, or "premise"
    sentence: int | None = None  # the model's sentence that makes the claim (None: something is missing)


@dataclass
class GuardReport:
    consistent: bool
    problems: list[str] = field(default_factory=list)
    corrected: bool = False
    replaced: list[dict] = field(default_factory=list)  # {"sentence", "by", "problems"} for each wrong sentence
    added: list[str] = field(default_factory=list)  # grounded statements added: a missing answer, a premise denied
    fallback: bool = False  # none of the model's sentences held: the grounded answer was shown instead
    judge: dict | None = None  # with mode "judge": {"decision": "expert"|"model", "reason": …}

    def to_dict(self) -> dict:
        return {
            "consistent": self.consistent,
            "problems": self.problems,
            "corrected": self.corrected,
            "replaced": self.replaced,
            "added": self.added,
            "fallback": self.fallback,
            "judge": self.judge,
        }


def claims_of(text: str, grounded: Answer, f: Findings) -> Claims:
    """A model's answer read in the question's terms: a yes/no in its polarity, the product's defect types."""
    intents = set(grounded.intents)
    return read_claims(
        text, asks_good="good" in intents, reply_is_verdict=bool({"defect", "good"} & intents), type_names=f.type_names
    )


def check(model_text: str, grounded: Answer, f: Findings) -> list[Problem]:
    """Every claim that contradicts the findings, every asked part left unanswered, and a false premise the
    answer goes along with (empty: the answer holds)."""
    claims = claims_of(model_text, grounded, f)
    problems = [
        Problem("the model " + why, claim.kind, claim.sentence)
        for claim in claims.items
        if (why := contradiction(claim, f))
    ]
    if claims.sentences and not claims.sentences[-1].endswith((".", "!", "?", ")", '"')):
        problems.append(Problem("the model's answer breaks off mid-sentence", "unfinished", len(claims.sentences) - 1))
    kinds = claims.kinds()
    for intent in grounded.intents:
        needed = _ANSWERED_BY.get(intent, (set(), set()))[0 if f.anomalous else 1]
        if intent == "type" and f.defect_type is None:
            continue  # nobody knows the type: a model that names none says nothing wrong
        if needed and not needed & kinds:
            problems.append(Problem(f"the model's answer does not say {_UNANSWERED[intent]}", intent))
    if grounded.premise and not rejects_premise(model_text, grounded.premise, f):
        assumed = (
            "a defect" if grounded.premise == ["anything"] else "a defect at the " + " and ".join(grounded.premise)
        )
        problems.append(Problem(f"the model goes along with the question's assumption of {assumed}", "premise"))
    return problems


def correct(model_text: str, problems: list[Problem], grounded: Answer, f: Findings, report: GuardReport) -> str:
    """The model's answer with each wrong sentence replaced by the grounded statement of the same facts, what
    was not answered added, and a false premise denied first; the grounded answer itself when nothing holds."""
    sentences = split_sentences(model_text)
    wrong: dict[int, list[Problem]] = {}
    for problem in problems:
        if problem.sentence is not None:
            wrong.setdefault(problem.sentence, []).append(problem)
    pieces = _replaced(sentences, wrong, claims_of(model_text, grounded, f), grounded, f, report)
    for problem in problems:
        if problem.sentence is None and problem.kind in ANSWERERS:
            report.added.append(ANSWERERS[problem.kind](f, grounded.focus))
    if any(p.kind == "premise" for p in problems):
        report.added.insert(0, correct_premise(grounded.premise, f))
    report.corrected = True
    if len(wrong) == len(sentences):  # nothing of the model's answer holds
        report.fallback = True
        return grounded.text
    premise = [report.added[0]] if any(p.kind == "premise" for p in problems) else []
    rest = report.added[len(premise) :]
    return " ".join(dict.fromkeys(premise + pieces + rest))  # repeated sentences are said once


def _replaced(
    sentences: list[str],
    wrong: dict[int, list[Problem]],
    claims: Claims,
    grounded: Answer,
    f: Findings,
    report: GuardReport,
) -> list[str]:
    """The model's sentences, each wrong one replaced by the grounded statement of all it spoke of (and noted in
    the report); an unfinished sentence that claims nothing wrong is dropped."""
    verdict = "good" if "good" in grounded.intents else "defect"
    pieces: list[str] = []
    for index, sentence in enumerate(sentences):
        if index not in wrong:
            pieces.append(sentence)
            continue
        kinds = dict.fromkeys(c.kind for c in claims.items if c.sentence == index)  # restate all it spoke of
        if [p.kind for p in wrong[index]] == ["unfinished"]:
            kinds = {}  # an unfinished sentence that claims nothing wrong is dropped
        statements = [ANSWERERS[_STATEMENT.get(kind, verdict)](f, grounded.focus) for kind in kinds]
        replacement = " ".join(dict.fromkeys(statements))
        report.replaced.append({"sentence": sentence, "by": replacement, "problems": [p.text for p in wrong[index]]})
        if replacement:
            pieces.append(replacement)
    return pieces


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
