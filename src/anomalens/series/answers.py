"""Grounded answers about a series: findings taken from a `SeriesResult`, then a composer that answers
only from them — is anything wrong, when, which sensor, how sure, what normal looks like, what happened.

A criteria file (`language.criteria`: name, description, known defects) works as for images: the name
is what the series is called, the description is what normal looks like in a person's words, and a
window whose kind (spike, drop, drift, …) a known defect names is reported as that defect.

`SeriesChat` puts a language-model backend in front, as `language.ChatSession` does for images: the model
answers from the findings as text, and a guard replaces its answer with the grounded one when it takes the
other side on whether anything is wrong, or names a time the findings do not hold.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

from ..language.claims import read_claims
from ..language.criteria import Criteria
from ..language.errors import BackendError
from .detector import SeriesResult

if TYPE_CHECKING:
    from ..language.models import LanguageModel


@dataclass(frozen=True)
class WindowFinding:
    start: str
    end: str
    peak: str
    channels: list[str]
    kind: str
    description: str
    known_defect: str | None = None


@dataclass(frozen=True)
class SeriesFindings:
    name: str
    anomalous: bool
    probability: float
    peak_score: float
    threshold: float
    points: int
    reference_points: int
    channels: list[str]
    normal_ranges: dict[str, tuple[float, float]]
    windows: list[WindowFinding] = field(default_factory=list)
    normal_description: str = ""

    def to_dict(self) -> dict:
        return asdict(self)

    def as_text(self) -> str:
        """The findings as plain lines, for a language model's prompt."""
        lines = [
            f"Series: {self.name}; {self.points} points; channels: {', '.join(self.channels)}.",
            f"Verdict: {'anomalous' if self.anomalous else 'normal'}; anomaly probability {self.probability:.0%} "
            f"(highest score {self.peak_score:.3g}, threshold {self.threshold:.3g} from {self.reference_points} normal points).",
            "Normal ranges: "
            + "; ".join(f"{c} {lo:.4g} to {hi:.4g}" for c, (lo, hi) in self.normal_ranges.items())
            + ".",
        ]
        if self.normal_description:
            lines.append(f"Normal behaviour: {self.normal_description}")
        lines += [
            f"Window {i + 1} (strongest first): {_window_text(w)}; channels {', '.join(w.channels)}."
            for i, w in enumerate(self.windows[:10])
        ]
        return "\n".join(lines)


def series_findings(result: SeriesResult, reference_points: int, criteria: Criteria | None = None) -> SeriesFindings:
    s = result.series
    windows = [
        WindowFinding(
            s.time_text(w.start),
            s.time_text(w.end),
            s.time_text(w.peak),
            w.channels,
            w.kind,
            w.description,
            _known_defect(w.kind, criteria),
        )
        for w in sorted(result.windows, key=lambda w: -w.peak_score)
    ]
    return SeriesFindings(
        name=criteria.name if criteria else "the series",
        anomalous=result.anomalous,
        probability=result.probability,
        peak_score=result.peak_score,
        threshold=result.calibration.threshold,
        points=len(s),
        reference_points=reference_points,
        channels=s.channels,
        normal_ranges={c: (n.low, n.high) for c, n in zip(s.channels, result.normals)},
        windows=windows,
        normal_description=criteria.description if criteria else "",
    )


def _known_defect(kind: str, criteria: Criteria | None) -> str | None:
    for d in criteria.defects if criteria else ():
        if kind.split()[0] in f"{d.name} {d.description}".lower():
            return d.name
    return None


TOPICS = (  # checked in order: the first topic whose words the question holds answers it
    ("normal", ("normal look", "look like", "normal range", "usually", "normal behav", "expected")),
    ("sensor", ("sensor", "channel", "signal", "which column", "which variable", "which measure")),
    ("sure", ("sure", "confiden", "certain", "probab", "how likely")),
    ("when", ("when", "what time", "where", "which window", "how long")),
    ("what", ("what happened", "what kind", "what type", "describe", "what is it", "what was")),
    ("verdict", ("wrong", "anomal", "problem", "ok", "fine", "normal", "issue", "fault", "defect")),
)


def answer_series(question: str, f: SeriesFindings) -> str:
    q = question.lower()
    topic = next((t for t, words in TOPICS if any(w in q for w in words)), "verdict")
    return {"normal": _normal, "sensor": _sensor, "sure": _sure, "when": _when, "what": _what, "verdict": _verdict}[
        topic
    ](f)


def _window_text(w: WindowFinding) -> str:
    what = f"{w.known_defect} ({w.description})" if w.known_defect else w.description
    span = w.start if w.start == w.end else f"from {w.start} to {w.end}"
    return f"{span}, peaking at {w.peak}: {what}"


def _verdict(f: SeriesFindings) -> str:
    if not f.anomalous:
        return f"No, nothing is wrong with {f.name}: no window scores above the threshold learnt from normal data."
    n = len(f.windows)
    first = (
        f"Yes: {f.name} has {n} anomalous window{'s' if n > 1 else ''}. The strongest is {_window_text(f.windows[0])}"
    )
    return first + (f" (on {', '.join(f.windows[0].channels)})." if len(f.channels) > 1 else ".")


def _when(f: SeriesFindings) -> str:
    if not f.anomalous:
        return f"Nowhere: {f.name} stays within what the normal data shows."
    lines = [f"{i + 1}. {_window_text(w)}" for i, w in enumerate(f.windows[:5])]
    more = f" (and {len(f.windows) - 5} more)" if len(f.windows) > 5 else ""
    return "The anomalous windows, strongest first" + more + ":\n" + "\n".join(lines)


def _sensor(f: SeriesFindings) -> str:
    if not f.anomalous:
        return f"No sensor of {f.name} ({', '.join(f.channels)}) leaves its normal behaviour."
    counts: dict[str, int] = {}
    for w in f.windows:
        counts[w.channels[0]] = counts.get(w.channels[0], 0) + 1
    main = f.windows[0].channels[0]
    others = ", ".join(f"{c} ({k})" for c, k in counts.items() if c != main)
    return f"The sensor driving the strongest anomaly ({f.windows[0].peak}) is {main}." + (
        f" Other windows are driven by: {others}." if others else ""
    )


def _sure(f: SeriesFindings) -> str:
    level = "high" if f.probability >= 0.9 or f.probability <= 0.1 else "moderate"
    verdict = "anomalous" if f.anomalous else "normal"
    return (
        f"My confidence that {f.name} is {verdict} is {level}: the anomaly probability is {f.probability:.0%}. "
        f"Its highest score {f.peak_score:.3g} against the threshold {f.threshold:.3g}, which the extremes of "
        f"{f.reference_points} normal reference points set (no hand-set threshold)."
    )


def _normal(f: SeriesFindings) -> str:
    ranges = "; ".join(f"{c} between {lo:.4g} and {hi:.4g}" for c, (lo, hi) in f.normal_ranges.items())
    words = f" {f.normal_description}" if f.normal_description else ""
    return f"In the {f.reference_points} normal reference points, {ranges} (1st to 99th percentile).{words}"


def _what(f: SeriesFindings) -> str:
    if not f.anomalous:
        return f"Nothing unusual happened in {f.name}."
    return " ".join(f"{i + 1}) {w.known_defect or w.kind}: {w.description}." for i, w in enumerate(f.windows[:5]))


SERIES_PROMPT = (
    "You are AnomaLens, an assistant for industrial monitoring. A detector has inspected a time series; its "
    "findings below are facts. Answer the user's question in one or two sentences, using only these facts, "
    "and write times exactly as they are written there.\n\nFindings:\n{facts}"
)
# denials in words a series answer uses, beyond the image guard's ("no defect", "looks normal", …)
DENIAL = re.compile(
    r"\bnothing (is |was |looks )?(wrong|unusual|anomalous|abnormal)|\beverything (is|was|looks) (normal|fine|ok)|"
    r"\b(not|unable to|cannot|can't|did not|didn't|does not|doesn't) (be )?(able to )?(find|detect|see|show) (any )?anomal"
)
TIME = re.compile(r"\d{4}-\d{2}-\d{2}(?: \d{2}:\d{2}(?::\d{2})?)?")


@dataclass
class SeriesTurn:
    question: str
    answer: str
    backend: str
    grounded_answer: str
    model_answer: str | None = None
    problems: list[str] = field(default_factory=list)
    corrected: bool = False
    model_error: str | None = None  # why the language model gave no answer (the grounded one is shown instead)

    def to_dict(self) -> dict:
        return asdict(self)


class SeriesChat:
    """Questions about one series: the grounded composer alone, or a language model checked against it."""

    def __init__(self, findings: SeriesFindings, model: LanguageModel | None = None, guard: bool = True):
        self.findings, self.model, self.guard = findings, model, guard
        self.turns: list[SeriesTurn] = []

    def ask(self, question: str) -> SeriesTurn:
        grounded = answer_series(question, self.findings)
        if self.model is None:
            turn = SeriesTurn(question, grounded, "grounded", grounded)
        else:
            messages = [{"role": "system", "content": SERIES_PROMPT.format(facts=self.findings.as_text())}]
            for t in self.turns:
                messages += [{"role": "user", "content": t.question}, {"role": "assistant", "content": t.answer}]
            try:
                reply = self.model.complete(messages + [{"role": "user", "content": question}])
            except BackendError as error:  # a model that fails or dies: the findings still answer
                turn = SeriesTurn(question, grounded, "grounded", grounded, model_error=str(error))
            else:
                problems = self.check(reply) if self.guard else []
                answer = grounded if problems else reply
                turn = SeriesTurn(question, answer, self.model.name, grounded, reply, problems, bool(problems))
        self.turns.append(turn)
        return turn

    def check(self, text: str) -> list[str]:
        """What in a model's answer contradicts the findings."""
        problems = []
        claims = read_claims(text)
        says = False if DENIAL.search(text.lower()) else claims.anomalous
        if says is not None and says != self.findings.anomalous:
            problems.append(
                f"says {'an anomaly' if claims.anomalous else 'no anomaly'}; the detector found the opposite"
            )
        facts = self.findings.as_text()
        problems += [f"names {t}, which no finding holds" for t in TIME.findall(text) if t not in facts]
        return problems
