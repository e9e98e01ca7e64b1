"""The series route as a new user meets it (issue 33): per-channel decisions, delimiters, label columns,
reference choices, output without matplotlib, per-point scores, detectors registered from outside the
package and run through `series detect` and `series eval`, folders and globs, and window words."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from anomalens.cli import app
from anomalens.series import SeriesDetector, calibrate_series, load_series, register_series_detector
from anomalens.series.regions import NormalRange, describe
from test_series import REF, START, N, as_series, periodic, planted

runner = CliRunner()


def write_series(path: Path, columns: dict[str, np.ndarray], delimiter: str = ",") -> Path:
    names = list(columns)
    rows = zip(range(len(columns[names[0]])), *columns.values())
    path.write_text(
        delimiter.join(["t", *names]) + "\n" + "\n".join(delimiter.join(f"{x:.6g}" for x in row) for row in rows)
    )
    return path


def held_levels(n: int, seed: int) -> np.ndarray:
    """A channel of 9 distinct values, each held 50 steps (a valve position, a pump's stage)."""
    return np.repeat(np.random.default_rng(seed).integers(0, 9, n // 50 + 1), 50)[:n].astype(float)


def test_a_quantised_channel_never_silences_another():
    """In a separate reference, a channel of few distinct values scores its rare steps enormously; a single
    threshold over all channels (the maximum, as before) then sat above the other channel's clear drop."""
    reference = as_series(periodic(seed=11), held_levels(N, 1), names=["flow", "counter"])
    inspected = as_series(planted("drop"), held_levels(N, 2), names=["flow", "counter"])
    detector = SeriesDetector(reference)
    one_threshold = calibrate_series(np.max(detector.normal_maps, axis=0), window=32).threshold
    result = detector.inspect(inspected)
    assert result.channel_scores[:, 0].max() < one_threshold  # what silenced it
    assert [w.channels[0] for w in result.windows] == ["flow"]  # found, and the counter raises nothing
    assert result.windows[0].start - 40 <= START <= result.windows[0].end
    record = result.to_dict()
    assert "Šidák" in record["decision"] and set(record["channel_thresholds"]) == {"flow", "counter"}


def test_semicolon_csv_is_sniffed_and_the_delimiter_can_be_given(tmp_path):
    f = write_series(tmp_path / "semi.csv", {"a": periodic(200), "b": np.ones(200)}, delimiter=";")
    assert load_series(f).channels == ["a", "b"]
    assert load_series(f, delimiter=";").channels == ["a", "b"]
    with pytest.raises(ValueError, match=r"is the delimiter ';'\? --delimiter"):
        load_series(f, delimiter=",")  # told wrong: the message says what it probably is
    out = tmp_path / "out"
    result = runner.invoke(app, ["series", "detect", str(f), "--delimiter", ";", "--out", str(out)])
    assert result.exit_code == 0, result.output


def test_label_columns_are_left_out_and_said_and_columns_can_be_excluded(tmp_path):
    v = planted("drop")
    labels = (np.arange(N) >= START).astype(float)
    f = write_series(
        tmp_path / "rig.csv",
        {"flow": v, "temp": periodic(seed=2), "anomaly": labels, "changepoint": 0 * labels, "is_anomaly": labels},
    )
    series = load_series(f)
    assert series.channels == ["flow", "temp"] and series.left_out == ["anomaly", "changepoint", "is_anomaly"]
    assert load_series(f, exclude=("temp",)).channels == ["flow"]
    assert load_series(f, columns=["anomaly"]).channels == ["anomaly"]  # named: used
    out = tmp_path / "out"
    result = runner.invoke(app, ["series", "detect", str(f), "--exclude-column", "temp", "--out", str(out)])
    assert result.exit_code == 0, result.output
    record = json.loads((out / "rig.json").read_text())
    assert record["channels"] == ["flow"] and record["left_out_columns"] == ["anomaly", "changepoint", "is_anomaly"]
    assert "changepoint" in result.output  # said in the summary table
    bad = runner.invoke(app, ["series", "detect", str(f), "--exclude-column", "nope", "--out", str(tmp_path / "o")])
    assert bad.exit_code == 1 and "no column 'nope'" in bad.output


def test_the_reference_is_the_first_rows_or_up_to_a_time(tmp_path):
    f = write_series(tmp_path / "line.csv", {"pressure": planted("drop")})
    for option, value in (("--reference-rows", "1500"), ("--reference-until", "1499")):
        out = tmp_path / option
        result = runner.invoke(app, ["series", "detect", str(f), option, value, "--out", str(out)])
        assert result.exit_code == 0, result.output
        record = json.loads((out / "line.json").read_text())
        assert record["reference"] == "first 1500 points" and record["anomalous"]
    late = runner.invoke(app, ["series", "detect", str(f), "--reference-rows", str(N), "--out", str(tmp_path / "o")])
    assert late.exit_code == 1 and f"3000 of {N} rows" in late.output
    dated = runner.invoke(
        app, ["series", "detect", str(f), "--reference-until", "2024-01-01", "--out", str(tmp_path / "d")]
    )
    assert dated.exit_code == 1 and "is not a number like the series' times" in dated.output


def test_without_matplotlib_the_json_and_points_are_written_and_a_note_says_why(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now raises ImportError
    f = write_series(tmp_path / "line.csv", {"pressure": planted("spike")})
    out = tmp_path / "out"
    result = runner.invoke(app, ["series", "detect", str(f), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert json.loads((out / "line.json").read_text())["anomalous"] and not (out / "line.png").exists()
    assert "no plot: it needs matplotlib" in " ".join(result.output.split())


def test_per_point_scores_and_decisions_in_the_json_and_the_csv(tmp_path):
    f = write_series(tmp_path / "line.csv", {"pressure": planted("drop"), "temp": periodic(seed=4)})
    out = tmp_path / "out"
    assert runner.invoke(app, ["series", "detect", str(f), "--out", str(out)]).exit_code == 0
    record = json.loads((out / "line.json").read_text())
    assert len(record["point_scores"]) == len(record["point_anomalous"]) == N
    with (out / "line.points.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["time", "score", "anomalous", "score_pressure", "score_temp"] and len(rows) == N
    flagged = [i for i, r in enumerate(rows) if r["anomalous"] == "1"]
    assert flagged and all(float(rows[i]["score"]) >= 1 for i in (min(flagged), max(flagged)))
    assert [int(r["anomalous"]) for r in rows] == record["point_anomalous"]
    assert "point_scores" not in json.loads((out / "results.json").read_text())[0]  # the summary stays small
    if _has_pyarrow():  # Parquet is optional
        import pyarrow.parquet as pq

        assert pq.read_table(out / "line.points.parquet").num_rows == N


def _has_pyarrow() -> bool:
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        return False
    return True


@register_series_detector
class LevelDetector:
    """A detector written outside the package: distance to the reference's median, in reference spreads.
    It counts the points it scores, so the test can see the reference is not scored twice."""

    name = "test_level"
    alarm = None
    window = 8
    context = 0
    scored = 0

    def fit(self, reference: np.ndarray) -> np.ndarray:
        self.median, self.spread = float(np.median(reference)), float(np.std(reference)) or 1.0
        return np.abs(reference - self.median) / self.spread

    def score(self, values: np.ndarray) -> np.ndarray:
        LevelDetector.scored += values.size
        return np.abs(values - self.median) / self.spread


def test_a_detector_from_outside_the_package_runs_through_detect_and_eval(tmp_path):
    v = periodic(seed=4)
    v[2400:2460] += 9
    f = write_series(tmp_path / "line.csv", {"pressure": v})
    LevelDetector.scored = 0
    out = tmp_path / "out"
    result = runner.invoke(app, ["series", "detect", str(f), "--detector", "test_level", "--out", str(out)])
    assert result.exit_code == 0, result.output
    record = json.loads((out / "line.json").read_text())
    assert record["detector"] == "test_level" and record["anomalous"]
    assert LevelDetector.scored == N - int(0.2 * N)  # the reference stretch is not scored again
    root = nab_layout(tmp_path / "nab", v)
    for detector in ("test_level", "reference", "streaming"):
        out = tmp_path / f"eval-{detector}"
        evaluated = runner.invoke(app, ["series", "eval", str(root), "--detector", detector, "--out", str(out)])
        assert evaluated.exit_code == 0, evaluated.output
        total = json.loads((out / "metrics.json").read_text())["total"]
        assert total["detector"] == detector and total["found"] == 1, total
        assert 0 < total["f1"] <= 1 and 0 <= total["false_alarm_rate"] < 0.05 and total["missed_alarm_rate"] < 1
        assert "F1" in evaluated.output and "FAR" in evaluated.output and "MAR" in evaluated.output
    unknown = runner.invoke(app, ["series", "eval", str(root), "--detector", "nope", "--out", str(tmp_path / "x")])
    assert unknown.exit_code == 2 and "unknown series detector 'nope'" in unknown.output


def nab_layout(root: Path, v: np.ndarray) -> Path:
    times = [f"2024-01-{1 + i // 288:02d} {(i % 288) * 5 // 60:02d}:{(i % 288) * 5 % 60:02d}:00" for i in range(len(v))]
    (root / "data" / "g").mkdir(parents=True)
    (root / "data" / "g" / "line.csv").write_text(
        "timestamp,value\n" + "\n".join(f"{t},{x:.4f}" for t, x in zip(times, v))
    )
    (root / "labels").mkdir()
    (root / "labels" / "combined_windows.json").write_text(json.dumps({"g/line.csv": [[times[2350], times[2500]]]}))
    return root


def test_a_folder_or_a_glob_in_one_command_and_one_bad_file_goes_on(tmp_path):
    folder = tmp_path / "rig"
    folder.mkdir()
    for k, kind in enumerate(("drop", "spike")):
        write_series(folder / f"run{k}.csv", {"pressure": planted(kind)})
    (folder / "broken.csv").write_text("t,pressure\n0,1\n1,oops\n")
    (folder / "notes.txt").write_text("not a series")
    out = tmp_path / "out"
    result = runner.invoke(app, ["series", "detect", str(folder), str(tmp_path / "missing*.csv"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    records = json.loads((out / "results.json").read_text())
    assert [Path(r["source"]).name for r in records] == ["broken.csv", "run0.csv", "run1.csv"]
    assert not records[0]["ok"] and "line 3" in records[0]["error"] and all(r["ok"] for r in records[1:])
    assert (out / "run0.json").exists() and (out / "run1.points.csv").exists() and not (out / "broken.json").exists()
    assert "missing*.csv" in result.output and "run1.csv" in result.output
    globbed = runner.invoke(app, ["series", "detect", str(folder / "run*.csv"), "--out", str(tmp_path / "g")])
    assert globbed.exit_code == 0 and len(json.loads((tmp_path / "g" / "results.json").read_text())) == 2


def test_window_words_say_a_level_change_only_outside_the_normal_range_and_round_sensibly():
    normal = NormalRange(low=31.0, high=33.0, wiggle=0.01, median=32.0)
    barely = np.full(50, 30.97) + 0.01 * np.sin(np.arange(50))
    kind, words = describe(barely, normal)
    assert kind == "rhythm" and "drop" not in words and "at the edge of the normal range" in words
    kind, words = describe(np.full(50, 28.0) + 0.05 * np.sin(np.arange(50)), normal)
    assert kind == "drop" and words == "a drop of 12 % below normal, to about 28.00 (normal range 31.00 to 33.00)"
    big = NormalRange(low=1000.0, high=1002.0, wiggle=0.01, median=1001.0)
    kind, words = describe(np.full(50, 1003.0) + 0.05 * np.sin(np.arange(50)), big)
    assert kind == "rise" and "0.2 % above normal" in words and "0 %" not in words.replace("0.2 %", "")


def test_every_planted_kind_still_reads_well():
    s = as_series(planted("drop"))
    w = SeriesDetector(s.rows(0, REF)).inspect(s).windows[0]
    assert w.description.startswith("a drop of ") and "% below normal" in w.description
    assert all(
        len(x.split(".")[-1]) <= 2 for x in w.description.replace(")", " ").split() if x[0].isdigit() and "." in x
    )


def test_the_service_inspects_with_a_named_detector_and_without_matplotlib(tmp_path, monkeypatch):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from anomalens.server.app import create_app

    client = TestClient(create_app(tmp_path / "models"))
    rows = "\n".join(f"{i};{x:.4f};{int(i >= START)}" for i, x in enumerate(planted("drop")))
    upload = {"file": ("rig.csv", f"t;pressure;anomaly\n{rows}\n".encode(), "text/csv")}
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    form = {"detector": "test_level", "reference_rows": "1500"}
    body = client.post("/v1/series/inspect", files=upload, data=form).json()
    assert body["detector"] == "test_level" and body["anomalous"] and body["left_out_columns"] == ["anomaly"]
    assert "plot_png" not in body and "matplotlib" in body["plot_note"]
    unknown = client.post("/v1/series/inspect", files=upload, data={"detector": "nope"})
    assert unknown.status_code == 400 and "unknown series detector 'nope'" in unknown.json()["error"]
