"""`anomalens teach` from folders of corrected images: a new version beside the model with its lineage (shown by
`anomalens info --lineage`), `--restore`, and bad input refused with the file at fault named."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from anomalens import Inspector
from anomalens.cli import app
from anomalens.result import file_version
from conftest import plant_defect, save_png, texture
from test_defect_types import scratch

SIZE = 64


@pytest.fixture(scope="module")
def corrected(tmp_path_factory):
    """A fitted model, and folders of what a person corrected: normal images, defects, masks, types."""
    folder = tmp_path_factory.mktemp("corrected")
    model = Inspector(image_size=SIZE, synthetic_images=16).fit([texture(i, SIZE) for i in range(3)])
    model.save(folder / "line.safetensors")
    for i in range(2):
        save_png(folder / "normal" / f"ok{i}.png", texture(40 + i, SIZE))
    for i in range(2):
        image, mask, _ = plant_defect(texture(60 + i, SIZE), i, radius=6)
        save_png(folder / "defect" / f"blob{i}.png", image)
        save_png(folder / "masks" / f"blob{i}_mask.png", mask)
        save_png(folder / "defect" / f"line{i}.png", scratch(texture(70 + i, 128), i)[::2, ::2])
    (folder / "types.csv").write_text("blob0.png,blob\nblob1.png,blob\nline0.png,scratch\nline1.png,scratch\n")
    return folder


def run(*args: str):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_teach_writes_the_next_version_and_info_shows_its_lineage(corrected):
    model = corrected / "line.safetensors"
    original = file_version(model)
    done = run(
        "teach", model, "--normal", corrected / "normal", "--defect", corrected / "defect",
        "--masks", corrected / "masks", "--types", corrected / "types.csv",
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    v2 = corrected / "line.v2.safetensors"
    assert "v2 from v1" in done.output and "2 normal, 4 defective (blob 2, scratch 2)" in done.output
    assert file_version(model) == original  # never over the user's file
    taught = [line for line in (corrected / "line.corrections.jsonl").read_text().splitlines()]
    assert len(taught) == 6 and {json.loads(line)["version"] for line in taught} == {2}
    shown = run("info", v2, "--lineage")
    assert shown.exit_code == 0 and "v2 from v1" in shown.output, shown.output
    lineage = json.loads(run("info", v2).output)["lineage"]
    assert [t["where"] for t in lineage[0]["taught"]].count("mask") == 2
    assert Inspector.load(v2).defect_types.names == ["blob", "scratch"]

    back = run("teach", v2, "--restore", "1")
    assert back.exit_code == 0 and "v1 restored" in back.output, back.output
    assert "v3 from v2" in run("info", corrected / "line.v3.safetensors", "--lineage").output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--types", "types.csv"], "types.csv: 'blob0.png' is not one of the --defect images"),
        (["--defect", "defect", "--types", "bad.csv"], "bad.csv: line 2 is not 'image file name,type'"),
        (["--defect", "defect", "--types", "bad.json"], "bad.json: not JSON"),
        (["--defect", "defect", "--masks", "nowhere"], "nowhere: not a folder of masks"),
        (["--normal", "broken.png"], "broken.png"),
        (["--corrections", "bad.jsonl"], "bad.jsonl line 1: a.png: verdict must be normal or defective"),
        (["--restore", "7"], "no version 7 beside it"),
        ([], "nothing to teach"),
    ],
)
def test_bad_input_is_refused_naming_the_file(corrected, tmp_path, args, message):
    (tmp_path / "bad.csv").write_text("blob0.png,blob\njust one column\n")
    (tmp_path / "bad.json").write_text("{not json")
    (tmp_path / "broken.png").write_bytes(b"not an image")
    (tmp_path / "bad.jsonl").write_text(json.dumps({"image": "a.png", "verdict": "fine"}) + "\n")
    where = {"types.csv": corrected / "types.csv", "defect": corrected / "defect"}
    paths = [str(where.get(a, tmp_path / a)) if not a.startswith("--") and not a.isdigit() else a for a in args]
    done = run("teach", corrected / "line.safetensors", *paths)
    assert done.exit_code == 2, done.output
    assert message in " ".join(done.output.split()), done.output
    assert not (corrected / "line.v9.safetensors").exists()


def test_a_mask_that_does_not_fit_its_image_is_named(corrected, tmp_path):
    save_png(tmp_path / "defect" / "d.png", plant_defect(texture(90, SIZE), 0, 6)[0])
    save_png(tmp_path / "masks" / "d.png", np.ones((10, 10), bool))
    done = run("teach", corrected / "line.safetensors", "--defect", tmp_path / "defect", "--masks", tmp_path / "masks")
    assert done.exit_code == 2 and "mask is 10x10 but its image is 64x64" in " ".join(done.output.split())


def test_passed_parts_given_let_a_one_reference_model_learn_its_defects(corrected, tmp_path):
    """`--passed`: the parts the line let stand place the line, and a model fitted on one reference learns its
    defects' look beside them (without, it says the head waits)."""
    model = tmp_path / "one.safetensors"
    Inspector(image_size=SIZE, synthetic_images=16).fit([texture(0, SIZE)]).save(model)
    for i in range(9):
        save_png(tmp_path / "passed" / f"part{i}.png", texture(200 + i, SIZE))
    defects = ["--defect", corrected / "defect" / "blob0.png", "--defect", corrected / "defect" / "blob1.png"]
    alone = run("teach", model, *defects, "--masks", corrected / "masks", "-o", tmp_path / "alone.safetensors")
    assert alone.exit_code == 0 and "two normal images" in " ".join(alone.output.split()), alone.output
    done = run("teach", model, *defects, "--masks", corrected / "masks", "--passed", tmp_path / "passed")
    said = " ".join(done.output.split())
    assert done.exit_code == 0 and "two normal images" not in said, done.output
    assert "expert memory_bank → fused" in said and "9 passed parts scored" in said and "passed-parts" in said


@pytest.mark.e2e
def test_the_chat_names_the_types_a_model_was_taught(corrected, tmp_path):
    model = tmp_path / "typed.safetensors"
    taught = run(
        "teach", corrected / "line.safetensors", "--defect", corrected / "defect", "--types", corrected / "types.csv",
        "--out", model,
    )  # fmt: skip
    assert taught.exit_code == 0, taught.output
    query = save_png(tmp_path / "query.png", scratch(texture(95, 128), 5)[::2, ::2])
    done = run("chat", query, "--model", model, "--ask", "Which defect is it?", "--json")
    assert done.exit_code == 0, done.output
    record = json.loads(done.output[done.output.index("{") :])
    assert record["findings"]["defect_type"]["name"] == "scratch"
