"""The inspection service, started for real (`anomalens serve`, uvicorn on 127.0.0.1) and driven over HTTP."""

from __future__ import annotations

import base64
import io
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image

from conftest import free_port, plant_defect, running_server, texture

pytestmark = pytest.mark.e2e  # through the CLI, a server or a browser

httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")
API_KEY = "test-key-123"


def png_bytes(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray((image * 255 + 0.5).astype(np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="module")
def server(models):
    """The real service in its own process, with an API key and a 2 MB request limit."""
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "anomalens.cli",
        "serve",
        "--port",
        str(port),
        "--models",
        str(models),
        "--max-request-mb",
        "2",
    ]
    base = f"http://127.0.0.1:{port}"
    with running_server(
        command, f"{base}/v1/health", models.parent / "server.log", 60, env=os.environ | {"ANOMALENS_API_KEY": API_KEY}
    ):
        yield base


@pytest.fixture(scope="module")
def client(server):
    with httpx.Client(base_url=server, headers={"X-API-Key": API_KEY}, timeout=120) as c:
        yield c


@pytest.fixture(scope="module")
def model_id(client):
    """A model fitted through the API from uploaded normal textures (one upload is not an image)."""
    files = [("files", (f"good{i}.png", png_bytes(texture(i)), "image/png")) for i in range(8)]
    files.append(("files", ("notes.png", b"this is not a picture", "image/png")))
    response = client.post("/v1/models", files=files, data={"model_id": "textile"})
    assert response.status_code == 202, response.text
    job = response.json()
    assert job["skipped"] == ["notes.png: not a readable image (format not recognised)"]
    deadline = time.time() + 120
    while job["status"] in ("queued", "running") and time.time() < deadline:
        time.sleep(0.3)
        job = client.get(f"/v1/jobs/{job['job_id']}").json()
    assert job["status"] == "done", job
    assert job["done"] == 8
    return job["model_id"]


def test_health_needs_no_key_and_docs_exist(server):
    health = httpx.get(f"{server}/v1/health").json()
    assert health["status"] == "ok" and health["language_backend"] == "grounded"
    assert httpx.get(f"{server}/openapi.json").json()["paths"].keys() >= {"/v1/inspect", "/v1/models", "/v1/chat"}


def test_models_are_listed_described_and_persisted(client, model_id):
    listed = client.get("/v1/models").json()["models"]
    assert [m["id"] for m in listed] == ["textile"]
    described = client.get(f"/v1/models/{model_id}").json()
    assert described["n_normal"] == 8 and described["expert"] == "memory_bank"
    again = client.post(
        "/v1/models", files=[("files", ("a.png", png_bytes(texture(1)), "image/png"))], data={"model_id": model_id}
    )
    assert again.status_code == 409 and "already exists" in again.json()["error"]


def test_inspect_with_a_model_finds_and_locates_the_defect(client, model_id):
    defective, mask, (cx, cy) = plant_defect(texture(300), 0)
    files = [
        ("files", ("bad.png", png_bytes(defective), "image/png")),
        ("files", ("clean.png", png_bytes(texture(301)), "image/png")),
        ("files", ("empty.png", b"", "image/png")),
    ]
    response = client.post("/v1/inspect", files=files, data={"model_id": model_id, "overlay": "true"})
    assert response.status_code == 200, response.text
    bad, clean, empty = response.json()["results"]
    assert bad["anomalous"] and bad["answer"].startswith("Yes, there is an anomaly")
    x0, y0, x1, y1 = bad["regions"][0]["box"]
    assert x0 <= cx <= x1 and y0 <= cy <= y1
    assert Image.open(io.BytesIO(base64.b64decode(bad["overlay_png"]))).size == (128, 128)
    assert not clean["anomalous"] and "overlay_png" in clean
    assert empty == {"file": "empty.png", "ok": False, "error": "empty file (0 bytes)"}


def test_an_exported_model_in_the_folder_is_served_with_the_torch_models_answers(client, model_id, models):
    from anomalens import Inspector
    from anomalens.export import export_onnx

    export_onnx(Inspector.load(models / f"{model_id}.safetensors"), models / "textile-onnx.onnx")
    assert client.get("/v1/models/textile-onnx").json()["engine"] == "onnx"
    images = [plant_defect(texture(320), 2)[0], texture(321)]
    files = [("files", (f"{i}.png", png_bytes(image), "image/png")) for i, image in enumerate(images)]
    by_engine = {
        m: client.post("/v1/inspect", files=files, data={"model_id": m}).json() for m in (model_id, "textile-onnx")
    }
    torch_results, onnx_results = by_engine[model_id]["results"], by_engine["textile-onnx"]["results"]
    assert by_engine["textile-onnx"]["expert"] == by_engine[model_id]["expert"] == "memory_bank"
    for fast, reference in zip(onnx_results, torch_results):
        assert fast["anomalous"] == reference["anomalous"] and fast["location"] == reference["location"]
        assert fast["score"] == pytest.approx(reference["score"], rel=1e-4)
        assert fast["answer"] == reference["answer"]
    assert client.delete("/v1/models/textile-onnx").json() == {"deleted": "textile-onnx"}


def test_few_shot_inspection_and_chat(client):
    defective, _, _ = plant_defect(texture(310), 1)
    files = [("files", ("part.png", png_bytes(defective), "image/png"))]
    files += [("references", (f"r{i}.png", png_bytes(texture(40 + i)), "image/png")) for i in range(3)]
    result = client.post("/v1/inspect", files=files, data={"class_name": "textile"}).json()["results"][0]
    assert result["anomalous"]
    turn = client.post(
        "/v1/chat", json={"inspection_id": result["inspection_id"], "question": "Where is the defect?"}
    ).json()
    assert turn["answer"].startswith(f"The anomaly is at the {result['regions'][0]['location']}")
    turn = client.post("/v1/chat", json={"inspection_id": result["inspection_id"], "question": "How big is it?"}).json()
    assert "covers about" in turn["answer"] and turn["turn"] == 2


@pytest.mark.parametrize(
    "files, data, status, message",
    [
        (
            [("files", ("a.txt", b"plain text, not an image", "text/plain"))],
            {"model_id": "textile"},
            400,
            "no readable image",
        ),
        ([("files", ("a.png", b"", "image/png"))], {"model_id": "textile"}, 400, "no readable image"),
        ([("files", ("a.png", b"x", "image/png"))], {"model_id": "nosuch"}, 404, "unknown model"),
        ([("files", ("a.png", b"x", "image/png"))], {"model_id": "../../etc/passwd"}, 400, "invalid model id"),
        ([("files", ("a.png", b"x", "image/png"))], {}, 400, "exactly one of"),
        (
            [("files", ("a.png", b"x", "image/png"))],
            {"zero_shot": "true", "model_id": "textile"},
            400,
            "exactly one of",
        ),
        ([("files", ("big.png", b"\0" * (3 * 1024 * 1024), "image/png"))], {"model_id": "textile"}, 413, "too large"),
        ([("files", ("huge.png", "HUGE", "image/png"))], {"model_id": "textile"}, 400, "no readable image"),
    ],
)
def test_bad_requests_get_clear_json_errors(client, model_id, files, data, status, message):
    if files[0][1][1] == "HUGE":  # 7000 × 7000 pixels, small as a file: over the pixel limit, never decoded
        buffer = io.BytesIO()
        Image.new("L", (7000, 7000)).save(buffer, format="PNG")
        files = [("files", ("huge.png", buffer.getvalue(), "image/png"))]
    response = client.post("/v1/inspect", files=files, data=data)
    assert response.status_code == status, response.text
    assert message in response.json()["error"]
    if "results" in response.json():  # the per-file reason is given too
        assert response.json()["results"][0]["error"]


def test_a_chunked_body_over_the_limit_is_refused_as_it_arrives(client):
    """20 MB sent chunked (no Content-Length) to a 2 MB limit: 413 once the limit is passed, the rest unread."""
    limit, sent = 2 * 1024 * 1024, 0

    def body():
        nonlocal sent
        yield b'--b\r\nContent-Disposition: form-data; name="files"; filename="a.png"\r\n\r\n'
        for _ in range(320):
            sent += 65536
            yield bytes(65536)

    headers = {"content-type": "multipart/form-data; boundary=b"}
    started = time.perf_counter()
    response = client.post("/v1/inspect", content=body(), headers=headers)
    seconds = time.perf_counter() - started
    assert response.status_code == 413 and "too large" in response.json()["error"]
    read = response.json()["read_bytes"]
    print(f"\n413 after the app read {read} bytes (limit {limit}); the client had sent {sent} bytes in {seconds:.2f} s")
    assert limit < read <= limit + 1024 * 1024
    assert client.get("/v1/health").status_code == 200  # the service goes on


def test_zero_shot_inspection_scores_the_batch_against_itself(client):
    defective, _, (cx, cy) = plant_defect(texture(330), 2)
    files = [("files", (f"p{i}.png", png_bytes(texture(340 + i)), "image/png")) for i in range(5)]
    files.append(("files", ("marked.png", png_bytes(defective), "image/png")))
    body = client.post("/v1/inspect", files=files, data={"zero_shot": "true"}).json()
    assert body["expert"] == "mutual" and body["zero_shot_route"] == "mutual" and len(body["results"]) == 6
    marked = body["results"][-1]
    assert marked["score"] == max(r["score"] for r in body["results"])
    one = client.post("/v1/inspect", files=files[:1], data={"zero_shot": "true"})
    assert one.status_code == 400 and "at least 2" in one.json()["error"]


def test_zero_shot_route_by_name(client):
    files = [("files", (f"p{i}.png", png_bytes(texture(350 + i)), "image/png")) for i in range(3)]
    named = client.post("/v1/inspect", files=files, data={"zero_shot_route": "mutual"}).json()
    assert named["zero_shot_route"] == "mutual" and named["expert"] == "mutual" and len(named["results"]) == 3
    unknown = client.post("/v1/inspect", files=files, data={"zero_shot_route": "telepathy"})
    assert unknown.status_code == 400 and "mutual" in unknown.json()["error"]
    no_clip = client.post("/v1/inspect", files=files, data={"zero_shot_route": "clip"})  # started without CLIP
    assert no_clip.status_code == 400 and "not served here" in no_clip.json()["error"]


def test_api_key_and_unknown_things(server, client):
    assert httpx.get(f"{server}/v1/models").status_code == 401
    wrong = httpx.get(f"{server}/v1/models", headers={"X-API-Key": "nope"})
    assert wrong.status_code == 401 and "API key" in wrong.json()["error"]
    assert client.post("/v1/chat", json={"inspection_id": "x", "question": "hi"}).status_code == 404
    assert client.post("/v1/chat", json={"question": "hi"}).status_code == 422
    assert client.get("/v1/jobs/none").status_code == 404


def test_page_is_served_without_external_resources(server):
    page = httpx.get(server).text
    assert "<title>AnomaLens" in page and "http" not in page.replace("http-equiv", "")
    assert httpx.get(f"{server}/static/app.js").status_code == 200


def test_bounded_concurrent_load_has_no_server_errors(client, model_id):
    """200 inspection requests, 8 at a time: no 5xx; latency percentiles printed for the record."""
    image = png_bytes(texture(500, size=96))

    def one(_):
        started = time.perf_counter()
        response = client.post(
            "/v1/inspect", files=[("files", ("p.png", image, "image/png"))], data={"model_id": model_id}
        )
        return response.status_code, time.perf_counter() - started

    with ThreadPoolExecutor(max_workers=8) as pool:
        outcomes = list(pool.map(one, range(200)))
    codes = [code for code, _ in outcomes]
    latencies = np.array([seconds for _, seconds in outcomes])
    print(
        f"\n200 requests, 8 concurrent: p50 {np.percentile(latencies, 50) * 1000:.0f} ms, "
        f"p99 {np.percentile(latencies, 99) * 1000:.0f} ms, status codes {sorted(set(codes))}"
    )
    assert not [c for c in codes if c >= 500]
    assert codes.count(200) == 200


def test_delete_model(client):
    files = [("files", (f"g{i}.png", png_bytes(texture(60 + i)), "image/png")) for i in range(2)]
    job = client.post("/v1/models", files=files, data={"model_id": "temp"}).json()
    while job["status"] in ("queued", "running"):
        time.sleep(0.2)
        job = client.get(f"/v1/jobs/{job['job_id']}").json()
    assert client.delete("/v1/models/temp").json() == {"deleted": "temp"}
    assert client.get("/v1/models/temp").status_code == 404
    assert client.delete("/v1/models/temp").status_code == 404
