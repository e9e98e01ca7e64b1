"""The grounded answer to each thing a question may ask (the verdict, where, how many, how large, how sure,
against the references, which type, what normal looks like, why, what next), from the findings alone and in
AnomalyGPT's words. The composer picks them by the question's intents; the guard states the facts a wrong
sentence got wrong with them."""

from __future__ import annotations

from ..regions import location_names
from ..result import uncertain, uncertain_note
from .findings import Findings

# confidence above this is high; a verdict in the UNCERTAIN band is low, and between them it is moderate
HIGH_CONFIDENCE = 0.90


def named_places(regions) -> str:
    """ "the bottom left", "the bottom left and the center", … (strongest region first); "the whole" when no
    region is marked (an engine that gives a verdict without a map's regions)."""
    names = [f"the {name}" for name in location_names(regions)] or ["the whole"]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def unmarked(f: Findings) -> str:
    """A defective verdict with no region marked (an engine whose results carry no map's regions)."""
    return (
        f"No single place is marked: the image is judged anomalous as a whole (its peak is at the {f.peak_location})."
    )


def _hedge(findings: Findings) -> str:
    """ " The verdict is uncertain: 0.64 — a second look is advised …" for an uncertain verdict, else ""."""
    if uncertain(findings.probability):
        return (
            f" The verdict is {uncertain_note(findings.probability)}: the image is close to the decision "
            "threshold, so a person should check it."
        )
    return ""


def verdict_clause(f: Findings) -> str:
    """ "there is an anomaly in the image, at the bottom left of the image", or "there is no anomaly …"."""
    where = f" in the {f.class_name}" if f.class_name else " in the image"
    if not f.anomalous:
        return f"there is no anomaly{where}"
    some = "are anomalies" if len(f.regions) > 1 else "is an anomaly"
    return f"there {some}{where}, at {named_places(f.regions)} of the image"


def answer_defect(f: Findings, focus: int | None) -> str:
    return ("Yes, " if f.anomalous else "No, ") + verdict_clause(f) + "." + _hedge(f)


def answer_good(f: Findings, focus: int | None) -> str:
    """The same verdict for a question whose yes means good ("is it OK?", "can it ship?")."""
    reply = f"No, the {f.subject} is defective: " if f.anomalous else f"Yes, the {f.subject} looks normal: "
    return reply + verdict_clause(f) + "." + _hedge(f)


def answer_where(f: Findings, focus: int | None) -> str:
    if not f.anomalous:
        return (
            f"There is no anomaly to locate. The most unusual spot is at the {f.peak_location} of the image, "
            "but it stays within what normal images show."
        )
    if focus is None:
        return unmarked(f)
    region = f.regions[focus]
    detail = (
        f"The anomaly is at the {region.location} of the image, around pixel "
        f"({region.centroid[0]:.0f}, {region.centroid[1]:.0f}), inside the box x {region.box[0]}–{region.box[2]}, "
        f"y {region.box[1]}–{region.box[3]}."
    )
    if len(f.regions) > 1:
        others = [r for i, r in enumerate(f.regions) if i != focus]
        detail += f" There {'is' if len(others) == 1 else 'are'} also {_count_words(len(others), 'region')} at {named_places(others)}."
    return detail


def answer_count(f: Findings, focus: int | None) -> str:
    if not f.anomalous:
        return "There are no anomalous regions."
    n = len(f.regions)
    if n == 0:
        return "No single region is marked: the image is judged anomalous as a whole."
    return f"There {'is' if n == 1 else 'are'} {_count_words(n, 'anomalous region')}, at {named_places(f.regions)} of the image."


def answer_size(f: Findings, focus: int | None) -> str:
    if not f.anomalous:
        return "There is no anomaly, so nothing to measure."
    if focus is None:
        return unmarked(f)
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
    if focus is None:
        return unmarked(f)
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
    if f.anomalous and focus is None:
        text += " " + unmarked(f)
    elif f.anomalous and focus is not None:
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
            + (f" Look at {named_places(f.regions)} of the image first." if f.anomalous else "")
        )
    if f.anomalous:
        return (
            f"The {f.subject} should be set aside for rework or scrap; look at {named_places(f.regions)} of the image "
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
