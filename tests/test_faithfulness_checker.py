"""The bench's independent claim checker (bench/faithfulness_checker.py): hand-written answers, each with the
claims it must raise, ok or not, on findings written out here."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from faithfulness_checker import check_answer, premise, premise_corrected, split_sentences  # noqa: E402

CENTER_REGION = {"box": [100, 120, 149, 164], "area_fraction": 0.014, "peak": 47.9, "centroid": [124, 142]}
CENTER_REGION["location"] = "center"
TOP_LEFT_REGION = {"box": [0, 0, 30, 20], "area_fraction": 0.005, "peak": 46.0, "centroid": [15, 10]}
TOP_LEFT_REGION["location"] = "top left"
TOP_REGION = {"box": [110, 5, 130, 25], "area_fraction": 0.002, "peak": 45.0, "centroid": [120, 15]}
TOP_REGION["location"] = "top"


def anomalous(**changes) -> dict:
    """One region at the center, 1.4% of the image, a 49 × 44 box; 72% sure; 20 references."""
    findings = {
        "source": "img.png", "anomalous": True, "probability": 0.72, "confidence": 0.72, "score": 48.9,
        "threshold": 44.9, "regions": [dict(CENTER_REGION)], "peak_location": "center", "image_size": [256, 256],
        "expert": "patchcore", "n_normal": 20, "references": [f"good_{i}.png" for i in range(20)],
        "class_name": "battery weld", "criteria": None, "defect_type": None,
    }  # fmt: skip
    return findings | changes


def normal(**changes) -> dict:
    return anomalous(anomalous=False, probability=0.01, confidence=0.99, regions=[], peak_location="top left") | changes


THREE_REGIONS = anomalous(regions=[dict(CENTER_REGION), dict(TOP_LEFT_REGION), dict(TOP_REGION)])
CRACK = {"name": "crack", "similarity": 0.81, "runner_up": "scratch"}
WELD_CRITERIA = {"name": "weld", "description": "", "defects": [{"name": "blow_hole", "description": ""}]}


def flagged(findings: dict, question: str, answer: str) -> set[str]:
    return {c["kind"] for c in check_answer(findings, question, answer) if not c["ok"]}


def claims_of(kind: str, findings: dict, answer: str, question: str = "Tell me about it.") -> list[dict]:
    return [c for c in check_answer(findings, question, answer) if c["kind"] == kind]


def only_ok(kind: str, findings: dict, answer: str, question: str = "Tell me about it.") -> bool:
    """The answer makes exactly one claim of this kind; whether it holds."""
    found = claims_of(kind, findings, answer, question)
    assert len(found) == 1, found
    return found[0]["ok"]


# --- the product's own reference answers raise no flag ------------------------------------------------------


@pytest.mark.parametrize(
    "question, answer",
    [
        ("Is there an anomaly?", "Yes, there is an anomaly in the image, at the center of the image."),
        (
            "How sure are you?",
            "My confidence that the object is defective is moderate: 72%. Its anomaly score 48.9 is 0.6 normal "
            "spreads above the threshold 44.9, which 20 normal images set.",
        ),
        ("How big is it?", "The anomaly at the center covers about 1.4% of the image (a box of 49 × 44 pixels)."),
        (
            "Is the part good?",
            "No, the object is defective: there is an anomaly in the image, at the center of the image.",
        ),
        (
            "How does it compare with the references?",
            "Compared with the 20 normal reference images, the area at the center has no close counterpart in any "
            "of them: its local anomaly score reaches 47.9, where normal images stay below 41.1. The rest of the "
            "image matches them.",
        ),
        (
            "What type of defect is it?",
            "I cannot name the defect type: the anomaly map shows where the image departs from normal, not what "
            "kind of defect it is.",
        ),
        (
            "Is there a defect at the left?",
            "There is no anomaly at the left: the only anomaly is at the center of the image.",
        ),
    ],
)
def test_reference_answers_on_an_anomalous_image_raise_no_flag(question, answer):
    claims = check_answer(anomalous(), question, answer)
    assert [c for c in claims if not c["ok"]] == []


@pytest.mark.parametrize(
    "question, answer",
    [
        ("Is there an anomaly?", "No, there is no anomaly in the image."),
        (
            "Where is the anomaly?",
            "There is no anomaly to locate. The most unusual spot is at the top left of the image, but it stays "
            "within what normal images show.",
        ),
        ("How many regions?", "There are no anomalous regions."),
        ("What type is it?", "There is no defect, so there is no defect type to name."),
        (
            "How does it compare with the references?",
            "It matches the 20 normal reference images: every part of it has a close counterpart in them.",
        ),
        ("Is the part good?", "Yes, the object looks normal: there is no anomaly in the image."),
    ],
)
def test_reference_answers_on_a_normal_image_raise_no_flag(question, answer):
    claims = check_answer(normal(), question, answer)
    assert claims
    assert [c for c in claims if not c["ok"]] == []


@pytest.mark.parametrize(
    "question, answer, kinds",
    [
        ("Are you sure?", "I'm 99.99% sure that the anomaly is not a defect.", {"confidence", "verdict"}),
        (
            "How big is it?",
            "The anomaly is 10.20% of the image, which is 10.20% of the top of the battery weld.",
            {"size", "location"},
        ),
        ("Is the part good?", "Yes, there is an anomaly", {"polarity"}),
        ("How big is it?", "The product is 1.44mm in size.", {"size"}),
        ("What is it?", "It is a scratch.", {"type"}),
        ("How many regions?", "There are two anomalous regions.", {"count"}),
    ],
)
def test_wrong_answers_on_an_anomalous_image_are_flagged(question, answer, kinds):
    assert flagged(anomalous(), question, answer) == kinds


def test_a_claim_says_what_and_why():
    (claim,) = claims_of("count", anomalous(), "There are two anomalous regions.")
    assert set(claim) == {"kind", "sentence", "claim", "ok", "why"}
    assert claim["sentence"] == "There are two anomalous regions."
    assert not claim["ok"] and claim["why"]


# --- sentences ----------------------------------------------------------------------------------------------


def test_sentences_split_at_full_stops_not_at_decimals_or_ranges():
    text = "It covers 1.4% of the image. The score is 0.6 normal spreads above. Box x 178–227, y 160–204.\n- Done"
    assert split_sentences(text) == [
        "It covers 1.4% of the image.",
        "The score is 0.6 normal spreads above.",
        "Box x 178–227, y 160–204.",
        "Done",
    ]


# --- verdict ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "answer, says_defective",
    [
        ("The product is defective.", True),
        ("The product is not good.", True),
        ("The weld isn't good.", True),
        ("It should be rejected.", True),
        ("It cannot be shipped.", True),
        ("It does not pass.", True),
        ("Based on the analysis, the image shows an anomaly.", True),
        ("No defects were detected.", False),
        ("I see no defects.", False),
        ("It looks normal.", False),
        ("The anomaly is not a defect.", False),
        ("It can be shipped.", False),
        ("The product is 100% good.", False),
    ],
)
def test_verdict_holds_when_it_matches_the_findings(answer, says_defective):
    assert only_ok("verdict", anomalous(), answer) is says_defective
    assert only_ok("verdict", normal(), answer) is not says_defective


@pytest.mark.parametrize(
    "answer",
    [
        "The most unusual spot is at the top, but it stays within what normal images show.",
        "I cannot name the defect type.",
        "Its anomaly score 12.1 is 2.3 normal spreads below the threshold 44.9, which 20 normal images set.",
        "My confidence that the object is defective is 2%.",
    ],
)
def test_statements_that_are_not_verdicts(answer):
    assert claims_of("verdict", normal(), answer) == []


def test_naming_a_defects_place_on_a_normal_image_is_a_verdict_error_too():
    assert flagged(normal(), "Where is it?", "The scratch is at the top left.") == {"verdict", "location"}


# --- polarity -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "question, answer, says_defective",
    [
        ("Is there a defect?", "Yes.", True),
        ("Any anomaly?", "No, none.", False),
        ("Should it be rejected?", "Yes, it should.", True),
        ("Is the part good?", "Yes.", False),
        ("Is it OK to ship?", "No.", True),
        ("Does it pass?", "Yes, it passes.", False),
        ("Is it free of defects?", "Yes.", False),
        ("Is it fine to use?", "No, it is not.", True),
    ],
)
def test_yes_and_no_mean_what_the_question_asks(question, answer, says_defective):
    assert only_ok("polarity", anomalous(), answer, question) is says_defective
    assert only_ok("polarity", normal(), answer, question) is not says_defective


@pytest.mark.parametrize(
    "question, answer",
    [
        ("Are you sure?", "Yes, I am certain."),  # about certainty, not the verdict
        ("Is there a scratch?", "No."),  # a type the tool cannot know
        ("Is there a defect at the left?", "No."),  # about one place
        ("What is wrong with it?", "No idea."),  # not a yes/no question
    ],
)
def test_yes_and_no_that_are_not_about_the_verdict(question, answer):
    assert claims_of("polarity", anomalous(), answer, question) == []


# --- location -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "answer, ok",
    [
        ("The defect is in the upper-left corner.", True),
        ("There is an anomaly on the left side.", True),  # coarser: fits "top left"
        ("There is an anomaly at the top.", True),
        ("There is an anomaly in the middle.", True),
        ("The weld has a defect on the right side.", False),
        ("There is an anomaly at the bottom left.", False),
        ("There is an anomaly at the top right.", False),  # finer than a region at "top": no fit
    ],
)
def test_location_fits_a_region(answer, ok):
    assert only_ok("location", THREE_REGIONS, answer) is ok


@pytest.mark.parametrize(
    "answer, ok",
    [
        ("There is no anomaly at the bottom.", True),
        ("There is no anomaly at the left.", False),  # a region is at the top left
        ("The anomaly is not at the top right.", True),
    ],
)
def test_absent_location_holds_where_no_region_is(answer, ok):
    assert only_ok("absent_location", THREE_REGIONS, answer) is ok


def test_a_place_denied_and_a_place_named_in_one_sentence():
    claims = check_answer(anomalous(), "Where?", "The anomaly is not at the left but at the center.")
    assert [(c["kind"], c["ok"]) for c in claims if "location" in c["kind"]] == [
        ("absent_location", True),
        ("location", True),
    ]


def test_most_unusual_spot_of_a_normal_image_is_its_peak():
    within = "but it stays within what normal images show."
    assert only_ok("location", normal(), f"The most unusual spot is at the top left of the image, {within}")
    assert not only_ok("location", normal(), f"The most unusual spot is at the bottom right, {within}")


@pytest.mark.parametrize("answer", ["That's right, there is an anomaly.", "On top of that, the weld is defective."])
def test_words_that_are_not_places(answer):
    assert claims_of("location", anomalous(), answer) == []


# --- size ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "findings, answer, ok",
    [
        (anomalous(), "The anomaly covers about 1.9% of the image.", True),  # within 0.5 points
        (anomalous(), "The anomaly covers 2.2% of the image.", False),  # beyond 0.7 (half of 1.4)
        (anomalous(), "The anomaly covers less than 0.1 % of the image.", False),
        (anomalous(regions=[CENTER_REGION | {"area_fraction": 0.0005}]), "It covers less than 0.1 % of it.", True),
        (THREE_REGIONS, "All 3 regions together cover 2.1% of the image.", True),  # the sum
        (THREE_REGIONS, "The one at the top left covers 0.5% of the image.", True),
        (anomalous(), "The anomaly is 1.40 percent of the image.", True),
        (anomalous(), "It is a box of 49 × 44 pixels.", True),
        (anomalous(), "It is a box of 51 x 46 px.", True),  # ±2 px
        (anomalous(), "It is a box of 52 × 44 pixels.", False),
        (anomalous(), "The scratch is about 3 mm long.", False),  # no scale is known
        (anomalous(), "It is 0.5 inches wide.", False),
        (normal(), "The anomaly covers 1.4% of the image.", False),
    ],
)
def test_size(findings, answer, ok):
    assert only_ok("size", findings, answer) is ok


@pytest.mark.parametrize("answer", ["There is nothing to measure.", "I'm 72% sure.", "It is 9% above the threshold."])
def test_statements_that_are_not_sizes(answer):
    assert claims_of("size", anomalous(), answer) == []


# --- count --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "findings, answer, ok",
    [
        (anomalous(), "There is one anomalous region.", True),
        (anomalous(), "There is a single defect.", True),
        (anomalous(), "There are two anomalous regions.", False),
        (THREE_REGIONS, "There are 3 defects.", True),
        (THREE_REGIONS, "All 3 regions together are small.", True),
        (THREE_REGIONS, "There are two regions.", False),
        (normal(), "There are no anomalous regions.", True),
        (anomalous(), "There are no anomalous regions.", False),
    ],
)
def test_count_is_the_number_of_regions(findings, answer, ok):
    assert only_ok("count", findings, answer) is ok


def test_also_one_region_is_not_a_total():
    assert claims_of("count", THREE_REGIONS, "There is also one region at the top.") == []


# --- confidence ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "findings, answer, ok",
    [
        (anomalous(), "Confidence: 72%.", True),
        (anomalous(), "Confidence: 0.72.", True),
        (anomalous(), "My confidence is 85%.", False),  # 0.13 away
        (anomalous(), "I'm 99% sure it is defective.", False),
        (normal(), "The chance that it is defective is 1%.", True),  # P(defective), not the confidence
        (normal(), "The chance that it is defective is 99%.", False),
        (normal(), "I'm 99% sure that it is normal.", True),
        (anomalous(confidence=0.95, probability=0.95), "I am certain.", True),
        (anomalous(), "I am certain.", False),
        (anomalous(), "I'm not sure.", True),
        (normal(), "I'm not sure.", False),
        (anomalous(), "It is definitely defective.", False),
        (anomalous(confidence=0.95, probability=0.95), "My confidence is moderate.", False),
    ],
)
def test_confidence(findings, answer, ok):
    assert only_ok("confidence", findings, answer) is ok


def test_moderate_words_and_number_are_two_claims():
    claims = claims_of("confidence", anomalous(), "My confidence that the object is defective is moderate: 72%.")
    assert [c["ok"] for c in claims] == [True, True]


def test_not_100_percent_sure_is_no_claim():
    assert claims_of("confidence", anomalous(), "I'm not 100% sure.") == []


# --- defect type --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "findings, answer, ok",
    [
        (anomalous(), "It is a scratch.", False),  # no defect type known
        (anomalous(), "It looks like a crack.", False),
        (anomalous(defect_type=CRACK), "It looks like a crack.", True),
        (anomalous(defect_type=CRACK), "Most likely scratches.", True),  # runner-up, plural
        (anomalous(defect_type=CRACK), "It is a dent.", False),
        (anomalous(defect_type=CRACK, criteria=WELD_CRITERIA), "It is probably a blow hole.", False),
        (
            anomalous(defect_type={"name": "blow_hole", "similarity": 0.7, "runner_up": None}),
            "It is a blow hole.",
            True,
        ),
    ],
)
def test_type_is_the_defect_type_experts(findings, answer, ok):
    assert only_ok("type", findings, answer) is ok


@pytest.mark.parametrize(
    "answer",
    [
        "I cannot name the defect type.",
        "There is no defect, so there is no defect type to name.",
        "The scratch you asked about is not there; the anomaly is at the center.",
        "It is not a scratch.",
    ],
)
def test_statements_that_are_not_type_claims(answer):
    assert claims_of("type", anomalous(), answer) == []


# --- references ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "answer, says_defective",
    [
        ("It matches the 20 normal reference images.", False),
        ("It looks like the good ones.", False),
        ("The area at the center has no close counterpart in the references.", True),
        ("It differs from the reference images.", True),
    ],
)
def test_reference_comparison(answer, says_defective):
    assert only_ok("reference", anomalous(), answer) is says_defective
    assert only_ok("reference", normal(), answer) is not says_defective


def test_references_on_a_zero_shot_image_were_never_compared():
    assert not only_ok("reference", anomalous(n_normal=0, references=[]), "It differs from the reference images.")


def test_the_rest_matching_is_no_claim():
    assert claims_of("reference", anomalous(), "The rest of the image matches the references.") == []


# --- false premises -----------------------------------------------------------------------------------------

LEFT_SCRATCH = "The scratch on the left — how long is it?"


def test_a_defect_at_a_place_where_no_region_is_is_a_false_premise():
    assert premise(anomalous(), LEFT_SCRATCH) is not None
    at_center = "There is no anomaly at the left: the only anomaly is at the center of the image."
    assert premise_corrected(anomalous(), LEFT_SCRATCH, at_center)
    assert premise_corrected(anomalous(), LEFT_SCRATCH, "The anomaly is at the center, not at the left.")
    assert not premise_corrected(anomalous(), LEFT_SCRATCH, "The scratch on the left covers about 1.4% of the image.")
    assert not premise_corrected(anomalous(), LEFT_SCRATCH, "It covers about 1.4% of the image.")


def test_a_defect_on_a_normal_image_is_a_false_premise():
    assert premise(normal(), "How long is the crack?") is not None
    assert premise_corrected(normal(), "How long is the crack?", "There is no crack: there is no anomaly in the image.")
    assert not premise_corrected(normal(), "How long is the crack?", "The crack is about 2 mm long.")


@pytest.mark.parametrize(
    "findings, question, false",
    [
        (anomalous(), "What about the dent at the top right?", True),
        (THREE_REGIONS, "What about the dent at the top left?", False),
        (THREE_REGIONS, "What about the dent on the left?", False),  # coarser: fits "top left"
        (anomalous(), "How long is the crack?", False),  # an unsupported type is not a premise error
        (anomalous(), "Is there a scratch on the left?", False),  # asks, presupposes nothing
        (anomalous(), "Is the scratch on the left?", False),  # asks where it is
        (normal(), "Is there a crack?", False),
        (normal(), "Where is the defect?", True),
        (normal(), "What is the anomaly score?", False),
    ],
)
def test_premise(findings, question, false):
    assert (premise(findings, question) is not None) is false


def test_without_a_false_premise_nothing_needs_correcting():
    assert premise_corrected(anomalous(), "Where is the defect?", "It is at the center.")
