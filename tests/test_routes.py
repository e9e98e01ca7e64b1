"""Routes (issue 33): every kind of data through the same seams. A new route is one folder, registered from
outside the package (`ANOMALENS_PLUGINS`), and `anomalens inspect` reads its files with no other edit; images
and series are routes too, their findings in the files' order, a file no route reads its own error."""

import json
import math
import textwrap

import pytest
from typer.testing import CliRunner

from anomalens import routes
from anomalens.cli import app, sample_root

runner = CliRunner()

# a point-cloud route, written as a contributor would: one folder, its __init__ defines and registers it
POINT_CLOUD_ROUTE = '''
"""Point clouds as x y z lines: a point far off the part's plane is a defect."""
from statistics import median
from anomalens.routes import Finding, register_route


@register_route
class PointClouds:
    name = "point_clouds"
    suffixes = (".xyz",)

    def inspect(self, paths, reference):
        for path in paths:
            try:
                heights = [float(line.split()[2]) for line in path.read_text().splitlines() if line.strip()]
            except (IndexError, ValueError):
                yield Finding(str(path), self.name, False, error=f"{path}: not x y z lines")
                continue
            level = median(heights)
            worst = max(range(len(heights)), key=lambda i: abs(heights[i] - level))
            off = abs(heights[worst] - level)
            yield Finding(str(path), self.name, True, off > 1.0, min(1.0, off / 2), f"point {worst}", "", None, {})
'''


@pytest.fixture
def own_routes(monkeypatch):
    """The registry as the package has it, restored after the test (a plugin's route does not leak)."""
    monkeypatch.delenv(routes.PLUGINS_VARIABLE, raising=False)
    routes.load_routes()  # the built-in routes registered first: a module registers once, when first imported
    monkeypatch.setattr(routes, "ROUTES", dict(routes.ROUTES))


def write_cloud(path, bump: float) -> None:
    path.write_text("".join(f"{i % 10} {i // 10} {bump if i == 37 else 0.01 * (i % 3)}\n" for i in range(100)))


def test_a_new_route_is_one_folder_registered_from_outside(tmp_path, monkeypatch, own_routes):
    plugin = tmp_path / "plugins" / "point_clouds_route"
    plugin.mkdir(parents=True)
    (plugin / "__init__.py").write_text(textwrap.dedent(POINT_CLOUD_ROUTE))
    monkeypatch.syspath_prepend(str(tmp_path / "plugins"))
    monkeypatch.setenv(routes.PLUGINS_VARIABLE, "point_clouds_route")
    write_cloud(tmp_path / "flat.xyz", 0.0)
    write_cloud(tmp_path / "dented.xyz", 3.0)
    (tmp_path / "broken.xyz").write_text("not numbers\n")
    out = tmp_path / "out"
    run = runner.invoke(
        app, ["inspect", *(str(tmp_path / n) for n in ("flat.xyz", "dented.xyz", "broken.xyz"))] + ["--out", str(out)]
    )
    assert run.exit_code == 0, run.output
    found = {f["source"].rsplit("/", 1)[-1]: f for f in json.loads((out / "findings.json").read_text())}
    assert found["flat.xyz"]["anomalous"] is False and found["dented.xyz"]["anomalous"] is True
    assert found["dented.xyz"]["where"] == "point 37" and found["dented.xyz"]["route"] == "point_clouds"
    assert not found["broken.xyz"]["ok"] and "not x y z lines" in found["broken.xyz"]["error"]


def test_a_plugin_that_cannot_be_imported_is_named(monkeypatch, own_routes):
    monkeypatch.setenv(routes.PLUGINS_VARIABLE, "no_such_route_module")
    with pytest.raises(ValueError, match="no_such_route_module"):
        routes.load_routes()


def write_series(path, jump_at: int | None) -> None:
    rows = [f"{i},{math.sin(i / 5) + (6.0 if jump_at and jump_at <= i < jump_at + 8 else 0.0):.4f}" for i in range(400)]
    path.write_text("time,value\n" + "\n".join(rows) + "\n")


def test_images_and_series_are_routes_in_one_call(tmp_path):
    weld = sample_root() / "battery_weld"
    defective = sorted((weld / "test" / "defective").iterdir())[0]
    good = sorted((weld / "test" / "good").iterdir())[0]
    write_series(tmp_path / "steady.csv", None)
    write_series(tmp_path / "jump.csv", 300)
    (tmp_path / "notes.txt").write_text("a file no route reads")
    paths = [tmp_path / "steady.csv", defective, tmp_path / "notes.txt", tmp_path / "jump.csv", good]
    findings = list(routes.inspect_files(paths))
    assert [f.source for f in findings] == [str(p) for p in paths]  # in the files' order
    assert [f.route for f in findings] == ["series", "images", "", "series", "images"]
    assert not findings[2].ok and ".txt" in (findings[2].error or "")
    assert findings[3].anomalous and findings[3].where and not findings[0].anomalous
    assert all(0 <= (f.probability or 0) <= 1 for f in findings if f.ok)


def test_one_reference_serves_one_kind(tmp_path):
    write_series(tmp_path / "a.csv", None)
    weld = sample_root() / "battery_weld"
    image = sorted((weld / "test" / "good").iterdir())[0]
    with pytest.raises(ValueError, match="one reference serves one kind"):
        list(routes.inspect_files([tmp_path / "a.csv", image], reference=weld / "train" / "good"))
    run = runner.invoke(
        app,
        [
            "inspect",
            str(tmp_path / "a.csv"),
            str(image),
            "--reference",
            str(weld / "train" / "good"),
            "--out",
            str(tmp_path / "o"),
        ],
    )
    assert run.exit_code == 2 and "one reference serves one kind" in run.output


def test_the_image_route_finds_what_detect_finds(tmp_path):
    """The images route with a folder of normal images decides as the few-shot service does."""
    from anomalens.service import InspectionService

    weld = sample_root() / "battery_weld"
    normal = sorted((weld / "train" / "good").iterdir())
    images = sorted((weld / "test" / "defective").iterdir())[:2] + sorted((weld / "test" / "good").iterdir())[:2]
    routed = list(routes.inspect_files(images, reference=weld / "train" / "good"))
    service = InspectionService()
    direct = list(service.inspect(service.fit([str(p) for p in normal]), [str(p) for p in images]))
    for finding, inspection in zip(routed, direct):
        assert finding.anomalous == inspection.result.anomalous
        assert finding.probability == pytest.approx(inspection.result.probability, abs=1e-6)


def test_the_command_line_imports_the_plugins(tmp_path, monkeypatch):
    """A series detector kept outside the package, named in ANOMALENS_PLUGINS, is registered when the CLI starts."""
    import subprocess
    import sys

    (tmp_path / "flat_detector.py").write_text(
        "import numpy as np\n"
        "from anomalens.series.registry import register_series_detector\n"
        "@register_series_detector\n"
        "class Flat:\n"
        "    name, alarm, window, context = 'test_flat', None, 1, 0\n"
        "    def fit(self, reference): return np.zeros(len(reference))\n"
        "    def score(self, values): return np.zeros(len(values))\n"
    )
    check = (
        "import anomalens.cli; from anomalens.series.registry import SERIES_DETECTORS; print(sorted(SERIES_DETECTORS))"
    )
    env = {**__import__("os").environ, routes.PLUGINS_VARIABLE: "flat_detector", "PYTHONPATH": f"{tmp_path}"}
    env["PYTHONPATH"] += ":" + ":".join(p for p in sys.path if p)
    shown = subprocess.run([sys.executable, "-c", check], env=env, capture_output=True, text=True, timeout=120)
    assert "test_flat" in shown.stdout, shown.stderr
    env[routes.PLUGINS_VARIABLE] = "no_such_plugin"
    refused = subprocess.run([sys.executable, "-c", check], env=env, capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2 and "no_such_plugin" in refused.stderr
