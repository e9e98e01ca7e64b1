"""A mask painted on the page goes with the feedback (`mask_png`): kept as a file beside the models, its path on
record and its bounding box the defect's place; a mask of another size, no PNG or an empty one is a 422 that
says so."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from anomalens import Inspector
from conftest import save_png, texture

pytest.importorskip("fastapi")
pytest.importorskip("sqlalchemy")


def png_url(mask: np.ndarray) -> str:
    buffer = io.BytesIO()
    Image.fromarray(mask.astype(np.uint8) * 255).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


@pytest.fixture
def inspected(tmp_path):
    """A client on a service with records, and an inspection of a 64×48 image made with its stored model."""
    from fastapi.testclient import TestClient

    from anomalens.records import RecordStore
    from anomalens.server import create_app

    models = tmp_path / "models"
    models.mkdir()
    Inspector(image_size=64).fit([texture(i, size=64) for i in range(4)]).save(models / "textile.safetensors")
    image = save_png(tmp_path / "part.png", texture(9, size=48, width=64))
    with TestClient(create_app(models, records=RecordStore(tmp_path / "records.db"))) as client:
        files = [("files", ("part.png", image.read_bytes(), "image/png"))]
        result = client.post("/v1/inspect", files=files, data={"model_id": "textile"}).json()["results"][0]
        yield client, result["inspection_id"], models


def test_a_painted_mask_is_kept_with_its_place(inspected):
    client, inspection_id, models = inspected
    mask = np.zeros((48, 64), bool)
    mask[10:20, 30:41] = True
    given = client.post(
        f"/v1/inspections/{inspection_id}/feedback",
        json={"verdict": "defective", "source": "page", "mask_png": png_url(mask), "teach": False},
    )
    assert given.status_code == 201, given.text
    kept = given.json()
    assert kept["box"] == [30, 10, 41, 20]
    saved = Path(kept["mask_path"])
    assert saved.parent == models / "feedback-masks"
    assert (np.asarray(Image.open(saved)) > 0).tolist() == mask.tolist()
    recorded = client.get(f"/v1/inspections/{inspection_id}").json()["feedback"]
    assert recorded[0]["mask_path"] == str(saved)


@pytest.mark.parametrize(
    ("mask_png", "words"),
    [
        (png_url(np.ones((10, 10), bool)), "mask_png is 10×10 pixels; the image is 64×48"),
        (png_url(np.zeros((48, 64), bool)), "mask_png marks no pixel"),
        ("data:image/png;base64,bm90IGEgcG5n", "mask_png: not a readable base64 PNG"),
        ("%%%", "mask_png: not a readable base64 PNG"),
    ],
)
def test_a_mask_that_cannot_be_right_is_refused_in_words(inspected, mask_png, words):
    client, inspection_id, _ = inspected
    given = client.post(
        f"/v1/inspections/{inspection_id}/feedback", json={"verdict": "defective", "mask_png": mask_png}
    )
    assert given.status_code == 422 and words in given.json()["error"], given.text
