"""Both experts find and outline a planted defect on generated textures."""

import json

import numpy as np
import pytest
import torch

from anomalens import Inspector
from anomalens.experts import ExpertInput, NormalImages
from anomalens.experts.coreset import greedy_coreset
from anomalens.experts.memory_bank import MemoryBankExpert
from anomalens.experts.neighbors import ExactSearch
from anomalens.metrics import image_auroc, pixel_auroc
from anomalens.model_file import ModelFileError
from conftest import plant_defect, texture


@pytest.mark.parametrize("expert, k", [("memory_bank", 1), ("memory_bank", 5), ("patchcore", 8)])
def test_expert_finds_and_localises_planted_defect(expert, k):
    inspector = Inspector(expert=expert, image_size=128, coreset_ratio=0.25).fit([texture(i) for i in range(k)])
    assert inspector.expert.name == expert
    defects = [plant_defect(texture(300 + i), i, radius=14) for i in range(4)]
    normals = [texture(400 + i) for i in range(4)]
    results = inspector.predict([d[0] for d in defects] + normals)

    scores = [r.score for r in results]
    assert image_auroc([1] * 4 + [0] * 4, scores) == 1.0
    masks = np.stack([d[1] for d in defects])
    assert pixel_auroc(masks, np.stack([r.anomaly_map for r in results[:4]])) > 0.97
    for (_, mask, (cx, cy)), result in zip(defects, results[:4]):
        assert result.anomalous
        top = result.regions[0]
        x0, y0, x1, y1 = top.box
        assert x0 <= cx < x1 and y0 <= cy < y1  # the strongest region holds the defect
        box = np.zeros_like(mask)
        box[y0:y1, x0:x1] = True
        ys, xs = np.nonzero(mask)
        mask_box_area = (np.ptp(xs) + 1) * (np.ptp(ys) + 1)
        assert (box & mask).sum() >= 0.9 * mask.sum()  # the box covers the defect …
        assert box.sum() < 5 * mask_box_area  # … and not much more: 16×16 features at 128 px blur edges
    # the threshold is the lower of a 90 % prediction bound from k references and the synthetic anomalies'
    # lower quartile, which with few references trades false alarms for recall: at most two in four here
    assert sum(r.anomalous for r in results[4:]) <= 2


def test_memory_bank_maps_a_change_of_strength_and_ignores_exposure():
    """Few-shot: the map marks a patch that responds too strongly in a normal direction (cosine cannot see
    it), while an image whose features are all scaled, as by another exposure, keeps its map and score."""
    g = torch.Generator().manual_seed(0)
    references = [torch.nn.functional.normalize(torch.randn(3, 8, 6, 6, generator=g), dim=1) for _ in range(2)]
    expert = MemoryBankExpert()
    expert.fit(NormalImages(references))
    query = [f[:1].clone() for f in references]
    for f in query:
        f[0, :, 2, 3] *= 4.0  # the same direction as a reference patch, four times as strong
    maps, scores = expert.score(ExpertInput(features=query))
    assert maps[0].flatten().argmax().item() == 2 * 6 + 3
    assert maps[0, 2, 3] > 10 * maps[0].flatten().sort().values[-2]
    assert scores[0] < 1e-5  # every direction is a normal one: the verdict stays normal
    brighter_maps, brighter_scores = expert.score(ExpertInput(features=[2.5 * f for f in query]))
    assert torch.allclose(brighter_maps, maps, atol=1e-5) and torch.allclose(brighter_scores, scores, atol=1e-5)


def test_few_shot_model_from_before_distance_maps_is_refused(tmp_path):
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    path = (
        Inspector(expert="memory_bank", image_size=64)
        .fit([texture(i) for i in range(2)])
        .save(tmp_path / "m.safetensors")
    )
    with safe_open(path, framework="pt") as handle:
        header = json.loads(handle.metadata()["anomalens"])
    del header["expert"]["map"]  # what files written before the change hold: unit-length banks
    save_file(load_file(path), tmp_path / "old.safetensors", metadata={"anomalens": json.dumps(header)})
    with pytest.raises(ModelFileError, match="old.safetensors.*fit it again"):
        Inspector.load(tmp_path / "old.safetensors")


def test_greedy_coreset_covers_outliers():
    """k-center keeps the rare points random sampling would likely drop."""
    g = torch.Generator().manual_seed(0)
    x = torch.cat(
        [torch.randn(2000, 16, generator=g) * 0.1, torch.full((3, 16), 5.0) + torch.randn(3, 16, generator=g)]
    )
    chosen = greedy_coreset(x, 20)
    assert len(set(chosen.tolist())) == 20
    assert {2000, 2001, 2002} <= set(chosen.tolist())


def test_chunked_coreset_is_close_to_plain_greedy():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(40_000, 32, generator=g)
    chosen = greedy_coreset(x, 400)
    assert len(set(chosen.tolist())) == 400
    # covering radius: every point's distance to its nearest chosen point
    radius = torch.cdist(x, x[chosen]).min(1).values.max()
    random_radius = torch.cdist(x, x[torch.randperm(40_000, generator=g)[:400]]).min(1).values.max()
    assert radius < random_radius


def test_large_banks_use_an_inverted_file_close_to_exact_search(tmp_path):
    import faiss

    from anomalens.experts import patchcore

    inspector = Inspector(expert="patchcore", image_size=256, coreset_ratio=1.0)
    inspector.fit([texture(i, size=256) for i in range(9)])  # 9 × 32 × 32 = 9216 patches > EXACT_MAX
    expert = inspector.expert
    assert len(expert.bank) > patchcore.EXACT_MAX and isinstance(expert.index, faiss.IndexIVFFlat)
    queries = [plant_defect(texture(500 + i, size=256), i, radius=20)[0] for i in range(2)] + [texture(600, size=256)]
    approx = inspector.predict(queries)
    expert.index = ExactSearch(expert.bank)
    exact = inspector.predict(queries)
    for a, b in zip(approx, exact):
        assert a.score == pytest.approx(b.score, rel=0.05)
        assert np.abs(a.anomaly_map - b.anomaly_map).mean() < 0.02 * b.anomaly_map.mean()
    # the cell centres travel with the model: a reloaded model scores identically
    inspector.expert = patchcore.PatchCoreExpert.from_state(*expert.state())  # back to the inverted file
    path = inspector.save(tmp_path / "ivf.safetensors")
    assert [r.score for r in Inspector.load(path).predict(queries)] == [r.score for r in approx]
