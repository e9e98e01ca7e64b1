"""anomalens.series: loading and its errors, the reference expert on each planted anomaly kind, the
streaming detector (past only, bounded), several channels, the decision, answers and the CLI end to end."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from anomalens.cli import app
from anomalens.series import (
    Series,
    SeriesDetector,
    SeriesFormatError,
    StreamingDetector,
    calibrate_series,
    load_series,
    split_reference,
)
from anomalens.series.answers import answer_series, series_findings

N, START, REF = 3000, 2000, 1000


def periodic(n: int = N, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    return 10 + 3 * np.sin(2 * np.pi * t / 50) + 0.2 * rng.standard_normal(n)


def planted(kind: str, seed: int = 0) -> np.ndarray:
    v = periodic(seed=seed)
    s = START
    if kind == "spike":
        v[s] += 8
    elif kind == "drop":
        v[s : s + 200] -= 5
    elif kind == "drift":
        v[s:] += np.linspace(0, 8, N - s)
    elif kind == "rhythm":
        t = np.arange(s, s + 300)
        v[s : s + 300] = (
            10 + 3 * np.sin(2 * np.pi * t / 17) + 0.2 * np.random.default_rng(seed + 1).standard_normal(300)
        )
    elif kind == "flat line":
        v[s : s + 150] = v[s]
    return v


def as_series(*channels: np.ndarray, names: list[str] | None = None) -> Series:
    values = np.stack(channels, axis=1)
    return Series(
        np.arange(len(values), dtype=float), values, names or [f"c{k}" for k in range(len(channels))], datetimes=False
    )


def write_csv(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


# ---------------------------------------------------------------- loading


def test_load_csv_multivariate_irregular_with_gaps_missing_cells_and_unsorted_rows(tmp_path):
    f = write_csv(
        tmp_path / "s.csv",
        "timestamp,temp,pressure\n"
        "2024-01-01 00:00:00,1.0,10\n"
        "2024-01-01 00:02:00,3.0,30\n"  # out of order: sorted by time
        "2024-01-01 00:01:00,,20\n"  # empty cell: interpolated
        "2024-01-01 00:03:00,4.0,40\n"
        "2024-01-01 01:00:00,5.0,50\n",  # a gap
    )
    s = load_series(f)
    assert s.channels == ["temp", "pressure"] and s.datetimes
    np.testing.assert_allclose(s.values[:, 0], [1, 2, 3, 4, 5])
    np.testing.assert_allclose(s.values[:, 1], [10, 20, 30, 40, 50])
    assert s.missing == 1 and s.gaps == [4]
    assert s.time_text(1) == "2024-01-01 00:01:00"
    assert load_series(f, columns=["pressure"]).channels == ["pressure"]


def test_plain_number_times_and_a_chosen_time_column(tmp_path):
    f = write_csv(tmp_path / "n.csv", "value,t\n5,0\n6,1\n7,2.5\n")
    s = load_series(f, time_column="t")
    assert not s.datetimes and s.channels == ["value"] and s.times.tolist() == [0, 1, 2.5]


@pytest.mark.parametrize(
    "text, message",
    [
        ("timestamp,value\n2024-01-01,1\n2024-01-02,abc\n", "line 3: value = 'abc' is not a number"),
        ("timestamp,value\n2024-01-01,1\nyesterday,2\n", "line 3: time 'yesterday' is neither a date nor a number"),
        ("timestamp,value\n2024-01-01,1\n2024-01-02,2,3\n", "line 3: 3 fields, the header has 2"),
        ("timestamp,value\n2024-01-01,1\n5,2\n", "line 3: time '5' mixes dates and plain numbers"),
        ("timestamp,value\n2024-01-01,1\n", "1 data rows; a series needs at least 2"),
        ("", "empty file"),
        ("timestamp,value\n2024-01-01,\n2024-01-02,\n", "column 'value' has no values"),
        ("timestamp\n2024-01-01\n2024-01-02\n", "no value column"),
    ],
)
def test_unreadable_rows_name_file_line_and_reason(tmp_path, text, message):
    f = write_csv(tmp_path / "bad.csv", text)
    with pytest.raises(SeriesFormatError, match=message) as error:
        load_series(f)
    assert str(f) in str(error.value)


def test_missing_file_column_and_parquet_without_pyarrow(tmp_path):
    with pytest.raises(SeriesFormatError, match="no such file"):
        load_series(tmp_path / "nope.csv")
    f = write_csv(tmp_path / "s.csv", "timestamp,value\n2024-01-01,1\n2024-01-02,2\n")
    with pytest.raises(SeriesFormatError, match="no column 'flow'"):
        load_series(f, columns=["flow"])
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        (tmp_path / "s.parquet").write_bytes(b"PAR1")
        with pytest.raises(SeriesFormatError, match="needs pyarrow"):
            load_series(tmp_path / "s.parquet")


def test_reference_is_the_first_part():
    s = as_series(periodic())
    ref, whole = split_reference(s, 0.25)
    assert len(ref) == N // 4 and whole is s
    with pytest.raises(ValueError):
        split_reference(s, 1.5)


# ---------------------------------------------------------------- reference expert, decision, windows


@pytest.mark.parametrize("kind", ["spike", "drop", "drift", "rhythm", "flat line"])
def test_each_planted_anomaly_is_found_where_it_is_and_named(kind):
    s = as_series(planted(kind))
    result = SeriesDetector(s.rows(0, REF)).inspect(s, starts_with_reference=True)
    assert result.anomalous and result.probability > 0.9
    best = max(result.windows, key=lambda w: w.peak_score)
    assert best.start - 40 <= START <= best.end + 40 or (kind == "drift" and best.start >= START)
    assert best.kind == kind, best.description
    assert all(w.start >= START - 40 for w in result.windows)  # nothing before the anomaly


def test_clean_series_has_no_window_and_a_low_probability():
    s = as_series(periodic(seed=3))
    result = SeriesDetector(s.rows(0, REF)).inspect(s, starts_with_reference=True)
    assert not result.anomalous and result.probability < 0.5


def test_drop_is_described_in_percent_of_normal():
    s = as_series(planted("drop"))
    w = SeriesDetector(s.rows(0, REF)).inspect(s).windows[0]
    assert w.description.startswith("a drop of ") and "% below normal" in w.description


def test_which_channel_drives_the_anomaly():
    a, b, c = periodic(seed=1), planted("drop", seed=2), periodic(seed=3)
    s = as_series(a, b, c, names=["inlet", "outlet", "motor"])
    result = SeriesDetector(s.rows(0, REF)).inspect(s)
    assert result.windows and result.windows[0].channels[0] == "outlet"
    assert result.channel_scores.shape == (N, 3)


def test_threshold_from_normal_data_and_max_false_alarms():
    rng = np.random.default_rng(0)
    normal = rng.gumbel(1.0, 0.2, size=4000)
    free = calibrate_series(normal, window=8)
    assert free.threshold > np.percentile(normal, 99)
    strict = calibrate_series(normal, window=8, max_reference_alarms=0)
    assert strict.threshold > normal.max() and strict.threshold >= free.threshold


# ---------------------------------------------------------------- streaming


def test_streaming_scores_only_from_the_past_and_flags_a_level_shift_and_a_spike():
    v = periodic(4000, seed=5)
    v[3000:] += 6  # level shift
    v[2000] += 10  # spike
    scores = StreamingDetector(learning=600).update(v)
    again = StreamingDetector(learning=600).update(v[:2500])
    np.testing.assert_allclose(scores[:2500], again, atol=2e-3)  # later points change nothing before them
    alarms = np.flatnonzero(scores >= 0.99)
    assert any(2000 <= a <= 2010 for a in alarms) and any(3000 <= a <= 3020 for a in alarms)
    assert ((alarms > 700) & (alarms < 1990)).sum() <= 2  # few false alarms on the normal stretch


@pytest.mark.parametrize("kind", ["spike", "drop", "drift", "rhythm", "flat line"])
def test_streaming_flags_each_planted_anomaly_from_the_past_alone(kind):
    scores = StreamingDetector(learning=600).update(planted(kind))
    alarms = np.flatnonzero(scores >= 0.99)
    assert any(START <= a <= START + 300 for a in alarms), kind  # raised within the anomaly
    assert ((alarms > 700) & (alarms < START)).sum() <= 2  # few false alarms on the normal stretch before it


def test_streaming_memory_is_bounded():
    d = StreamingDetector(bank=500, history=600, chunk=128)
    for k in range(10):
        d.update(periodic(2000, seed=k))
    assert d._past.size <= d._keep and all(t.history.size <= 600 for t in d._tails)
    assert all(b.stop - b.start <= d._keep for b in d._banks)


def test_the_streaming_detector_by_name_reports_the_driving_channel():
    a, b = periodic(3000, seed=1), periodic(3000, seed=2)
    b[2500] += 12
    s = as_series(a, b)
    result = SeriesDetector(s.rows(0, 450), "streaming").inspect(s, starts_with_reference=True)
    online = StreamingDetector(learning=450).update(b)
    np.testing.assert_allclose(result.channel_scores[450:, 1], online[450:], atol=2e-3)  # the same stream, once
    peak = 2500 + int(np.argmax(result.scores[2500:2510]))
    assert result.scores[peak] >= 1 and result.windows[0].channels[0] == "c1"


# ---------------------------------------------------------------- answers and CLI


def test_answers_are_grounded_in_the_findings():
    s = as_series(planted("drop"), names=["pressure"])
    result = SeriesDetector(s.rows(0, REF)).inspect(s)
    f = series_findings(result, REF)
    assert answer_series("Is anything wrong?", f).startswith("Yes")
    assert f.windows[0].start in answer_series("When did it happen?", f)
    assert "pressure" in answer_series("Which sensor?", f)
    assert "%" in answer_series("How sure are you?", f) and f"{REF} normal reference points" in answer_series(
        "how sure?", f
    )
    assert "between" in answer_series("What does normal look like?", f)
    clean = series_findings(SeriesDetector(s.rows(0, REF)).inspect(s.rows(0, REF)), REF)
    assert answer_series("Is anything wrong?", clean).startswith("No")


def test_cli_detect_series_writes_json_and_plot(tmp_path):
    v = planted("drop")
    rows = "\n".join(f"{i},{x:.4f}" for i, x in enumerate(v))
    data = write_csv(tmp_path / "line.csv", "t,pressure\n" + rows + "\n")
    bad = write_csv(tmp_path / "bad.csv", "t,pressure\n0,1\n1,oops\n")
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["series", "detect", str(data), str(bad), "--out", str(out)])
    assert result.exit_code == 0, result.output
    record = json.loads((out / "line.json").read_text())
    assert record["anomalous"] and record["windows"][0]["kind"] == "drop"
    assert (out / "line.png").stat().st_size > 10_000
    assert "Yes" in record["answers"]["Is anything wrong?"]
    assert "line 3" in result.output  # the bad file is reported and skipped
    only_bad = CliRunner().invoke(app, ["series", "detect", str(bad), "--out", str(tmp_path / "o2")])
    assert only_bad.exit_code == 1
    both = ["series", "detect", str(data), "--reference-rows", "500", "--reference-until", "900"]
    mixed = CliRunner().invoke(app, [*both, "--out", str(tmp_path / "o3")])
    assert mixed.exit_code == 2 and "--reference-rows" in mixed.output


def test_cli_eval_series_on_a_tiny_nab_layout(tmp_path):
    v = periodic(3000, seed=4)
    v[2400:2460] += 9
    times = [f"2024-01-{1 + i // 288:02d} {(i % 288) * 5 // 60:02d}:{(i % 288) * 5 % 60:02d}:00" for i in range(3000)]
    (tmp_path / "data" / "g").mkdir(parents=True)
    (tmp_path / "data" / "g" / "line.csv").write_text(
        "timestamp,value\n" + "\n".join(f"{t},{x:.4f}" for t, x in zip(times, v))
    )
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels" / "combined_windows.json").write_text(json.dumps({"g/line.csv": [[times[2350], times[2500]]]}))
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["series", "eval", str(tmp_path), "--out", str(out)])
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["total"]["windows"] == 1 and metrics["total"]["found"] == 1
    missing = CliRunner().invoke(app, ["series", "eval", str(tmp_path / "data"), "--out", str(tmp_path / "o2")])
    assert missing.exit_code == 2 and "combined_windows.json" in missing.output


def test_service_series_inspect_and_chat(tmp_path):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from anomalens.server.app import create_app

    client = TestClient(create_app(tmp_path / "models"))
    v = planted("drop")
    csv_bytes = ("t,pressure\n" + "\n".join(f"{i},{x:.4f}" for i, x in enumerate(v)) + "\n").encode()
    response = client.post("/v1/series/inspect", files={"file": ("line.csv", csv_bytes, "text/csv")})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["anomalous"] and body["windows"][0]["kind"] == "drop" and body["answer"].startswith("Yes")
    assert base64.b64decode(body["plot_png"])[:4] == b"\x89PNG"
    chat = client.post("/v1/series/chat", json={"series_id": body["series_id"], "question": "Which sensor?"})
    assert chat.status_code == 200 and "pressure" in chat.json()["answer"]
    bad = client.post("/v1/series/inspect", files={"file": ("bad.csv", b"t,v\n0,1\n1,x\n", "text/csv")})
    assert bad.status_code == 400 and "bad.csv, line 3" in bad.json()["error"]
    assert client.post("/v1/series/chat", json={"series_id": "nope", "question": "when?"}).status_code == 404
    assert client.post("/v1/series/chat", json={"series_id": body["series_id"], "question": "   "}).status_code == 422


class ScriptedModel:
    """A language-model backend that says what it is told to."""

    name, vision = "scripted", False

    def __init__(self, reply: str):
        self.reply, self.seen = reply, []

    def complete(self, messages: list[dict]) -> str:
        self.seen.append(messages)
        return self.reply


def test_a_language_model_answers_from_the_findings_and_the_guard_corrects_it():
    from anomalens.series.answers import SeriesChat

    s = Series(np.arange(N, dtype=float) * 300 + 1.7e9, planted("drop")[:, None], ["pressure"])
    findings = series_findings(SeriesDetector(s.rows(0, REF)).inspect(s), REF)
    start = findings.windows[0].start
    honest = SeriesChat(findings, ScriptedModel(f"Yes, the pressure dropped from {start}."))
    turn = honest.ask("When?")
    assert turn.answer.endswith(f"{start}.") and not turn.corrected and turn.backend == "scripted"
    assert "Window 1" in honest.model.seen[0][0]["content"]  # the findings are in the system prompt
    for reply in ("No, everything is normal.", "I'm not able to find anomalies in this series."):
        denial = SeriesChat(findings, ScriptedModel(reply)).ask("Is anything wrong?")
        assert denial.corrected and denial.answer.startswith("Yes")
    invented = SeriesChat(findings, ScriptedModel("It happened on 1999-01-01 12:00.")).ask("When?")
    assert invented.corrected and "1999-01-01 12:00" in invented.problems[0]


def test_criteria_name_the_series_describe_normal_and_name_known_kinds():
    from anomalens.language.criteria import parse_criteria

    criteria = parse_criteria(
        {
            "name": "boiler pressure",
            "description": "It swings between 7 and 13 bar every 50 readings.",
            "defects": [{"name": "valve leak", "description": "a slow drop of the pressure"}],
        }
    )
    s = as_series(planted("drop"), names=["pressure"])
    f = series_findings(SeriesDetector(s.rows(0, REF)).inspect(s), REF, criteria)
    assert f.windows[0].known_defect == "valve leak"
    assert "boiler pressure" in answer_series("Is anything wrong?", f) and "valve leak" in answer_series("When?", f)
    assert "every 50 readings" in answer_series("What does normal look like?", f)
