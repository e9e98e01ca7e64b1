"""NAB scoring rules (anomalens.series.nab, and its CLI bench/nab_score.py): hand-computed tiny cases, then
the published NAB results.

S(x) = 2*sigmoid(-5x) - 1 = tanh(-2.5x), which the expected values below use so they do not
reuse the module's own formula.
"""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest

from anomalens.series import nab

REPO = Path(__file__).resolve().parents[1]
NAB_DATA = REPO / ".." / "shared" / "datasets" / "timeseries" / "nab"

_spec = importlib.util.spec_from_file_location("nab_score", REPO / "bench" / "nab_score.py")
nab_score_cli = importlib.util.module_from_spec(_spec)  # the bench CLI over the package's scorer
_spec.loader.exec_module(nab_score_cli)

STD = nab.DEFAULT_PROFILES["standard"]
MAX_TP = math.tanh(2.5)  # S(-1), the earliest possible detection
WIN = [(40, 49)]  # one window of 10 rows in a 100-row series


def detections(*rows: int, n: int = 100) -> np.ndarray:
    s = np.zeros(n)
    s[list(rows)] = 1.0
    return s


def score(*rows: int, windows=WIN, profile=STD, probation: int = 0) -> float:
    return nab.score_series(detections(*rows), windows, profile, 0.5, probation).score


def test_scaled_sigmoid_values():
    assert float(nab.scaled_sigmoid(-1.0)) == pytest.approx(0.98661, abs=1e-5)
    assert float(nab.scaled_sigmoid(-0.5)) == pytest.approx(0.84828, abs=1e-5)
    assert float(nab.scaled_sigmoid(0.0)) == 0.0
    assert float(nab.scaled_sigmoid(1.0)) == pytest.approx(-0.98661, abs=1e-5)
    assert float(nab.scaled_sigmoid(3.0)) == -1.0  # clamped far from windows


def test_probation_length():
    assert nab.probation_length(100) == 15
    assert nab.probation_length(4032) == 604  # floor(0.15 * 4032)
    assert nab.probation_length(22695) == 750  # capped at 0.15 * 5000


def test_detection_at_window_start_earns_full_tp_weight():
    assert score(40) == pytest.approx(1.0)


def test_detection_at_window_end_earns_sigmoid_of_its_position():
    # NAB's in-window position is -(right - i + 1) / width: -1/10 on the last row
    assert score(49) == pytest.approx(math.tanh(0.25) / MAX_TP)
    assert score(45) == pytest.approx(math.tanh(2.5 * 5 / 10) / MAX_TP)
    assert 0 < score(49) < score(45) < score(40)


def test_only_first_detection_in_a_window_counts():
    assert score(45, 46, 47, 49) == pytest.approx(score(45))
    assert score(40, 41) == pytest.approx(1.0)


def test_missed_window_is_a_false_negative():
    assert score() == pytest.approx(-1.0)
    assert score(profile=nab.DEFAULT_PROFILES["reward_low_FN_rate"]) == pytest.approx(-2.0)


def test_false_positive_right_after_window_costs_less_than_far_away():
    near, far = score(50) + 1.0, score(99) + 1.0  # remove the missed window's -1
    # relative distance to the previous window's right edge is (i - right) / (width - 1)
    assert near == pytest.approx(-0.11 * math.tanh(2.5 / 9))
    assert far == pytest.approx(-0.11)  # 50/9 >= 3: full FP weight
    assert far < near < 0


def test_false_positive_before_any_window_costs_full_weight():
    assert score(10) + 1.0 == pytest.approx(-0.11)
    assert score(10, profile=nab.DEFAULT_PROFILES["reward_low_FP_rate"]) + 1.0 == pytest.approx(-0.22)


def test_false_positive_is_measured_from_the_closest_preceding_window():
    windows = [(20, 29), (60, 64)]  # second window is 5 wide
    fp = score(20, 60, 66, windows=windows) - score(20, 60, windows=windows)
    assert fp == pytest.approx(-0.11 * math.tanh(2.5 * 2 / 4))


def test_probationary_rows_are_ignored():
    assert score(5, 10, probation=15) == pytest.approx(score(probation=15))
    assert score(5, 10, probation=0) < score(probation=0)


def test_null_and_perfect_detectors_normalise_to_0_and_100():
    windows = [(20, 29), (60, 69)]
    null = score(windows=windows)
    perfect = score(20, 60, windows=windows)
    assert null == pytest.approx(-2.0) and perfect == pytest.approx(2.0)
    assert nab.normalise(null, null, STD.tp * 2) == 0.0
    assert nab.normalise(perfect, null, STD.tp * 2) == pytest.approx(100.0)


def test_default_probation_is_applied():
    # 200 rows: rows 0..29 are probation; a window there would be dropped entirely
    result = nab.score_series(detections(10, n=200), [(100, 109)], STD, 0.5)
    assert result.score == pytest.approx(-1.0) and result.false_positives == 0


def _toy_corpus() -> list:
    """Two series; the best threshold fires on both window starts and on no false positive."""
    a = np.full(100, 0.1)
    a[40], a[45], a[80] = 0.9, 0.95, 0.7  # window hit (start, then later), an FP at 0.7
    b = np.full(100, 0.2)
    b[60], b[90] = 0.8, 0.6
    return [nab.Series("a.csv", a, [(40, 49)]), nab.Series("b.csv", b, [(60, 69)])]


def test_optimiser_picks_the_best_single_corpus_threshold():
    corpus = _toy_corpus()
    thr, raw = nab.optimise_threshold(corpus, STD)
    assert thr == pytest.approx(0.8)  # highest threshold reaching the best score
    assert raw == pytest.approx(2.0)
    assert nab.score_corpus(corpus, STD, thr).score == pytest.approx(raw)


def test_sweep_matches_brute_force_scoring_at_every_threshold():
    rng = np.random.default_rng(0)
    corpus = []
    for i in range(4):
        s = np.round(rng.random(300), 2)  # rounding makes ties, which NAB resolves per threshold
        corpus.append(nab.Series(f"s{i}.csv", s, [(80 + 10 * i, 99 + 10 * i), (200, 230)]))
    for prof in nab.DEFAULT_PROFILES.values():
        thresholds, totals = nab.sweep_thresholds(corpus, prof)
        assert np.all(np.diff(thresholds) < 0)
        for t, total in zip(thresholds, totals):
            assert nab.score_corpus(corpus, prof, t).score == pytest.approx(total)


def test_window_rows_matches_limits_to_timestamps():
    from datetime import datetime, timedelta

    times = [datetime(2014, 1, 1) + timedelta(minutes=5 * i) for i in range(20)]
    exact = [("2014-01-01 00:10:00.000000", "2014-01-01 00:25:00.000000")]
    assert nab.window_rows(times, exact) == [(2, 5)]
    between = [("2014-01-01 00:11:00", "2014-01-01 00:26:00")]  # limits off the grid: rows inside
    assert nab.window_rows(times, between) == [(3, 5)]


def test_cli_on_a_tiny_nab_layout(tmp_path, capsys):
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels" / "combined_windows.json").write_text(
        json.dumps({"cat/x.csv": [["2014-01-01 08:20:00.000000", "2014-01-01 09:05:00.000000"]]})
    )
    out = tmp_path / "results" / "det" / "cat"
    out.mkdir(parents=True)
    rows = ["timestamp,value,anomaly_score"]
    for i in range(200):
        hh, mm = divmod(5 * i, 60)
        rows.append(f"2014-01-{1 + hh // 24:02d} {hh % 24:02d}:{mm:02d}:00,0,{1.0 if i == 100 else 0.0}")
    (out / "det_x.csv").write_text("\n".join(rows) + "\n")
    assert nab_score_cli.main([str(tmp_path / "results"), "--detector", "det"]) == 0
    printed = capsys.readouterr().out
    assert printed.count("100.00") == 3  # row 100 is the window's first row: a perfect detector


@pytest.mark.skipif(not (NAB_DATA / "results" / "final_results.json").is_file(), reason="NAB data not present")
@pytest.mark.parametrize("detector", ["numenta", "windowedGaussian"])
def test_rescoring_published_outputs_matches_published_scores(detector):
    windows = nab.load_windows(NAB_DATA / "labels" / "combined_windows.json")
    profiles = nab.load_profiles(NAB_DATA / "config" / "profiles.json")
    published = json.loads((NAB_DATA / "results" / "final_results.json").read_text())[detector]
    series = nab.load_detector_results(NAB_DATA / "results", detector, windows)
    n_windows = sum(len(v) for v in windows.values())
    for result in nab.evaluate(series, profiles, n_windows):
        assert result.normalised == pytest.approx(published[result.profile], abs=0.5), result
