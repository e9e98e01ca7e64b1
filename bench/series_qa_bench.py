"""Question answering on NAB series: do the grounded answers name the right time window?

For each NAB file the first 15 % (NAB's probationary part) is the normal reference; `SeriesDetector`
inspects the whole series and the grounded composer answers "When?" from the findings. A labelled window
is *found* when a detected window overlaps it; it is *named* when the answer lists a window (start to end,
read back from the text) that overlaps it. Reported: named / found (the acceptance bar is 80 %), and found /
labelled for context. Also: does "Is anything wrong?" say yes on files with labels and no on the five files
without. Writes bench/series_qa.md.

    PYTHONPATH=src python bench/series_qa_bench.py --nab ../shared/datasets/timeseries/nab
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from datetime import datetime
from pathlib import Path

from anomalens.series import SeriesDetector, load_series, split_reference
from anomalens.series.answers import answer_series, series_findings

HERE = Path(__file__).resolve().parent
STAMP = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}")


def listed_spans(answer: str) -> list[tuple[float, float]]:
    """(start, end) epoch seconds of each window a "When?" answer lists, one per numbered line."""
    spans = []
    for line in answer.splitlines():
        stamps = [datetime.fromisoformat(s).timestamp() for s in STAMP.findall(line)]
        if stamps:  # "from A to B, peaking at P" or "A, peaking at P"
            spans.append((stamps[0], stamps[1] if len(stamps) == 3 else stamps[0]))
    return spans


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nab", type=Path, required=True)
    ap.add_argument("--out", type=Path, default=HERE / "series_qa.md")
    args = ap.parse_args(argv)
    labels = json.loads((args.nab / "labels" / "combined_windows.json").read_text())
    t0 = time.perf_counter()
    rows, totals = [], dict(labelled=0, found=0, named=0, yes_ok=0, no_ok=0, with_labels=0, without=0)
    for rel, windows in sorted(labels.items()):
        series = load_series(args.nab / "data" / rel)
        reference, _ = split_reference(series, 0.15)
        result = SeriesDetector(reference).inspect(series, starts_with_reference=True)
        findings = series_findings(result, len(reference))
        spans = listed_spans(answer_series("When?", findings))
        says_yes = answer_series("Is anything wrong?", findings).startswith("Yes")
        detected = [(series.times[w.start], series.times[w.end]) for w in result.windows]
        found = named = 0
        for a, b in windows:
            lo, hi = datetime.fromisoformat(a).timestamp(), datetime.fromisoformat(b).timestamp()
            if any(s <= hi and e >= lo for s, e in detected):
                found += 1
                named += any(s <= hi and e >= lo for s, e in spans)
        totals["labelled"] += len(windows)
        totals["found"] += found
        totals["named"] += named
        if windows:
            totals["with_labels"] += 1
            totals["yes_ok"] += says_yes
        else:
            totals["without"] += 1
            totals["no_ok"] += not says_yes
        rows.append((rel, len(windows), len(result.windows), found, named))
    seconds = time.perf_counter() - t0
    share = totals["named"] / max(totals["found"], 1)
    lines = [
        '# Series QA on NAB: does "When?" name the labelled window?',
        "",
        "`PYTHONPATH=src python bench/series_qa_bench.py --nab ../shared/datasets/timeseries/nab`"
        f" ({seconds:.0f} s, 2 shared cores). Reference: the first 15 % of each file; grounded composer.",
        "",
        f"- labelled windows: {totals['labelled']}; found by the detector (a detected window overlaps): "
        f"{totals['found']} ({totals['found'] / totals['labelled']:.0%})",
        f'- of those found, named by the answer to "When?": **{totals["named"]} ({share:.0%})**',
        f'- "Is anything wrong?" says yes on {totals["yes_ok"]} of {totals["with_labels"]} files with labels, '
        f"no on {totals['no_ok']} of {totals['without']} files without",
        "",
        "| file | labelled | detected windows | found | named |",
        "|---|---:|---:|---:|---:|",
        *[f"| {r} | {n} | {d} | {f} | {m} |" for r, n, d, f, m in rows],
    ]
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines[:9]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
