"""Every field of a model file's header, rewritten one at a time to a hostile value: the file then loads,
predicts and shows (`anomalens info`) correctly, or is refused with the clear model-file error that names the
file and the field, never another exception (issue 35). Plus the four edits users reported, and headers that
are not JSON, or not an object."""

from __future__ import annotations

import copy
import io
import itertools
import json
import math
import re
import struct
import time
from functools import cache
from pathlib import Path

import pytest
import typer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rich.console import Console
from safetensors import safe_open
from safetensors.torch import load_file, save_file

import anomalens.inspector
from anomalens import Inspector
from anomalens.cli import common, models, sample_root
from anomalens.model_file import ModelFileError, read_model

SIZE = 64  # small inputs: each case loads and predicts one image
SAMPLE = sample_root() / "battery_weld"
NAN, INF = float("nan"), float("inf")
HOSTILE = [-3, -1, 0, 10**9, 2**63, 1e308, -1e308, NAN, INF, -INF]  # numbers out of every range
HOSTILE += ["x", "9", "", True, False, None, [], ["9"], {}, {"9": 9}]  # and the wrong types
EXPERTS = {"memory_bank": {}, "patchcore": {"expert": "patchcore"}, "fused": {"expert": "both", "synthetic_images": 16}}
backbone = cache(anomalens.inspector.create_backbone)  # built once for every load (`Inspector.load` builds one)


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """Each expert the tests fit cheaply, fitted once on four sample images: {name: (header, tensors)}."""
    folder = tmp_path_factory.mktemp("fuzz")
    train = sorted((SAMPLE / "train" / "good").glob("*.png"))[:4]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(anomalens.inspector, "create_backbone", backbone)
        fitted = {}
        for name, options in EXPERTS.items():
            path = Inspector(image_size=SIZE, **options).fit(train).save(folder / f"{name}.safetensors")
            with safe_open(path, framework="pt") as handle:
                fitted[name] = json.loads(handle.metadata()["anomalens"]), load_file(path)
        yield fitted


@pytest.fixture(scope="module")
def image() -> Path:
    return sorted((SAMPLE / "test" / "good").glob("*.png"))[0]


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cases")


def fields(node, path=()):
    """The path of every field in a JSON value, containers and their items alike (list items by index)."""
    if path:
        yield path
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, value in items:
        yield from fields(value, (*path, key))


def rewritten(header: dict, path: tuple, value) -> dict:
    header = copy.deepcopy(header)
    node = header
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return header


def dotted(path: tuple) -> str:
    return ".".join(str(part) for part in path)


def names_the_field(message: str, edited: str) -> bool:
    """The message names the edited field, a field above or below it, or (a check across fields) mentions it."""
    for named in re.findall(r"field ([^\s:]+):", message):
        if named == edited or edited.startswith(named + ".") or named.startswith(edited + "."):
            return True
    return edited in message


def check_case(path: Path, edited: str, image: Path) -> str:
    """Loads the file and predicts on one image, as `anomalens detect --model` does (the service loads through
    `Inspector.load`), and shows it as `anomalens info` does: each works, or fails with the clear error naming
    the file and the field. What each did: "ok/ok", "refused/refused" or, for a file only loading refuses (a
    backbone check), "refused/ok"."""
    outcomes = []
    try:
        inspector = Inspector.load(path)
        [result] = inspector.predict(image)
        assert result.error is None and math.isfinite(result.score), (edited, result)
        assert 0 <= result.probability <= 1, (edited, result)
        outcomes.append("ok")
    except ModelFileError as error:
        message = str(error)
        assert message.startswith(f"{path}: not a usable AnomaLens model: "), message
        assert names_the_field(message, edited), (edited, message)
        outcomes.append("refused")
    shown, said = io.StringIO(), io.StringIO()
    consoles = models.console, common.err
    models.console, common.err = Console(file=shown, width=10_000), Console(file=said, width=10_000, soft_wrap=True)
    try:
        models.info(path)
        json.loads(shown.getvalue())  # the header, as the file holds it
        outcomes.append("ok")
    except typer.Exit as exit:
        assert exit.exit_code == 2 and str(path) in said.getvalue(), said.getvalue()
        assert names_the_field(said.getvalue(), edited), (edited, said.getvalue())
        outcomes.append("refused")
    finally:
        models.console, common.err = consoles
    return "/".join(outcomes)


@pytest.fixture(scope="module")
def cases(fitted, image, folder):
    """A function that runs one case, (expert, path of a field, hostile value), and what each case did."""
    counter, seen = itertools.count(), {}
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(anomalens.inspector, "create_backbone", backbone)

        def run(expert: str, path: tuple, value) -> str:
            header, tensors = fitted[expert]
            file = folder / f"case{next(counter)}.safetensors"
            save_file(tensors, file, metadata={"anomalens": json.dumps(rewritten(header, path, value))})
            try:
                seen[(expert, dotted(path), repr(value))] = outcome = check_case(file, dotted(path), image)
            finally:
                file.unlink()
            return outcome

        yield run, seen


def test_every_expert_lists_fields_to_break(fitted):
    counts = {name: len(list(fields(header))) for name, (header, _) in fitted.items()}
    assert all(n > 40 for n in counts.values()), counts
    assert ("expert", "num_neighbors") in set(fields(fitted["patchcore"][0]))
    assert ("expert", "decoder", "temperature") in set(fields(fitted["fused"][0]))


@pytest.fixture(scope="module")
def every_field(fitted) -> list[tuple[str, tuple]]:
    return [(name, path) for name, (header, _) in fitted.items() for path in fields(header)]


def test_hostile_fields_load_or_are_refused_with_the_field_named(every_field, cases):
    run, seen = cases
    started = time.perf_counter()

    @settings(max_examples=600, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(st.sampled_from(every_field), st.sampled_from(HOSTILE))
    def case(field, value):
        run(*field, value)

    case()
    outcomes = list(seen.values())
    print(
        f"\n{len(seen)} cases in {time.perf_counter() - started:.1f} s: {outcomes.count('ok/ok')} worked, "
        f"{outcomes.count('refused/refused')} refused, {outcomes.count('refused/ok')} refused by loading alone"
    )
    assert len(seen) >= 500  # distinct ones


def test_every_field_meets_a_hostile_value(every_field, cases):
    """Sampling may miss a field: here each one meets a hostile value (the values in turn)."""
    run, _ = cases
    for n, (expert, path) in enumerate(every_field):
        run(expert, path, HOSTILE[n % len(HOSTILE)])


def _edited(fitted, folder: Path, expert: str, path: tuple, value) -> Path:
    header, tensors = fitted[expert]
    file = folder / f"{expert}-{dotted(path)}-{value}.safetensors"
    save_file(tensors, file, metadata={"anomalens": json.dumps(rewritten(header, path, value))})
    return file


@pytest.mark.parametrize(
    ("expert", "path", "value", "message"),
    [
        # the four edits users reported
        ("patchcore", ("expert", "num_neighbors"), -3, "field expert.num_neighbors: input should be greater than or equal to 1, not -3"),
        ("patchcore", ("config", "num_neighbors"), -3, "field config.num_neighbors: must be at least 1, not -3"),
        ("patchcore", ("expert", "num_neighbors"), "9", "field expert.num_neighbors: input should be a valid integer, not '9'"),
        ("patchcore", ("config", "num_neighbors"), "9", "field config.num_neighbors: input should be a valid integer, not '9'"),
        ("patchcore", ("expert", "num_neighbors"), 10**9, "field expert.num_neighbors: must be at most the bank's 26 rows, not 1000000000"),
        ("memory_bank", ("config", "num_neighbors"), 10**9, "field config.num_neighbors: must be at most config.max_bank (16384)"),
        ("memory_bank", ("calibration", "n_normal"), -1, "field calibration.n_normal: must be at least 1, not -1"),
        # and their kin: a bool is not a count, a count beyond what was fitted, fields across experts
        ("patchcore", ("expert", "num_neighbors"), True, "field expert.num_neighbors: input should be a valid integer, not True"),
        ("memory_bank", ("calibration", "n_normal"), 10**9, "field calibration.n_normal: 1000000000 normal images, but the model was fitted on 4"),
        ("memory_bank", ("expert", "grid", 0), 0, "field expert.grid.0: input should be greater than or equal to 1"),
        ("memory_bank", ("calibration", "pixel_floor"), 1e308, "field calibration.pixel_floor: must be at most calibration.pixel_threshold"),
        ("fused", ("expert", "memory", "grid", 1), 3, "field expert.memory.grid: 8×3 cells an image do not divide the bank's 256 rows"),
        ("fused", ("expert", "decoder", "dim"), 10**9, "field expert.decoder.dim: is 1000000000, but the tensor embeddings is [2, 32]"),
        ("fused", ("expert", "decoder", "temperature"), 0, "field expert.decoder.temperature: input should be greater than 0"),
        ("fused", ("expert", "statistics", "memory_score", 1), -1, "field expert.statistics.memory_score.1: a scale must be above 0"),
        ("fused", ("config", "expert"), "patchcore", "field config.expert: 'patchcore' makes a patchcore expert, but expert.kind is fused"),
    ],
)  # fmt: skip
def test_edited_fields_are_refused_by_name(fitted, tmp_path, expert, path, value, message):
    file = _edited(fitted, tmp_path, expert, path, value)
    with pytest.raises(ModelFileError) as refused:
        read_model(file)
    assert str(refused.value).startswith(f"{file}: not a usable AnomaLens model: ") and message in str(refused.value)


@pytest.mark.e2e
def test_detect_on_the_reported_edits_exits_2_with_the_field(fitted, tmp_path, image):
    from typer.testing import CliRunner

    from anomalens.cli import app

    for n, (path, value) in enumerate([(("expert", "num_neighbors"), -3), (("calibration", "n_normal"), -1)]):
        file = _edited(fitted, tmp_path, "patchcore", path, value)
        result = CliRunner().invoke(
            app, ["detect", "--model", str(file), str(image), "--out", str(tmp_path / f"out{n}")]
        )
        assert result.exit_code == 2 and f"field {dotted(path)}:" in result.output, result.output
        assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"format": "anomalens-model", ', "header is not valid JSON"),
        ("not JSON at all", "header is not valid JSON"),
        ("[1, 2]", "header: input should be an object"),
        ('"anomalens-model"', "header: input should be an object"),
        ("null", "header: input should be an object"),
        ("9", "header: input should be an object"),
    ],
)
def test_a_header_that_is_not_a_json_object_is_refused(fitted, tmp_path, text, message):
    file = tmp_path / "header.safetensors"
    save_file(fitted["memory_bank"][1], file, metadata={"anomalens": text})
    with pytest.raises(ModelFileError) as refused:
        read_model(file)
    assert str(refused.value) == f"{file}: not a usable AnomaLens model: {str(refused.value).split(': ', 2)[2]}"
    assert message in str(refused.value)


@pytest.mark.parametrize(
    "safetensors_header",
    [b"not json", b"[1, 2]", b'"text"', b'{"__metadata__": [1]}', b'{"__metadata__": {"anomalens": 5}}', b"{"],
)
def test_a_safetensors_header_that_is_not_a_json_object_is_refused(tmp_path, safetensors_header):
    """safetensors' own header (the length, then JSON) that is no object, or metadata that is not text."""
    file = tmp_path / "raw.safetensors"
    file.write_bytes(struct.pack("<Q", len(safetensors_header)) + safetensors_header)
    with pytest.raises(ModelFileError) as refused:
        read_model(file)
    assert str(refused.value).startswith(f"{file}: not a usable AnomaLens model: ")
    assert "not a safetensors file" in str(refused.value) or "no AnomaLens description" in str(refused.value)


@pytest.mark.parametrize(
    ("expert", "drop", "message"),
    [
        ("memory_bank", "image_ids", "field tensors.image_ids: missing"),
        ("patchcore", "bank", "field tensors.bank: missing"),
        ("fused", "memory.image_ids", "field tensors.memory.image_ids: missing"),
        ("fused", "decoder.embeddings", "field tensors.decoder.embeddings: missing"),
    ],
)
def test_a_tensor_an_expert_lacks_is_named_as_in_the_file(fitted, tmp_path, expert, drop, message):
    """A file whose header lists exactly its tensors, less one its expert reads: the expert names it."""
    header, tensors = fitted[expert]
    header = {**header, "tensors": {k: v for k, v in header["tensors"].items() if k != drop}}
    file = tmp_path / "dropped.safetensors"
    save_file({k: v for k, v in tensors.items() if k != drop}, file, metadata={"anomalens": json.dumps(header)})
    with pytest.raises(ModelFileError, match=re.escape(message)):
        read_model(file)
