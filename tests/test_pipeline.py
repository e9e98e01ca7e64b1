"""The pipeline's seams: an expert written outside the package goes through the public API unchanged
(fit, predict, save, load); predict is stateless (threads agree with a serial run); the exported
inference graph gives the inspector's own maps and scores."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch

from anomalens import Expert, ExpertInput, Inspector, NormalEvidence, NormalImages, register_expert
from anomalens.pixels import to_batch
from conftest import plant_defect, texture


@register_expert
class MeanColourExpert(Expert):
    """Toy expert: each pixel's distance to the mean normal colour (no backbone at all)."""

    name = "test_mean_colour"
    needs = frozenset({"pixels", "normal", "normal_pixels"})

    def __init__(self, mean: torch.Tensor | None = None):
        self.mean = mean

    def fit(self, normal: NormalImages) -> NormalEvidence:
        pixels = normal.pixels.float() / 255
        self.mean = pixels.mean((0, 2, 3))
        maps, scores = self.score(ExpertInput(pixels=pixels))
        return NormalEvidence(maps, scores, "self-similarity")

    def score(self, batch: ExpertInput) -> tuple[torch.Tensor, torch.Tensor]:
        maps = (batch.pixels.float() - self.mean[:, None, None]).norm(dim=1)
        return maps, maps.flatten(1).amax(1)

    def module(self) -> torch.nn.Module:
        expert = self

        class Scorer(torch.nn.Module):
            def forward(self, pixels):
                return expert.score(ExpertInput(pixels=pixels))

        return Scorer()

    def state(self):
        return {"kind": self.name}, {"mean": self.mean}

    @classmethod
    def from_state(cls, config, tensors):
        return cls(tensors["mean"])


def test_an_expert_from_outside_the_package_fits_predicts_saves_and_loads(tmp_path):
    normals = [texture(i) for i in range(6)]
    defect, mask, _ = plant_defect(texture(50), 0, radius=14)
    inspector = Inspector(expert="test_mean_colour", image_size=64).fit(normals)
    assert inspector.backbone is None  # it needs no features, so no network is loaded
    results = inspector.predict([defect, texture(51)])
    assert results[0].score > results[1].score and results[0].expert == "test_mean_colour"
    y, x = np.unravel_index(results[0].anomaly_map.argmax(), results[0].anomaly_map.shape)
    assert mask[max(0, y - 6) : y + 7, max(0, x - 6) : x + 7].any()  # the peak is on the dark blob
    path = inspector.save(tmp_path / "toy.safetensors")
    reloaded = Inspector.load(path).predict([defect, texture(51)])
    assert [r.score for r in reloaded] == [r.score for r in results]
    assert [r.anomalous for r in reloaded] == [r.anomalous for r in results]


@pytest.fixture(scope="module")
def fitted() -> Inspector:
    return Inspector(image_size=128).fit([texture(i) for i in range(5)])


def test_predict_from_threads_equals_a_serial_run(fitted):
    batches = [[texture(100 + 4 * k + i) for i in range(4)] + [plant_defect(texture(200 + k), k)[0]] for k in range(4)]
    serial = [[(r.score, r.anomalous, r.location) for r in fitted.predict(b)] for b in batches]
    state = (fitted.expert, fitted.calibration)
    with ThreadPoolExecutor(max_workers=4) as pool:
        threaded = list(pool.map(lambda b: [(r.score, r.anomalous, r.location) for r in fitted.predict(b)], batches))
    assert threaded == serial and (fitted.expert, fitted.calibration) == state


def test_zero_shot_predict_leaves_the_inspector_as_it_was():
    inspector = Inspector.zero_shot("mutual", image_size=128)
    before = (inspector.expert, inspector.calibration)
    first = inspector.predict([texture(i) for i in range(6)] + [plant_defect(texture(9), 0)[0]])
    assert (inspector.expert, inspector.calibration) == before and inspector.calibration is None
    assert first[-1].calibration is not None  # the batch's own calibration travels with its results


@pytest.mark.parametrize("expert", ["memory_bank", "patchcore"])
def test_the_inference_graph_gives_the_inspectors_maps_and_scores(expert):
    inspector = Inspector(expert=expert, image_size=128).fit([texture(i) for i in range(4)])
    images = [plant_defect(texture(300), 0)[0], texture(301)]
    results = inspector.predict(images)
    with torch.inference_mode():
        maps, scores = inspector.graph()(to_batch(images, 128))
    np.testing.assert_allclose(scores.numpy(), [r.score for r in results], rtol=1e-4)
    for small, result in zip(maps.numpy(), results):
        assert np.abs(small.max() - result.anomaly_map.max()) <= 1e-4 * np.ptp(result.anomaly_map) + 1e-3
