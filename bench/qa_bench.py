#!/usr/bin/env python3
"""Question-answering benchmark (MMAD-style multiple choice) on MVTec-layout datasets with masks.

For every test image of every category, a full-shot inspector (fitted on the category's normal training
images) inspects it, and each language backend answers, in a chat about that image:
  - "Is there any defect in the object?"  (A: Yes, B: No; truth from the label)
  - "Where is the defect?"                  (defective images: the nine 3×3-grid cells as options; truth =
                                             the cell of the centroid of the mask's largest region)
  - "Which defect is it?"                   (where the dataset names two or more defect types: those types
                                             as options; the defect-type expert learns each type from up to
                                             5 other labelled test images, never the one asked about)
  - "Is the part good?", "Is it OK to ship?", … (GOOD_QUESTIONS, every one on every image: a yes means no
                                             defect. Scored twice: "good" against the label, like "defect";
                                             "good polarity" against the inspector's own verdict, i.e. whether
                                             the yes/no means what was asked)
The answer text is read back into an option the way the guard reads claims (first grid cell named; yes/no,
in the question's polarity).
Language-model backends answer a seeded sample of images per category (they are slow on 2 cores) and
are scored both raw and after the guard. Writes bench/qa_results.md and .json.

    python bench/qa_bench.py                                     # grounded backend, all test images
    python bench/qa_bench.py --backends grounded llama-cpp --llm-sample 25
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
from scipy import ndimage

from anomalens import Inspector
from anomalens.data import load_mask, load_split
from anomalens.data.datasets import list_categories
from anomalens.experts.defect_types import DefectGuess, DefectTypeClassifier
from anomalens.language import ChatSession, create_language_model, findings_from, read_claims
from anomalens.regions import grid_location

HERE = Path(__file__).resolve().parent
DEFAULT_ROOT = HERE.parent.parent / "shared" / "datasets"
QUESTIONS = {
    "defect": "Is there any defect in the object?",
    "where": "Where is the defect?",
    "type": "Which defect is it?",
}
GOOD_QUESTIONS = (  # yes/no questions whose yes means "no defect"
    "Is the part good?",
    "Is it OK to ship?",
    "Does it pass inspection?",
    "Is the object acceptable?",
    "Is it free of defects?",
    "Is it fine to use?",
)
TYPE_EXAMPLES = 5  # labelled examples per defect type the defect-type expert is given


def mask_cell(mask: np.ndarray) -> str | None:
    """The 3×3 cell of the centroid of the mask's largest connected region."""
    labels, count = ndimage.label(mask, structure=np.ones((3, 3)))
    if count == 0:
        return None
    largest = 1 + int(np.argmax(np.bincount(labels.ravel())[1:]))
    cy, cx = ndimage.center_of_mass(labels == largest)
    return grid_location(cx, cy, mask.shape[1], mask.shape[0])


def picked_option(question: str, text: str, types: list[str]) -> str | None:
    if question == "type":  # the first type named
        found = [(text.lower().find(t.replace("_", " ")), t) for t in types if t.replace("_", " ") in text.lower()]
        return min(found)[1] if found else None
    claims = read_claims(text, asks_good=question == "good")
    if question in ("defect", "good"):  # "yes" means a defect, or for "good" none
        return None if claims.anomalous is None else "yes" if claims.anomalous != (question == "good") else "no"
    cells = [str(c.value) for c in claims.items if c.kind in ("location", "peak")]  # "the most unusual spot is at …"
    return cells[0] if cells else None


def run_category(
    root: Path, category: str, backends: dict, llm_sample: int, seed: int, expert: str = "auto"
) -> list[dict]:
    train = load_split(root, category, "train")
    test = load_split(root, category, "test")
    inspector = Inspector(expert=expert).fit([s.path for s in train])
    sampled = set(random.Random(seed).sample(range(len(test)), min(llm_sample, len(test))))
    results = inspector.predict([s.path for s in test])
    guesses, types = defect_type_guesses(results, test, seed)
    records = []
    for i, (sample, result) in enumerate(zip(test, results)):
        if not result.ok:
            print(f"skipped: {result.error}", file=sys.stderr)
            continue
        width, height = result.image_size
        truth = {"defect": "yes" if sample.label else "no"}
        if sample.label and sample.mask_path:
            truth["where"] = mask_cell(load_mask(sample.mask_path, (height, width)))
        if i in guesses:
            truth["type"] = sample.defect
        findings = findings_from(result, defect_type=guesses.get(i))
        asked = [(kind, QUESTIONS[kind], {"truth": answer}) for kind, answer in truth.items() if answer is not None]
        good = {"truth": "no" if sample.label else "yes", "verdict": "no" if result.anomalous else "yes"}
        asked += [("good", question, good) for question in GOOD_QUESTIONS]
        for name, model in backends.items():
            if model is not None and i not in sampled:
                continue
            session = ChatSession(findings, model)
            for kind, question, truths in asked:
                turn = session.ask(question)
                base = {"category": category, "image": str(sample.path), "question": kind, "asked": question} | truths
                records.append(
                    base | {"backend": name, "answer": turn.answer, "picked": picked_option(kind, turn.answer, types)}
                )
                if model is not None:
                    records.append(
                        base
                        | {
                            "backend": f"{name} (no guard)",
                            "answer": turn.model_answer,
                            "picked": picked_option(kind, turn.model_answer, types),
                        }
                    )
    return records


def defect_type_guesses(results: list, test: list, seed: int) -> tuple[dict[int, DefectGuess], list[str]]:
    """For each defective test image of a category with two or more named defect types, the defect-type
    expert's guess, learnt from up to TYPE_EXAMPLES other labelled images of each type (leave-one-out).
    The descriptors come with the inspection results."""
    defective = [i for i, s in enumerate(test) if s.label and s.defect and results[i].ok]
    types = sorted({test[i].defect for i in defective})
    if len(types) < 2:
        return {}, types
    descriptors = np.stack([results[i].descriptor for i in defective])
    rng = random.Random(seed)
    guesses = {}
    for row, i in enumerate(defective):
        examples = {}
        for name in types:
            others = [r for r, j in enumerate(defective) if j != i and test[j].defect == name]
            examples[name] = descriptors[rng.sample(others, min(TYPE_EXAMPLES, len(others)))]
        guesses[i] = DefectTypeClassifier.fit(examples).classify(descriptors[row])
    return guesses, types


def summarise(records: list[dict]) -> list[dict]:
    groups = defaultdict(list)
    for r in records:
        for category in (r["category"], "all"):
            groups[(r["backend"], category, r["question"])].append(r["picked"] == r["truth"])
            if "verdict" in r:  # a goodness question: does its yes/no say the inspector's verdict?
                groups[(r["backend"], category, "good polarity")].append(r["picked"] == r["verdict"])
    return [
        {"backend": b, "category": c, "question": q, "n": len(v), "accuracy": float(np.mean(v))}
        for (b, c, q), v in sorted(groups.items())
    ]


def write_markdown(path: Path, rows: list[dict], command: str, seconds: float) -> None:
    lines = [
        "# AnomaLens question-answering benchmark",
        "",
        f"Measured {time.strftime('%Y-%m-%d')}, {seconds / 60:.1f} min. Command: `{command}`",
        "",
        "MMAD-style multiple choice on every test image (LLM backends: a seeded sample per category). "
        "Yes/no truth from the labels; location truth = the 3×3 cell of the centroid of the mask's largest "
        "region, nine options; defect type (categories naming two or more types): the types as options, the "
        f"defect-type expert given {TYPE_EXAMPLES} other labelled test images per type, never the one asked about. Full-shot inspectors fitted on the normal training images only (expert: `--expert`, default auto).",
        "",
        f"Goodness questions (a yes means no defect), each asked on every image: {'; '.join(GOOD_QUESTIONS)}. "
        "`good`: the answer against the label (bounded by the inspector's verdict accuracy, like `defect`); "
        "`good polarity`: the answer against the inspector's own verdict, i.e. whether the yes/no means what "
        "was asked.",
        "",
        "| backend | category | question | n | accuracy |",
        "|---|---|---|---|---|",
    ]
    lines += [f"| {r['backend']} | {r['category']} | {r['question']} | {r['n']} | {r['accuracy']:.3f} |" for r in rows]
    path.write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT)
    parser.add_argument("--categories", nargs="*")
    parser.add_argument("--backends", nargs="*", default=["grounded"], help="grounded, llama-cpp")
    parser.add_argument("--llm-sample", type=int, default=25, help="images per category for LLM backends")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--expert",
        default="auto",
        help="the full-shot inspectors' expert: auto (memory) or both (memory fused with the decoder)",
    )
    parser.add_argument("--out", type=Path, default=HERE / "qa_results.md")
    args = parser.parse_args()
    if not args.root.is_dir():
        sys.exit(f"{args.root}: dataset root not found (the benchmark needs ../shared/datasets or --root)")
    backends = {name: create_language_model(name) for name in args.backends}
    started = time.perf_counter()
    records = []
    for category in args.categories or list_categories(args.root):
        records += run_category(args.root, category, backends, args.llm_sample, args.seed, args.expert)
        print(f"{category}: done", file=sys.stderr, flush=True)
    rows = summarise(records)
    for row in rows:
        print(json.dumps(row))
    args.out.with_suffix(".json").write_text(json.dumps({"summary": rows, "answers": records}, separators=(",", ":")))
    write_markdown(args.out, rows, "python bench/qa_bench.py " + " ".join(sys.argv[1:]), time.perf_counter() - started)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
