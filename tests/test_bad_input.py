"""Hostile but legal input at every door: broken model files (the CLI and the service's store), option
values out of range, output paths that cannot be written, markup in file names, folders holding more than
images, and a missing extra. Every one ends in a message that names the file and the problem, never a
traceback."""

import json
import os
import struct
import sys

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from typer.testing import CliRunner

from anomalens import Inspector
from anomalens.cli import app
from anomalens.data.datasets import scan_folder
from anomalens.model_file import read_model, save_model
from anomalens.service.store import ModelStore, StoreError
from conftest import save_png, texture

runner = CliRunner()
SIZE = 64


def _cli(*args):
    result = runner.invoke(app, [str(a) for a in args])
    return result, result.output


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """A small real model (memory bank, two feature stages) and its header and tensors, to break."""
    inspector = Inspector(image_size=SIZE).fit([texture(i, SIZE) for i in range(4)])
    path = inspector.save(tmp_path_factory.mktemp("model") / "good.safetensors")
    with safe_open(path, framework="pt") as handle:
        header = json.loads(handle.metadata()["anomalens"])
    return path, header, load_file(path)


def _broken(fitted, folder):
    """Broken model files, each made from the good one: {kind: (path, what its message must say)}."""
    good, header, tensors = fitted
    raw = good.read_bytes()
    header_length = struct.unpack("<Q", raw[:8])[0]

    def write(kind, tensors=tensors, header=header, text=None):
        path = folder / f"{kind}.safetensors"
        save_file(tensors, path, metadata={"anomalens": text if text is not None else json.dumps(header)})
        return path

    def raw_file(kind, data):
        path = folder / f"{kind}.safetensors"
        path.write_bytes(data)
        return path

    plain = folder / "plain.safetensors"
    save_file(tensors, plain)  # a safetensors file of something else

    def edited(part, **changes):
        return {**header, part: {**header[part], **changes}}

    wider = {**tensors, "bank0": torch.zeros(tensors["bank0"].shape[0], tensors["bank0"].shape[1] + 1)}
    return {
        "not safetensors": (raw_file("png", save_png(folder / "x.png", texture(0, 32)).read_bytes()), "safetensors"),
        "truncated file": (raw_file("truncated", raw[: len(raw) // 2]), "not a safetensors file"),
        "safetensors header cut": (raw_file("cut", raw[: 8 + header_length // 2]), "not a safetensors file"),
        "header JSON truncated": (write("json", text=json.dumps(header)[:150]), "header is not valid JSON"),
        "no AnomaLens header": (plain, "no AnomaLens description"),
        "wrong format name": (write("format", header={**header, "format": "other-model"}), "format: input should be"),
        "newer format version": (write("version", header={**header, "format_version": 9}), "format_version: 9 is newer"),
        "missing field": (write("missing", header={k: v for k, v in header.items() if k != "calibration"}), "field calibration: missing"),
        "wrong field type": (write("type", header=edited("config", image_size="big")), "config.image_size: input should be a valid integer"),
        "non-finite threshold": (write("nan", header=edited("calibration", image_threshold=float("nan"))), "calibration.image_threshold"),
        "value out of range": (write("range", header=edited("config", batch_size=0)), "config.batch_size: must be at least 1"),
        "unknown config field": (write("extra", header=edited("config", turbo=True)), "field config.turbo: not a field"),
        "unknown expert kind": (write("kind", header=edited("expert", kind="magic")), "expert.kind: unknown expert 'magic'"),
        "expert state missing": (write("grid", header={**header, "expert": {"kind": "memory_bank", "map": header["expert"]["map"]}}), "field expert.grid: missing"),
        "tensor missing": (write("tensor", tensors={k: v for k, v in tensors.items() if k != "bank1"}), "tensor bank1 missing"),
        "tensor of the wrong dtype": (write("dtype", tensors={**tensors, "bank0": tensors["bank0"].half()}), "tensor bank0 is float16"),
        "tensor of the wrong shape": (write("shape", tensors=wider), "tensor bank0 is float32"),
    }  # fmt: skip


def _forged(fitted, folder):
    """Files whose header lists their edited tensors: only scoring with the backbone finds them out."""
    _, header, tensors = fitted
    shape = list(tensors["bank0"].shape)
    forged = {
        "shape": (torch.zeros(shape[0], shape[1] + 1), "float32", [shape[0], shape[1] + 1]),
        "dtype": (tensors["bank0"].double(), "float64", shape),
    }
    paths = {}
    for kind, (bank, dtype, new_shape) in forged.items():
        listed = {**header["tensors"], "bank0": {"dtype": dtype, "shape": new_shape}}
        paths[kind] = folder / f"forged-{kind}.safetensors"
        save_file(
            {**tensors, "bank0": bank}, paths[kind], metadata={"anomalens": json.dumps({**header, "tensors": listed})}
        )
    weights = folder / "weights.safetensors"
    save_file(tensors, weights, metadata={"anomalens": json.dumps({**header, "backbone_weights_sha256": "0" * 64})})
    paths["weights"] = weights
    return paths


@pytest.mark.e2e
def test_cli_on_broken_model_files(fitted, tmp_path):
    image = save_png(tmp_path / "img.png", texture(9, SIZE))
    corpus = _broken(fitted, tmp_path)
    assert len(corpus) >= 8
    for kind, (path, problem) in corpus.items():
        for args in (("detect", "--model", path, image, "--out", tmp_path / "out" / path.stem), ("info", path)):
            result, text = _cli(*args)
            assert isinstance(result.exception, SystemExit) and result.exit_code == 2, (kind, args[0], text)
            assert f"{path}: not a usable AnomaLens model: " in text and problem in text, (kind, args[0], text)
            assert "Traceback" not in text


@pytest.mark.e2e
def test_cli_on_model_files_forged_to_other_shapes_and_weights(fitted, tmp_path):
    image = save_png(tmp_path / "img.png", texture(9, SIZE))
    expected = {
        "shape": "cannot score efficientnet_lite0 features",
        "dtype": "cannot score",
        "weights": "backbone_weights_sha256",
    }
    for kind, path in _forged(fitted, tmp_path).items():
        result, text = _cli("detect", "--model", path, image, "--out", tmp_path / kind)
        assert isinstance(result.exception, SystemExit) and result.exit_code == 2, (kind, text)
        assert f"{path}: not a usable AnomaLens model: " in text and expected[kind] in text, (kind, text)


def test_store_answers_422_with_the_reason(fitted, tmp_path):
    models = tmp_path / "models"
    models.mkdir()
    corpus = _broken(fitted, tmp_path)
    chosen = ["header JSON truncated", "tensor missing", "unknown expert kind", "wrong field type"]
    for n, kind in enumerate(chosen):
        os.replace(corpus[kind][0], models / f"bad{n}.safetensors")
    os.replace(_forged(fitted, tmp_path)["shape"], models / "forged.safetensors")
    store = ModelStore(models)
    for model_id in [f"bad{n}" for n in range(len(chosen))] + ["forged"]:
        with pytest.raises(StoreError) as refused:
            store.get(model_id)
        assert refused.value.status == 422 and "not a usable AnomaLens model" in str(refused.value)
    described = {d["id"]: d for d in store.list()}
    for n, kind in enumerate(chosen):
        assert not described[f"bad{n}"]["ok"] and corpus[kind][1] in described[f"bad{n}"]["error"]


def test_a_good_model_file_lists_its_tensors_and_loads(fitted):
    path, header, tensors = fitted
    assert header["tensors"] == {k: {"dtype": str(t.dtype)[6:], "shape": list(t.shape)} for k, t in tensors.items()}
    assert read_model(path).expert.name == "memory_bank"


def test_save_leaves_no_partial_file_when_writing_fails(fitted, tmp_path, monkeypatch):
    inspector = Inspector.load(fitted[0])

    def full_disk(tensors, filename, metadata):
        open(filename, "wb").write(b"half a model")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("anomalens.model_file.save_file", full_disk)
    with pytest.raises(OSError, match="No space"):
        save_model(tmp_path / "m.safetensors", inspector)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.e2e
@pytest.mark.parametrize(
    "args, option",
    [
        (("fit", ".", "-o", "m.safetensors", "--image-size", 0), "--image-size"),
        (("fit", ".", "-o", "m.safetensors", "--image-size", -3), "--image-size"),
        (("fit", ".", "-o", "m.safetensors", "--image-size", 31), "--image-size"),
        (("fit", ".", "-o", "m.safetensors", "--shots", 0), "--shots"),
        (("eval", ".", "--shots", 0), "--shots"),
        (("eval", ".", "--eval-size", 0), "--eval-size"),
        (("eval", ".", "--seed", -1), "--seed"),
        (("synth", ".", "-o", "x", "-n", 0), "-n"),
        (("serve", "--port", 0), "--port"),
        (("serve", "--port", 70000), "--port"),
        (("serve", "--max-request-mb", 0), "--max-request-mb"),
        (("serve", "--max-pixels", 0), "--max-pixels"),
    ],
)
def test_option_ranges_are_usage_errors(args, option):
    result, text = _cli(*args)
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit)
    assert f"Invalid value for '{option}'" in text and "Traceback" not in text


@pytest.mark.e2e
def test_fit_output_checked_before_fitting(tmp_path):
    normal = tmp_path / "normal"
    for i in range(2):
        save_png(normal / f"{i}.png", texture(i, SIZE))
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    result, text = _cli("fit", normal, "-o", blocker / "models" / "m.safetensors", "--image-size", SIZE)
    assert result.exit_code == 2 and "cannot write there" in text and "fitted" not in text
    result, text = _cli("fit", normal, "-o", tmp_path, "--image-size", SIZE)
    assert result.exit_code == 2 and "is a folder" in text
    out = tmp_path / "new" / "deeper" / "m.safetensors"
    result, text = _cli("fit", normal, "-o", out, "--image-size", SIZE)
    assert result.exit_code == 0, text
    assert sorted(p.name for p in out.parent.iterdir()) == ["m.safetensors"]  # no .partial left
    result, text = _cli("detect", normal, "--model", out, "--out", blocker)
    assert result.exit_code == 2 and "is a file" in text


@pytest.mark.e2e
def test_markup_in_paths_never_stops_a_batch(tmp_path):
    refs = tmp_path / "refs"
    for i in range(3):
        save_png(refs / f"{i}.png", texture(i, SIZE))
    folder = tmp_path / "in[/b]"  # the folder "in[" and its subfolder "b]"
    save_png(folder / "a[/b].png", texture(20, SIZE))  # "a[" / "b].png"
    save_png(folder / "[bold]odd.png", texture(21, SIZE))
    (folder / "[red]bad.png").write_bytes(b"not an image")
    out = tmp_path / "out[/b]"
    result, text = _cli("detect", folder, "--refs", refs, "--out", out)
    assert result.exit_code == 0, text
    assert "[red]bad.png" in text and "not a readable image" in text and "results and overlays in" in text
    records = json.loads((out / "results.json").read_text())
    assert [r["ok"] for r in records] == [True, False, True]
    result, text = _cli("detect", folder / "[red]bad.png", "--refs", refs, "--out", tmp_path / "o2")
    assert result.exit_code == 1 and "[red]bad.png" in text  # nothing could be inspected


def test_folder_scans_say_what_they_skip(tmp_path):
    save_png(tmp_path / "a.png", texture(0, 32))
    save_png(tmp_path / "sub" / "b.png", texture(1, 32))
    frames = [Image.fromarray(np.full((8, 8, 3), v, np.uint8)) for v in (0, 255)]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / ".hidden.png").write_bytes(b"")
    os.symlink(tmp_path / "gone.png", tmp_path / "link.png")
    images, skipped = scan_folder(tmp_path)
    assert images == [tmp_path / "a.png"]
    assert len(skipped) == 4 and all(str(tmp_path) in s for s in skipped)
    reasons = " | ".join(skipped)
    assert "anim.gif: not an image type" in reasons and "notes.txt: not an image type" in reasons
    assert "sub: a subfolder, not searched" in reasons and "link.png: not a regular file" in reasons
    images, skipped = scan_folder(tmp_path, recursive=True)
    assert images == [tmp_path / "a.png", tmp_path / "sub" / "b.png"] and len(skipped) == 3


@pytest.mark.e2e
def test_cli_reports_skipped_entries_and_bounds_the_list(tmp_path):
    normal = tmp_path / "normal"
    for i in range(2):
        save_png(normal / f"{i}.png", texture(i, SIZE))
    for i in range(25):
        (normal / f"note{i:02d}.txt").write_text("x")
    (normal / "clip.gif").write_bytes(b"GIF89a")
    result, text = _cli("synth", normal, "-o", tmp_path / "syn", "-n", 1, "--image-size", SIZE)
    assert result.exit_code == 0, text
    assert text.count("skipped:") == 21 and "clip.gif: not an image type AnomaLens reads" in text
    assert "6 more (the first 20 are listed above)" in text


@pytest.mark.e2e
def test_missing_extras_name_the_install_command(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "uvicorn", None)  # as if the serve extra were not installed
    result, text = _cli("serve", "--models", tmp_path / "models")
    assert result.exit_code == 2 and "error: the service needs the serve extra: pip install 'anomalens[serve]'" in text
    monkeypatch.setitem(sys.modules, "llama_cpp", None)
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    result, text = _cli("chat", tmp_path / "img.png", "--backend", "llama-cpp", "--llm-model", gguf, "--ask", "ok?")
    assert result.exit_code == 2 and "pip install 'anomalens[llm]'" in text
