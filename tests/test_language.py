"""The language layer without a language model: grounded answers, chat context, the guard, criteria files."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import yaml

from anomalens.calibration import Calibration
from anomalens.inspector import InspectionResult
from anomalens.language import ChatSession, CriteriaError, Findings, classify, findings_from, load_criteria, read_claims
from anomalens.language.composer import compose
from anomalens.language.criteria import parse_criteria
from anomalens.language.findings import DefectGuess
from anomalens.language.guard import check
from anomalens.regions import find_regions

CAL = Calibration(
    image_threshold=1.0,
    image_scale=0.1,
    pixel_threshold=0.5,
    region_threshold=0.6,
    pixel_floor=0.1,
    n_normal=12,
    method="leave-one-out",
)
CELLS = {  # cell name → a point inside it on a 300 × 300 image (x, y)
    "top left": (50, 50),
    "top": (150, 50),
    "top right": (250, 50),
    "left": (50, 150),
    "center": (150, 150),
    "right": (250, 150),
    "bottom left": (50, 250),
    "bottom": (150, 250),
    "bottom right": (250, 250),
}


def result_with_blobs(blobs: list[tuple[int, int, int]], score: float = 1.5, size: int = 300) -> InspectionResult:
    """An inspection result whose map holds round blobs (x, y, radius), found by the real region code."""
    yy, xx = np.mgrid[0:size, 0:size]
    anomaly_map = np.full((size, size), 0.1, np.float32)
    for i, (x, y, r) in enumerate(blobs):
        anomaly_map[(xx - x) ** 2 + (yy - y) ** 2 <= r * r] = 1.0 - 0.05 * i
    anomalous = score >= CAL.image_threshold
    probability = CAL.probability(score)
    return InspectionResult(
        source="part.png",
        score=score,
        anomalous=anomalous,
        probability=probability,
        confidence=max(probability, 1 - probability),
        anomaly_map=anomaly_map,
        regions=find_regions(anomaly_map, 0.5) if anomalous else [],
        image_size=(size, size),
    )


def findings(blobs, score=1.5, **kw) -> Findings:
    return findings_from(result_with_blobs(blobs, score), CAL, expert="patchcore", **kw)


@pytest.mark.parametrize("cell", list(CELLS))
def test_defect_answer_names_each_grid_cell(cell):
    x, y = CELLS[cell]
    answer = compose("Is there any anomaly in the image?", findings([(x, y, 20)]))
    assert answer.text == f"Yes, there is an anomaly in the image, at the {cell} of the image."
    assert answer.anomalous and answer.locations == [cell]


def test_several_regions_are_listed_strongest_first_and_counted():
    f = findings([(150, 150, 12), (50, 250, 30)])  # the center blob peaks higher; the bottom-left one is larger
    assert compose("Is there a defect?", f).text == (
        "Yes, there are anomalies in the image, at the center and the bottom left of the image."
    )
    assert compose("How many defects are there?", f).text.startswith("There are two anomalous regions")
    assert compose("where is the defect?", f).text.startswith("The anomaly is at the center")
    assert compose("where is the largest one?", f).text.startswith("The anomaly is at the bottom left")
    assert compose("where is the second one?", f).text.startswith("The anomaly is at the bottom left")


def test_no_defect_answers():
    f = findings([], score=0.5)
    assert compose("Is there any anomaly?", f).text == "No, there is no anomaly in the image."
    assert compose("How large is the defect?", f).text == "There is no anomaly, so nothing to measure."
    assert compose("where is the defect?", f).text.startswith("There is no anomaly to locate")
    assert "high: 100%" in compose("how sure are you?", f).text


def test_low_confidence_is_flagged_for_a_person():
    f = findings([(150, 150, 20)], score=1.02)  # just above the threshold
    assert f.confidence < 0.7
    note = f"uncertain: {f.probability:.2f} — a second look is advised"
    text = compose("Is it defective?", f).text
    assert text.startswith("Yes, there is an anomaly") and note in text and "a person should check it" in text
    sure = compose("How confident are you?", f).text
    assert "low" in sure and note in sure
    assert (
        "second look" in compose("What should I do next?", f).text.lower()
        or "person" in compose("What should I do next?", f).text
    )
    assert "uncertain" not in compose("Is it defective?", findings([(150, 150, 20)], score=3.0)).text


def test_class_name_criteria_and_defect_type():
    rules = load_criteria_text(
        "name: metal plate\ndescription: a flat plate with four holes\n"
        "defects: [scratch, {name: dent, description: a round depression}]\n"
    )
    f = findings([(250, 50, 20)], criteria=rules)
    assert compose("Is there a defect?", f).text.startswith(
        "Yes, there is an anomaly in the metal plate, at the top right"
    )
    assert "scratch, dent" in compose("Which defect is it?", f).text
    assert "a flat plate with four holes" in compose("What should a normal part look like?", f).text
    typed = findings([(250, 50, 20)], defect_type=DefectGuess("scratch", 0.83, "dent"))
    assert compose("what kind of defect is it?", typed).text.startswith("It most likely is a scratch")


def test_size_reference_and_summary():
    f = findings([(150, 150, 30)], references=("good1.png", "good2.png"))
    size = compose("How big is it?", f).text
    assert "covers about" in size and "61 × 61 pixels" in size
    assert (
        "12 normal reference images (good1.png, good2.png)"
        in compose("How does it differ from the references?", f).text
    )
    summary = compose("Describe the image", f).text
    assert summary.startswith("Yes, there is an anomaly") and "covers about" in summary and "confidence" in summary


def test_intents():
    assert classify("Is there a defect and where is it?") == ["defect", "where"]
    assert classify("How large is the defect?") == ["size"]
    assert classify("hello") == []
    assert compose("hello", findings([], score=0.5)).intents == ["summary"]


def test_chat_keeps_context_across_turns():
    f = findings([(50, 250, 30), (250, 50, 12)])
    session = ChatSession(f)
    assert "bottom left" in session.ask("Where is the defect?").answer
    assert session.ask("And the other one?").answer.startswith("The anomaly is at the top right")
    second = session.ask("How big is it?").answer  # "it" is still the top-right region
    assert second.startswith("The anomaly at the top right covers")
    assert session.ask("and the largest?").answer.startswith("The anomaly at the bottom left")
    record = json.loads(json.dumps(session.to_dict()))
    assert [t["question"] for t in record["turns"]][:2] == ["Where is the defect?", "And the other one?"]


def test_read_claims():
    assert read_claims("Yes, there is a scratch at the upper-left corner.").anomalous is True
    assert read_claims("Yes, there is a scratch at the upper-left corner.").locations == ["top left"]
    assert read_claims("No, the part looks normal.").anomalous is False
    assert read_claims("The image shows a battery.").anomalous is None
    assert read_claims("A dent in the middle and one at the bottom").locations == ["center", "bottom"]
    assert read_claims("At the bottom, and a second at the top left").locations == ["bottom", "top left"]


class ScriptedModel:
    """A stand-in language model that replies with fixed text (the real ones are in test_llm.py)."""

    name, vision = "scripted", False

    def __init__(self, *replies):
        self.replies, self.seen = list(replies), []

    def complete(self, messages):
        self.seen.append(messages)
        return self.replies.pop(0)


def test_guard_corrects_contradictions_and_reports_them():
    f = findings([(50, 250, 20)])
    model = ScriptedModel(
        "No, the weld looks fine.",
        "It is at the top right.",
        "Yes, at the bottom left.",
        "The product is a product of the grid.",
        "It is somewhere.",
    )
    session = ChatSession(f, model)
    turn = session.ask("Is there a defect?")
    assert (
        turn.guard.corrected and turn.answer == turn.grounded_answer and turn.model_answer == "No, the weld looks fine."
    )
    assert "no defect" in turn.guard.problems[0]
    turn = session.ask("Where is it?")
    assert turn.guard.corrected and "top right" in turn.guard.problems[0]
    turn = session.ask("Is there a defect?")
    assert turn.guard.consistent and turn.answer == "Yes, at the bottom left."
    turn = session.ask("Is there a defect?")  # an answer that takes no side is no answer
    assert turn.guard.corrected and "does not say whether" in turn.guard.problems[0]
    turn = session.ask("Where is it?")
    assert turn.guard.corrected and "does not say where" in turn.guard.problems[0]
    # the model saw the grounded facts and the conversation so far
    system, *rest = model.seen[-1]
    assert "Region 1: at the bottom left" in system["content"] and len(rest) == 9


def test_guard_judge_mode_records_both_opinions():
    f = findings([], score=0.5)
    model = ScriptedModel("Yes, there is a crack at the center.", "ASSISTANT\nThe crack is clearly visible.")
    turn = ChatSession(f, model, guard="judge").ask("Any defect?")
    assert turn.answer == "Yes, there is a crack at the center."
    assert turn.guard.judge["decision"] == "model" and not turn.guard.corrected
    assert turn.grounded_answer.startswith("No, there is no anomaly")
    assert check("Yes, a crack.", compose("Any defect?", f), f)


def load_criteria_text(text):
    return parse_criteria(yaml.safe_load(text))


def test_criteria_file_errors_name_the_file(tmp_path):
    good = tmp_path / "plate.yaml"
    good.write_text("name: plate\ndefects:\n  - name: scratch\n    description: a thin line\n")
    rules = load_criteria(good)
    assert rules.name == "plate" and rules.defects[0].description == "a thin line"
    for text, reason in [
        ("name: [1, 2]\n", "'name'"),
        ("colour: red\nname: x\n", "unknown field"),
        ("name: x\ndefects: [{description: y}]\n", "defects[0]"),
        ("name: x\n  bad: : :\n", "YAML"),
    ]:
        bad = tmp_path / "bad.yaml"
        bad.write_text(text)
        with pytest.raises(CriteriaError, match=re.escape(reason)) as info:
            load_criteria(bad)
        assert str(bad) in str(info.value)
    with pytest.raises(CriteriaError, match="not found"):
        load_criteria(tmp_path / "missing.yaml")


GOOD_QUESTIONS = [  # a yes means the part is good
    "Is the part good?",
    "Is it OK?",
    "Is it okay to ship?",
    "Is the weld acceptable?",
    "Is it fine to use?",
    "Is it normal?",
    "Is it defect-free?",
    "Is it free of defects?",
    "Can it ship?",
    "Does it pass inspection?",
    "Should it be accepted?",
]
DEFECT_QUESTIONS = [  # a yes means the part is defective
    "Is there a defect?",
    "Is it defective?",
    "Should it be rejected?",
    "Does it fail inspection?",
    "Is anything wrong with it?",
    "Is there a defect, or is it OK?",
]


@pytest.mark.parametrize("question", GOOD_QUESTIONS)
def test_goodness_questions_get_the_verdict_in_their_polarity(question):
    defective, normal = findings([(50, 250, 20)]), findings([], score=0.5)
    assert classify(question) == ["good"]
    answer = compose(question, defective)
    assert answer.text.startswith("No, the object is defective: there is an anomaly in the image, at the bottom left")
    assert read_claims(answer.text, asks_good=True).anomalous is True
    answer = compose(question, normal)
    assert answer.text == "Yes, the object looks normal: there is no anomaly in the image."
    assert read_claims(answer.text, asks_good=True).anomalous is False


@pytest.mark.parametrize("question", DEFECT_QUESTIONS)
def test_defect_questions_keep_their_polarity(question):
    assert classify(question) == ["defect"]
    assert compose(question, findings([(50, 250, 20)])).text.startswith("Yes, there is an anomaly")
    assert compose(question, findings([], score=0.5)).text == "No, there is no anomaly in the image."


def test_goodness_words_in_other_questions_ask_no_verdict():
    assert classify("What does a good part look like?") == ["criteria"]
    assert classify("How does it differ from the good parts?") == ["reference"]
    assert classify("Can you tell me where the defect is?") == ["where", "summary"]


@pytest.mark.parametrize(
    ("reply", "good_question", "defect_question"),
    [  # what a reply claims (True: a defect) to "is it good?" and to "is there a defect?"
        ("Yes, it is good.", False, None),
        ("Yes.", False, True),
        ("No.", True, False),
        ("No, it is not good.", True, None),  # to "is there a defect?" a no and a "not good" disagree
        ("No, it should not ship: there is a crack at the top.", True, None),
        ("Yes, it can be shipped.", False, None),
        ("It does not pass: it should be rejected.", True, True),
        ("No defects: the part passes.", False, False),
        ("Yes, there is a scratch at the left.", None, True),
        ("No, there is no defect.", None, False),
    ],
)
def test_claims_are_read_in_the_question_polarity(reply, good_question, defect_question):
    assert read_claims(reply, asks_good=True).anomalous is good_question
    assert read_claims(reply).anomalous is defect_question


@pytest.mark.parametrize("question", ["Is the part good?", "Can it ship?", "Is it acceptable?"])
def test_guard_judges_a_models_yes_no_against_the_question_polarity(question):
    defective, normal = findings([(50, 250, 20)]), findings([], score=0.5)
    assert check("Yes, it is good.", compose(question, defective), defective)  # says good; the expert found a defect
    assert check("Yes.", compose(question, defective), defective)
    assert not check(
        "No, it is not good: there is a defect at the bottom left.", compose(question, defective), defective
    )
    assert not check("Yes, it looks fine.", compose(question, normal), normal)
    assert check("No, it is defective.", compose(question, normal), normal)
    assert "does not say whether" in check("It is a metal part.", compose(question, normal), normal)[0].text
    session = ChatSession(defective, ScriptedModel("Yes, it is good.", "No, it is not good."))
    turn = session.ask(question)
    assert turn.guard.corrected and turn.answer.startswith("No, the object is defective")
    assert session.ask(question).guard.consistent
