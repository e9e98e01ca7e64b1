"""`anomalens series eval` reports NAB's normalised score per profile beside the point-wise numbers, from the
per-point scores of the one inspection of each file (`anomalens.series.nab` scores them)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from anomalens.cli import app
from anomalens.series import register_series_detector

runner = CliRunner()
N = 200  # rows per file: NAB's probation is the first 30
FIRST_ROWS = {"g/a.csv": 100, "g/b.csv": 150}  # each file's labelled window starts here, 10 rows long
PROFILES = ("nab_standard", "nab_reward_low_FP_rate", "nab_reward_low_FN_rate")


@register_series_detector
class EchoDetector:
    """Its scores are the values themselves, on a stated scale: a value of 1 is an alarm."""

    name = "test_echo"
    alarm = 0.5
    window = 8
    context = 0
    scored = 0

    def fit(self, reference: np.ndarray) -> np.ndarray:
        return reference.copy()

    def score(self, values: np.ndarray) -> np.ndarray:
        EchoDetector.scored += values.size
        return values.copy()


def stamp(i: int) -> str:
    return f"2024-01-01 {i * 5 // 60:02d}:{i * 5 % 60:02d}:00"


def nab_layout(root: Path, spike: bool) -> Path:
    """Two files of zeros, with a value of 1 on each window's first row when `spike`."""
    (root / "data" / "g").mkdir(parents=True)
    for rel, first in FIRST_ROWS.items():
        values = np.zeros(N)
        values[first] = 1.0 if spike else 0.0
        rows = "\n".join(f"{stamp(i)},{v:.1f}" for i, v in enumerate(values))
        (root / "data" / rel).write_text("timestamp,value\n" + rows + "\n")
    (root / "labels").mkdir()
    windows = {rel: [[stamp(first), stamp(first + 9)]] for rel, first in FIRST_ROWS.items()}
    (root / "labels" / "combined_windows.json").write_text(json.dumps(windows))
    return root


def evaluate(root: Path, out: Path) -> tuple[dict, str]:
    result = runner.invoke(app, ["series", "eval", str(root), "--detector", "test_echo", "--out", str(out)])
    assert result.exit_code == 0, result.output
    return json.loads((out / "metrics.json").read_text())["total"], result.output


def test_a_detector_firing_on_each_window_start_only_scores_100_and_one_never_firing_0(tmp_path):
    EchoDetector.scored = 0
    perfect, printed = evaluate(nab_layout(tmp_path / "perfect", spike=True), tmp_path / "out-perfect")
    assert EchoDetector.scored == 2 * (N - 30)  # each file scored once, after its reference
    assert [perfect[p] for p in PROFILES] == [100.0, 100.0, 100.0]
    assert perfect["found"] == 2 and perfect["false_alarms"] == 0
    assert perfect["f1"] > 0 and perfect["false_alarm_rate"] == 0.0 and perfect["missed_alarm_rate"] < 1
    assert "NAB" in printed and "standard 100.00" in printed and "F1" in printed

    never, printed = evaluate(nab_layout(tmp_path / "never", spike=False), tmp_path / "out-never")
    assert [never[p] for p in PROFILES] == [0.0, 0.0, 0.0]
    assert never["found"] == 0 and never["f1"] == 0.0 and never["missed_alarm_rate"] == 1.0
    assert "standard 0.00" in printed


def test_profiles_come_from_the_roots_config_when_it_has_one(tmp_path):
    root = nab_layout(tmp_path / "nab", spike=True)
    (root / "config").mkdir()
    cost = {"tpWeight": 1.0, "fpWeight": 0.5, "fnWeight": 1.0, "tnWeight": 1.0}
    (root / "config" / "profiles.json").write_text(json.dumps({"strict": {"CostMatrix": cost}}))
    total, printed = evaluate(root, tmp_path / "out")
    assert total["nab_strict"] == 100.0 and not any(p in total for p in PROFILES)
    assert "strict 100.00" in printed


def test_unreadable_profiles_are_named(tmp_path):
    root = nab_layout(tmp_path / "nab", spike=True)
    (root / "config").mkdir()
    (root / "config" / "profiles.json").write_text('{"standard": {"weights": 1}}')
    result = runner.invoke(app, ["series", "eval", str(root), "--detector", "test_echo", "--out", str(tmp_path / "o")])
    assert result.exit_code != 0 and "profiles.json" in result.output and "CostMatrix" in result.output
