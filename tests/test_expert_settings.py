"""Each expert owns its settings (issue 33): an expert defined here, outside the package, with a setting of its
own takes one class and one registry line; the setting is given in Python or on the command line, saved, loaded
and refused with a message naming the expert, the setting and the problem. PatchCore's settings round-trip,
and model files written before experts owned their settings (shared ones at the top of the configuration)
still load."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from pydantic import field_validator
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from typer.testing import CliRunner

from anomalens import Expert, ExpertInput, ExpertSettings, Inspector, NormalEvidence, NormalImages, register_expert
from anomalens.cli import app
from anomalens.model_file import ModelFileError, read_model
from conftest import save_png, texture

SIZE = 64


class GainSettings(ExpertSettings):
    gain: float = 1.0  # how strongly a colour's distance from the normal mean counts

    @field_validator("gain")
    @classmethod
    def _positive(cls, gain: float) -> float:
        if gain <= 0:
            raise ValueError(f"must be above 0, not {gain:g}")
        return gain


@register_expert
class GainedColourExpert(Expert):
    """Toy expert: each pixel's distance to the mean normal colour, times its own setting `gain`."""

    name = "test_gained_colour"
    needs = frozenset({"pixels", "normal", "normal_pixels"})
    Settings = GainSettings

    def __init__(self, gain: float = 1.0, mean: torch.Tensor | None = None):
        self.gain, self.mean = gain, mean

    @classmethod
    def create(cls, config, n_normal: int | None = None) -> GainedColourExpert:
        return cls(cls.own_settings(config).gain)

    def fit(self, normal: NormalImages) -> NormalEvidence:
        pixels = normal.pixels.float() / 255
        self.mean = pixels.mean((0, 2, 3))
        return NormalEvidence(*self.score(ExpertInput(pixels=pixels)), "self-similarity")

    def score(self, batch: ExpertInput) -> tuple[torch.Tensor, torch.Tensor]:
        maps = self.gain * (batch.pixels.float() - self.mean[:, None, None]).norm(dim=1)
        return maps, maps.flatten(1).amax(1)

    def state(self):
        return {"kind": self.name, "gain": self.gain}, {"mean": self.mean}

    @classmethod
    def from_state(cls, config, tensors):
        return cls(GainSettings(gain=config["gain"]).gain, tensors["mean"])


def normal_folder(tmp_path, n: int = 4):
    folder = tmp_path / "normal"
    folder.mkdir()
    for i in range(n):
        save_png(folder / f"{i}.png", texture(i, SIZE))
    return folder


def test_an_outside_expert_takes_its_setting_in_python_saves_and_loads_it(tmp_path):
    inspector = Inspector(expert="test_gained_colour", image_size=SIZE, expert_settings={"gain": 2.5})
    inspector.fit([texture(i, SIZE) for i in range(4)])
    assert inspector.expert.gain == 2.5 and inspector.config.expert_settings == {"gain": 2.5}
    loaded = Inspector.load(inspector.save(tmp_path / "gain.safetensors"))
    assert loaded.expert.gain == 2.5 and loaded.config.expert_settings == {"gain": 2.5}
    probe = texture(99, SIZE)
    assert loaded.predict(probe)[0].score == pytest.approx(inspector.predict(probe)[0].score)
    assert Inspector(expert="test_gained_colour", image_size=SIZE).config.expert_settings == {"gain": 1.0}


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"gain": 0}, "expert test_gained_colour: setting gain must be above 0, not 0"),
        ({"gain": "2"}, "expert test_gained_colour: setting gain should be a valid number, not '2'"),
        ({"gainn": 2}, "expert test_gained_colour: setting gainn is not one of this expert's settings (they are: gain)"),
    ],
)  # fmt: skip
def test_an_outside_expert_refuses_a_bad_setting_by_name(settings, message):
    with pytest.raises(ValueError) as refused:
        Inspector(expert="test_gained_colour", image_size=SIZE, expert_settings=settings)
    assert str(refused.value) == message


def test_the_command_line_gives_an_expert_its_settings(tmp_path):
    folder, model = normal_folder(tmp_path), tmp_path / "gain.safetensors"
    fit = ["fit", str(folder), "-o", str(model), "--expert", "test_gained_colour", "--image-size", str(SIZE)]
    result = CliRunner().invoke(app, [*fit, "--expert-setting", "gain=3"])
    assert result.exit_code == 0, result.output
    assert Inspector.load(model).expert.gain == 3.0
    shown = CliRunner().invoke(app, ["info", str(model)])
    assert shown.exit_code == 0 and json.loads(shown.output)["config"]["expert_settings"] == {"gain": 3.0}
    for bad, said in [
        ("gain=-1", "expert test_gained_colour: setting gain must be above 0, not -1"),
        ("gain=lots", "expert test_gained_colour: setting gain should be a valid number, not 'lots'"),
        ("gain", "--expert-setting takes KEY=VALUE, not 'gain'"),
    ]:
        refused = CliRunner().invoke(app, [*fit, "--overwrite", "--expert-setting", bad])
        assert refused.exit_code == 2 and said in " ".join(refused.output.split()), refused.output


def test_eval_gives_the_expert_its_settings(texture_dataset, tmp_path):
    evaluate = ["eval", str(texture_dataset), "--expert", "test_gained_colour", "--image-size", str(SIZE)]
    result = CliRunner().invoke(app, [*evaluate, "--out", str(tmp_path / "ok"), "--expert-setting", "gain=2"])
    assert result.exit_code == 0, result.output
    refused = CliRunner().invoke(app, [*evaluate, "--out", str(tmp_path / "bad"), "--expert-setting", "gian=2"])
    assert refused.exit_code == 2 and "expert test_gained_colour: setting gian is not one of" in refused.output


def test_patchcore_settings_round_trip_and_a_bad_one_is_refused(tmp_path):
    settings = {"coreset_ratio": 0.5, "num_neighbors": 3}
    inspector = Inspector(expert="patchcore", image_size=SIZE, expert_settings=settings)
    inspector.fit([texture(i, SIZE) for i in range(3)])
    assert (inspector.expert.coreset_ratio, inspector.expert.num_neighbors) == (0.5, 3)
    loaded = Inspector.load(inspector.save(tmp_path / "patchcore.safetensors"))
    shared = {"coreset_ratio": 0.5, "max_bank": 16_384, "num_neighbors": 3}
    assert loaded.config.expert_settings == shared | {"synthetic_images": 256}  # its decoder's, once taught
    assert (loaded.expert.coreset_ratio, loaded.expert.num_neighbors) == (0.5, 3)
    # the inspector's keywords of old are the same settings
    assert Inspector(expert="patchcore", coreset_ratio=0.05).config.expert_settings["coreset_ratio"] == 0.05
    with pytest.raises(
        ValueError, match="expert patchcore: setting coreset_ratio must be above 0 and at most 1, not 2$"
    ):
        Inspector(expert="patchcore", expert_settings={"coreset_ratio": 2})
    with pytest.raises(ValueError, match="expert patchcore: setting num_neighbors must be at most max_bank \\(4\\)"):
        Inspector(expert="patchcore", expert_settings={"max_bank": 4, "num_neighbors": 9})


def old_layout(path, target, **config):
    """The model file at `path` as AnomaLens wrote it before experts owned their settings: the shared ones at
    the top of the configuration, no `expert_settings` (and `config` besides)."""
    with safe_open(path, framework="pt") as handle:
        header = json.loads(handle.metadata()["anomalens"])
    shared = {"coreset_ratio": 0.1, "max_bank": 16_384, "num_neighbors": 9, "synthetic_images": 256}
    header["config"] = {k: v for k, v in header["config"].items() if k != "expert_settings"} | shared | config
    save_file(load_file(path), target, metadata={"anomalens": json.dumps(header)})
    return target


def test_model_files_of_old_with_shared_settings_still_load(tmp_path):
    inspector = Inspector(expert="patchcore", image_size=SIZE).fit([texture(i, SIZE) for i in range(3)])
    saved = inspector.save(tmp_path / "new.safetensors")
    old = old_layout(saved, tmp_path / "old.safetensors", coreset_ratio=0.25)
    loaded = Inspector.load(old)
    assert loaded.config.expert_settings == {"coreset_ratio": 0.25, "max_bank": 16_384, "num_neighbors": 9} | {
        "synthetic_images": 256
    }
    probe = texture(99, SIZE)
    assert loaded.predict(probe)[0].score == pytest.approx(inspector.predict(probe)[0].score)
    # an expert without them ignored them then, and does now; a bad one is refused by its name in the file
    colour = Inspector(expert="test_gained_colour", image_size=SIZE).fit([texture(i, SIZE) for i in range(3)])
    older = old_layout(colour.save(tmp_path / "colour.safetensors"), tmp_path / "colour-old.safetensors")
    assert Inspector.load(older).config.expert_settings == {"gain": 1.0}
    bad = old_layout(saved, tmp_path / "bad.safetensors", coreset_ratio=2)
    with pytest.raises(ModelFileError, match="field config.coreset_ratio: must be above 0 and at most 1, not 2$"):
        read_model(bad)
    np.testing.assert_equal(loaded.expert.bank.numpy(), inspector.expert.bank.numpy())
