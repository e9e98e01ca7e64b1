#!/usr/bin/env python3
"""Faithfulness benchmark: free-form, multi-turn chats about inspected images, every claim of every answer
checked against the vision expert's findings.

For every shared image set, an inspector fitted on K seeded normal references inspects a seeded sample of
test images (the defect-type expert, where the set names two or more types, learns each type from 5 other
labelled images). Each image gets a seeded conversation: a verdict question first, then turns drawn from a
script of QUESTION_KINDS (verdict both ways round, where, how large, how many, how sure, which type, why,
against the references, what next, rephrasings, follow-ups leaning on the previous answer, and wrong
premises: "the scratch on the left — how long is it?" where nothing is on the left). Every answer is read by
`faithfulness_checker.py`, written from the findings and the answer text alone (it does not call the guard's
code). Per backend and guard mode: claims made and contradicted, by kind; turns answered by fallback (the
guard replacing the model's text wholesale); wrong premises corrected; seconds per turn. Writes
bench/faithfulness.md and .json.

    python bench/faithfulness.py                                   # grounded, llama-cpp (guard correct, off)
    python bench/faithfulness.py --conversations 10 --turns 11     # per set: 3 sets × 10 × 11 = 330 turns
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

from anomalens import Inspector
from anomalens.data import load_split
from anomalens.data.datasets import list_categories
from anomalens.language import ChatSession, create_language_model, findings_from
from anomalens.language.models import LlamaCppModel
from faithfulness_checker import check_answer, premise, premise_corrected
from qa_bench import defect_type_guesses

HERE = Path(__file__).resolve().parent
DEFAULT_ROOT = HERE.parent.parent / "shared" / "datasets"
CELLS = ["top left", "top", "top right", "left", "center", "right", "bottom left", "bottom", "bottom right"]
FIRST = {"verdict": ["Is there any defect in the object?", "Is anything wrong with this part?", "Any anomaly?"]}
QUESTION_KINDS = {  # kind → phrasings; "{cell}" is a place with no region (a wrong premise)
    "verdict good": ["Is the part good?", "Is it OK to ship?", "Does it pass inspection?", "Is it fine to use?"],
    "verdict bad": ["Should it be rejected?", "Is it defective?", "Does it fail inspection?"],
    "where": ["Where is the defect?", "Where is it?", "Which part of the image is affected?"],
    "size": ["How large is it?", "How big is the anomaly?", "What size is it?"],
    "count": ["How many defects are there?", "How many anomalous regions do you see?"],
    "confidence": ["How sure are you?", "How confident are you?"],
    "certain": ["Are you certain?", "Are you sure about that?"],
    "chance": ["What is the probability that it is defective?"],
    "type": ["What kind of defect is it?", "Which defect type is it?"],
    "why": ["Why?", "Why do you think so?", "What is your evidence?"],
    "reference": ["How does it compare with the reference images?", "How does it differ from the good parts?"],
    "next": ["What should I do next?", "What do you recommend?"],
    "summary": ["Describe the image.", "Give me a short report."],
    "criteria": ["What does a normal part look like?"],
    "rephrase verdict": ["Do you see anything unusual?", "Is there a problem with it?"],
    "follow-up size": ["And how big is that?", "How large is that one?"],
    "follow-up other": ["And the other one?", "What about the second one?"],
    "follow-up where": ["Where exactly?", "And where is that?"],
    "premise place": ["The scratch on the {cell} — how long is it?", "What about the dent at the {cell}?"],
    "premise exists": ["How long is the crack?", "How deep is the scratch?"],
    "explain": ["Explain your decision."],
}
CLAIM_KINDS = ("verdict", "polarity", "location", "absent_location", "size", "count", "confidence", "type", "reference")


def conversation(rng: random.Random, findings: dict, turns: int) -> list[tuple[str, str]]:
    """A seeded script: a verdict question, then `turns` − 1 kinds without repeats (a follow-up only after a
    question it can lean on), always with one wrong-premise question."""
    kinds = [k for k in QUESTION_KINDS if not k.startswith("premise")]
    rng.shuffle(kinds)
    chosen = kinds[: turns - 2] + [rng.choice(["premise place", "premise exists"])]
    rng.shuffle(chosen)
    free = [c for c in CELLS if not any(c in r["location"].split() or c == r["location"] for r in findings["regions"])]
    script = [("verdict", rng.choice(FIRST["verdict"]))]
    for kind in chosen:
        question = rng.choice(QUESTION_KINDS[kind])
        script.append((kind, question.format(cell=rng.choice(free or CELLS))))
    return script


def run_category(root: Path, category: str, backends: dict, args) -> list[dict]:
    rng = random.Random(f"{args.seed}:{category}")
    train = load_split(root, category, "train")
    test = load_split(root, category, "test")
    references = rng.sample(train, min(args.references, len(train)))
    inspector = Inspector().fit([s.path for s in references])
    picked = rng.sample(range(len(test)), min(args.conversations, len(test)))
    results = inspector.predict([s.path for s in test])
    guesses, _ = defect_type_guesses(results, test, args.seed)
    names = tuple(s.path.name for s in references)
    records = []
    for i in picked:
        if not results[i].ok:
            print(f"skipped: {results[i].error}", file=sys.stderr)
            continue
        findings = findings_from(results[i], references=names, defect_type=guesses.get(i))
        facts = json.loads(json.dumps(findings.to_dict()))
        script = conversation(random.Random(f"{args.seed}:{category}:{i}"), facts, args.turns)
        for name, (model, guard) in backends.items():
            session = ChatSession(findings, model, guard=guard)
            for kind, question in script:
                start = time.perf_counter()
                turn = session.ask(question)
                seconds = time.perf_counter() - start
                claims = check_answer(facts, question, turn.answer)
                false = premise(facts, question)
                records.append(
                    {
                        "backend": name,
                        "category": category,
                        "image": str(test[i].path),
                        "findings": facts,
                        "kind": kind,
                        "question": question,
                        "answer": turn.answer,
                        "model_answer": turn.model_answer,
                        "claims": claims,
                        "fallback": bool(turn.guard and turn.guard.fallback),
                        "premise": false,
                        "premise_corrected": premise_corrected(facts, question, turn.answer) if false else None,
                        "seconds": seconds,
                    }
                )
    return records


def summarise(records: list[dict]) -> list[dict]:
    rows = []
    by_backend = defaultdict(list)
    for r in records:
        by_backend[r["backend"]].append(r)
    for backend, turns in by_backend.items():
        made, wrong = defaultdict(int), defaultdict(int)
        for r in turns:
            for claim in r["claims"]:
                made[claim["kind"]] += 1
                wrong[claim["kind"]] += not claim["ok"]
        premises = [r["premise_corrected"] for r in turns if r["premise"]]
        seconds = np.array([r["seconds"] for r in turns])
        rows.append(
            {
                "backend": backend,
                "turns": len(turns),
                "conversations": len({r["image"] for r in turns}),
                "claims": sum(made.values()),
                "contradicted": sum(wrong.values()),
                "by_kind": {k: [made[k], wrong[k]] for k in sorted(set(made) | set(CLAIM_KINDS))},
                "fallback_turns": sum(r["fallback"] for r in turns),
                "premises": len(premises),
                "premises_corrected": sum(bool(p) for p in premises),
                "seconds_mean": float(seconds.mean()),
                "seconds_p95": float(np.percentile(seconds, 95)),
            }
        )
    return rows


def write_markdown(path: Path, rows: list[dict], records: list[dict], command: str, minutes: float) -> None:
    kinds = sorted({k for r in rows for k in r["by_kind"]})
    lines = [
        "# AnomaLens faithfulness benchmark",
        "",
        f"Measured {time.strftime('%Y-%m-%d')}, {minutes:.1f} min. Command: `{command}`",
        "",
        "Seeded multi-turn conversations about inspected test images of every shared set (few-shot inspectors, "
        f"{len(QUESTION_KINDS) + 1} question kinds: {', '.join(['verdict', *QUESTION_KINDS])}). Every claim of every "
        "shown answer is checked by `bench/faithfulness_checker.py`, which reads only the findings and the answer "
        "text (not the guard's code). `contradicted`: claims that disagree with the findings beyond the stated "
        "tolerances (area ±0.5 points or ±50 %, box ±2 px, confidence ±10 points). `fallback`: turns where the "
        "guard showed the grounded answer instead of any of the model's text. `premises corrected`: wrong-premise "
        "questions whose answer denies the premise. Guard `off` rows show the model's own claims.",
        "",
        "| backend | turns | claims | contradicted | fallback turns | premises corrected | s/turn (mean, p95) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        fallback = f"{r['fallback_turns']} ({r['fallback_turns'] / r['turns']:.0%})"
        premises = f"{r['premises_corrected']} / {r['premises']}"
        if r["premises"]:
            premises += f" ({r['premises_corrected'] / r['premises']:.0%})"
        lines.append(
            f"| {r['backend']} | {r['turns']} | {r['claims']} | {r['contradicted']} | {fallback} | {premises} | "
            f"{r['seconds_mean']:.2f}, {r['seconds_p95']:.2f} |"
        )
    lines += ["", "Contradicted / made, by claim kind:", ""]
    lines += ["| backend | " + " | ".join(kinds) + " |", "|---|" + "---|" * len(kinds)]
    for r in rows:
        cells = [f"{r['by_kind'][k][1]} / {r['by_kind'][k][0]}" if k in r["by_kind"] else "0 / 0" for k in kinds]
        lines.append(f"| {r['backend']} | " + " | ".join(cells) + " |")
    examples = [r for r in records if any(not c["ok"] for c in r["claims"])][:12]
    if examples:
        lines += ["", "Examples of contradicted answers:", ""]
        for r in examples:
            why = "; ".join(c["why"] for c in r["claims"] if not c["ok"])
            lines.append(f"- {r['backend']}, “{r['question']}” → “{r['answer'][:200]}” ({why})")
    path.write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT)
    parser.add_argument("--categories", nargs="*")
    parser.add_argument("--backends", nargs="*", default=["grounded", "llama-cpp"])
    parser.add_argument("--guards", nargs="*", default=["correct", "off"], help="guard modes for model backends")
    parser.add_argument("--conversations", type=int, default=10, help="test images (conversations) per set")
    parser.add_argument("--turns", type=int, default=11, help="turns per conversation")
    parser.add_argument("--references", type=int, default=8, help="normal reference images per set")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--llm-threads", type=int, help="llama-cpp threads (default: every core)")
    parser.add_argument("--out", type=Path, default=HERE / "faithfulness.md")
    args = parser.parse_args()
    if not args.root.is_dir():
        sys.exit(f"{args.root}: dataset root not found (the benchmark needs ../shared/datasets or --root)")
    backends: dict = {}
    for name in args.backends:
        if name == "grounded":
            backends["grounded"] = (None, "correct")
        else:
            model = LlamaCppModel(threads=args.llm_threads) if name == "llama-cpp" else create_language_model(name)
            backends |= {f"{name}, guard {guard}": (model, guard) for guard in args.guards}
    start = time.time()
    records = []
    for category in args.categories or list_categories(args.root):
        print(f"{category} …", file=sys.stderr)
        records += run_category(args.root, category, backends, args)
    rows = summarise(records)
    command = "python bench/faithfulness.py " + " ".join(sys.argv[1:])
    write_markdown(args.out, rows, records, command.strip(), (time.time() - start) / 60)
    args.out.with_suffix(".json").write_text(json.dumps({"summary": rows, "turns": records}, indent=1))
    print(args.out.read_text())


if __name__ == "__main__":
    main()
