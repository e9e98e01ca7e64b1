"""Typed claims of an answer checked against the findings, and the guard that corrects only what is wrong."""

from __future__ import annotations

import pytest

from anomalens.language import ChatSession
from anomalens.language.claim_check import contradiction, false_premise
from anomalens.language.claims import read_claims
from anomalens.language.composer import compose
from anomalens.language.findings import DefectGuess, Findings
from anomalens.language.guard import check
from anomalens.regions import Region

DEFECTIVE = Findings(  # one region at the center, 1.4 % of the image, 49 × 44 px; 72 % sure
    "weld.png",
    anomalous=True,
    probability=0.72,
    confidence=0.72,
    score=48.9,
    threshold=44.9,
    scale=6.7,
    regions=(Region((178, 89, 227, 133), 0.0144, 47.9, (204.0, 108.0), "center"),),
    peak_location="center",
    image_size=(400, 300),
    n_normal=20,
    normal_peak=41.1,
)
NORMAL = Findings(
    "weld.png",
    anomalous=False,
    probability=0.013,
    confidence=0.987,
    score=26.7,
    threshold=44.9,
    scale=6.2,
    regions=(),
    peak_location="top left",
    image_size=(400, 300),
    n_normal=20,
    normal_peak=41.1,
)


def wrong(text: str, f: Findings, asks_good: bool = False) -> list[str]:
    """The kinds of the claims in `text` that contradict `f`."""
    return [c.kind for c in read_claims(text, asks_good).items if contradiction(c, f)]


@pytest.mark.parametrize(
    ("text", "kinds"),
    [
        ("I'm 99.99% sure that the anomaly is not a defect.", ["confidence", "verdict"]),
        ("The anomaly is 10.20% of the image, at the top of the weld.", ["area", "location"]),
        ("The product is 1.44mm in size.", ["physical"]),
        ("It is a scratch.", ["type"]),  # no defect-type expert named it
        ("There are two anomalous regions.", ["count"]),
        ("The box is 120 × 30 pixels.", ["box"]),
        ("It is certainly defective.", ["confidence"]),  # 72 % is not certain
        ("There is no defect at the center.", ["absent"]),
        ("Its score is below the threshold.", ["threshold"]),
        ("The probability of the product being defective is 0.05.", ["confidence"]),
        ("It was compared with no references: it matches the reference images.", ["reference"]),
    ],
)
def test_each_kind_of_wrong_claim_is_caught(text, kinds):
    assert sorted(wrong(text, DEFECTIVE)) == sorted(kinds)


@pytest.mark.parametrize(
    "text",
    [
        "Yes, there is an anomaly in the image, at the center of the image.",
        "The anomaly covers about 1.4% of the image (a box of 49 × 44 pixels).",
        "The anomaly covers roughly 2% of the image.",  # within half a point
        "There is one anomalous region. I am not sure, though (confidence 72%).",
        "There is no anomaly at the left: the only anomaly is at the center of the image.",
        "The weld should be rejected.",
        "The probability that it is defective is 70%.",
    ],
)
def test_claims_within_tolerance_hold(text):
    assert wrong(text, DEFECTIVE) == []


def test_normal_image_claims():
    assert wrong("No, the part looks normal. The most unusual spot is at the top left.", NORMAL) == []
    assert wrong("The most unusual spot is at the bottom right, within what normal images show.", NORMAL) == ["peak"]
    assert sorted(wrong("The scratch on the top is 1.0 mm long.", NORMAL)) == ["location", "physical", "verdict"]
    assert wrong("The crack is 1.5 units long.", NORMAL) == ["verdict"]  # its subject is a defect
    assert wrong("The anomaly score 26.7 is 2.9 normal spreads below the threshold.", NORMAL) == []
    assert wrong("Yes, it is good.", NORMAL, asks_good=True) == []
    assert wrong("Yes, it is good.", DEFECTIVE, asks_good=True) == ["reply", "verdict"]


def test_defect_type_is_checked_against_the_type_expert():
    f = Findings(**{**DEFECTIVE.__dict__, "defect_type": DefectGuess("crack", 0.8, "fray")})
    assert [c.kind for c in read_claims("It is a crack.", type_names=["crack"]).items] == ["type"]
    assert wrong("It most likely is a crack.", f) == [] and wrong("It looks like a fray.", f) == []
    assert wrong("It is a blowhole.", f) == ["type"]
    assert wrong("I cannot name the defect type.", f) == []


def test_false_premises():
    assert false_premise("The scratch on the left — how long is it?", DEFECTIVE) == ["left"]
    assert false_premise("The scratch in the middle — how long is it?", DEFECTIVE) == []
    assert false_premise("How long is the crack?", NORMAL) == ["anything"]
    assert false_premise("Is there a scratch on the left?", DEFECTIVE) == []  # a question, not an assumption
    answer = compose("The scratch on the left — how long is it?", DEFECTIVE).text
    assert answer.startswith("There is no anomaly at the left of the image; the anomaly is at the center.")
    assert compose("How long is the crack?", NORMAL).text == "There is no anomaly, so nothing to measure."


@pytest.mark.parametrize("f", [DEFECTIVE, NORMAL])
@pytest.mark.parametrize(
    "question",
    [
        "Is there a defect?",
        "Is the part good?",
        "Where is it?",
        "How large is it?",
        "How many defects are there?",
        "How sure are you?",
        "What kind of defect is it?",
        "Why?",
        "How does it compare with the references?",
        "What should I do next?",
        "Describe the image.",
        "The scratch on the right — how long is it?",
    ],
)
def test_grounded_answers_hold_by_their_own_check(f, question):
    """The composer's answers are what the guard replaces wrong sentences with: they must pass it."""
    answer = compose(question, f)
    assert check(answer.text, answer, f) == []


def test_why_shows_the_evidence():
    text = compose("Why?", DEFECTIVE).text
    assert "48.9 is above the threshold 44.9" in text and "20 normal images" in text
    assert "at the center" in text and "1.4%" in text and "below 41.1" in text
    assert "below the threshold" in compose("Why do you think so?", NORMAL).text


class Scripted:
    name, vision = "scripted", False

    def __init__(self, *replies):
        self.replies = list(replies)

    def complete(self, messages):
        return self.replies.pop(0)


def test_guard_replaces_only_the_wrong_sentence_and_says_so():
    model = Scripted("The weld is defective. I'm 99.99% sure. It covers 10% of the image.")
    turn = ChatSession(DEFECTIVE, model).ask("How sure are you?")
    answer = "The weld is defective. My confidence that the object is defective is low: 72%."  # 0.72: uncertain
    assert turn.answer.startswith(answer) and "uncertain: 0.72 — a second look is advised" in turn.answer
    assert "10%" not in turn.answer and "about 1.4% of the image" in turn.answer
    report = turn.guard
    assert report.corrected and not report.fallback
    assert [r["sentence"] for r in report.replaced] == ["I'm 99.99% sure.", "It covers 10% of the image."]
    assert check(turn.answer, compose("How sure are you?", DEFECTIVE), DEFECTIVE) == []


def test_guard_adds_what_was_asked_and_denies_a_false_premise():
    session = ChatSession(DEFECTIVE, Scripted("The weld is defective.", "The scratch on the left is long."))
    turn = session.ask("How many defects are there?")
    assert turn.answer == "The weld is defective. There is one anomalous region, at the center of the image."
    assert turn.guard.added and not turn.guard.replaced
    turn = session.ask("The scratch on the left — how long is it?")
    assert turn.answer.startswith("There is no anomaly at the left of the image")
    assert "scratch on the left is long" not in turn.answer and "covers about 1.4%" in turn.answer


def test_guard_falls_back_only_when_nothing_holds_and_drops_an_unfinished_end():
    session = ChatSession(NORMAL, Scripted("There is a crack at the top.", "No, it is fine. The part is a weld and"))
    turn = session.ask("Is there a defect?")
    assert turn.guard.fallback and turn.answer == turn.grounded_answer
    turn = session.ask("Is there a defect?")
    assert not turn.guard.fallback and turn.answer == "No, it is fine."
    assert "breaks off" in turn.guard.replaced[0]["problems"][0]


def test_guard_off_shows_the_model_unchanged():
    turn = ChatSession(DEFECTIVE, Scripted("It is fine."), guard="off").ask("Is there a defect?")
    assert turn.answer == "It is fine." and turn.guard.consistent


@pytest.mark.parametrize(
    ("text", "kinds"),
    [  # contractions, and place words that name no place
        ("There's no anomaly, but it's defective.", ["count", "verdict"]),
        ("It doesn't fail inspection.", ["verdict"]),
        ("There was an anomaly in its making.", []),
        ("The score is lower than the threshold, that's right.", ["threshold"]),
        ("There's only one region.", []),
        ("It was verified with high confidence.", ["confidence"]),
        ("It was compared with 9 normal images.", ["references"]),
    ],
)
def test_spellings_a_model_uses_are_read(text, kinds):
    assert sorted(wrong(text, DEFECTIVE)) == sorted(kinds)


def test_guard_adds_the_type_expert_answer_when_the_model_names_none():
    f = Findings(**{**DEFECTIVE.__dict__, "defect_type": DefectGuess("crack", 0.8, "fray")})
    turn = ChatSession(f, Scripted("The defect is at the center.")).ask("Which defect is it?")
    assert turn.answer.startswith("The defect is at the center. It most likely is a crack")
    turn = ChatSession(DEFECTIVE, Scripted("The defect is at the center.")).ask("Which defect is it?")
    assert turn.answer == "The defect is at the center." and turn.guard.consistent  # no type expert: nothing to add
