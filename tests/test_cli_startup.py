"""The command line starts at once (issue 35): its help and the series commands import no torch, faiss,
onnxruntime or scipy; the models are imported by the commands that run them. Checked in a fresh process,
since the test session itself has imported them long before. (Timings: bench/cli_startup.py.)"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import textwrap
from datetime import datetime, timedelta

import pytest

HEAVY = ("torch", "faiss", "onnxruntime", "scipy", "sklearn")


def heavy_modules_after(code: str) -> dict:
    """Runs `code` in a fresh interpreter; returns what it printed last (a JSON object), to which the heavy
    modules then loaded are added under "heavy"."""
    script = textwrap.dedent(code) + textwrap.dedent(
        f"""
        import json, sys
        print(json.dumps({{**globals().get("report", {{}}), "heavy": [m for m in {HEAVY!r} if m in sys.modules]}}))
        """
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout.strip().splitlines()[-1])


def test_help_and_every_command_help_import_no_heavy_module():
    report = heavy_modules_after(
        """
        import anomalens.cli
        from anomalens.cli import app

        codes = {}
        for args in (["--help"], *([name, "--help"] for name in
                     ("fit", "teach", "detect", "eval", "chat", "serve", "synth", "demo", "info", "export"))):
            try:
                app(args, prog_name="anomalens")
            except SystemExit as done:
                codes[" ".join(args)] = done.code
        report = {"codes": codes}
        """
    )
    assert report["heavy"] == []
    assert set(report["codes"].values()) == {0}, report["codes"]  # every command's help was shown


def test_series_commands_import_no_torch(tmp_path):
    times = [datetime(2024, 1, 1) + timedelta(minutes=5 * i) for i in range(600)]
    values = [10 + 3 * math.sin(2 * math.pi * i / 50) + (6 if 450 <= i < 470 else 0) for i in range(600)]
    rows = "\n".join(f"{t.isoformat(' ')},{v:.4f}" for t, v in zip(times, values))
    (tmp_path / "line.csv").write_text("timestamp,pressure\n" + rows + "\n")
    (tmp_path / "nab" / "data" / "g").mkdir(parents=True)
    (tmp_path / "nab" / "data" / "g" / "line.csv").write_text((tmp_path / "line.csv").read_text())
    (tmp_path / "nab" / "labels").mkdir()
    (tmp_path / "nab" / "labels" / "combined_windows.json").write_text(
        json.dumps({"g/line.csv": [[times[440].isoformat(" "), times[480].isoformat(" ")]]})
    )
    report = heavy_modules_after(
        f"""
        from anomalens.cli import app

        codes = []
        for args in (["series", "detect", {str(tmp_path / "line.csv")!r}, "--out", {str(tmp_path / "o1")!r}],
                     ["series", "eval", {str(tmp_path / "nab")!r}, "--out", {str(tmp_path / "o2")!r}]):
            try:
                app(args, prog_name="anomalens")
            except SystemExit as done:
                codes.append(done.code)
        report = {{"codes": codes}}
        """
    )
    assert report["codes"] == [0, 0]
    assert json.loads((tmp_path / "o1" / "line.json").read_text())["anomalous"]
    assert (tmp_path / "o2" / "metrics.json").exists()
    assert report["heavy"] == []


def test_the_light_names_are_the_registrys():
    from anomalens.backbones import BACKBONES, DEFAULT_BACKBONE
    from anomalens.names import BACKBONE_NAMES
    from anomalens.names import DEFAULT_BACKBONE as LIGHT_DEFAULT

    assert tuple(BACKBONES) == BACKBONE_NAMES and DEFAULT_BACKBONE == LIGHT_DEFAULT


@pytest.mark.parametrize("loc, scale", [(0.3, 0.1), (1.234, 0.0567), (17.0, 3.3)])
def test_the_series_threshold_is_scipys_gumbel_quantile(loc, scale):
    stats = pytest.importorskip("scipy.stats")
    from anomalens.series.decision import GUMBEL_RETURN_QUANTILE, RETURN_BLOCKS

    expected = float(stats.gumbel_r.ppf(1.0 - 1.0 / RETURN_BLOCKS, loc, scale))
    assert GUMBEL_RETURN_QUANTILE * scale + loc == expected
