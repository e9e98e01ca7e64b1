"""Server-side folders (`serve --folder-root NAME=PATH`): roots and folders listed, images inspected by path
with the very results an upload of the same files gets, and every path that could lead out of a root refused
in words that name it."""

from __future__ import annotations

from pathlib import Path

import pytest

from anomalens import Inspector
from conftest import plant_defect, save_png, texture

pytest.importorskip("fastapi")
pytest.importorskip("httpx")
API_KEY = "folder-key"


@pytest.fixture(scope="module")
def shelf(tmp_path_factory) -> Path:
    """A root with images, a sub-folder, a text file, and a link to a file outside it."""
    base = tmp_path_factory.mktemp("shelf")
    root = base / "line-3"
    save_png(root / "a.png", texture(300, size=64))
    save_png(root / "lot-7" / "b.png", plant_defect(texture(301, size=64), 1, radius=8)[0])
    (root / "notes.txt").write_text("not an image")
    secret = save_png(base / "outside.png", texture(302, size=64))
    (root / "escape.png").symlink_to(secret)
    (root / "away").symlink_to(base)
    return root


@pytest.fixture(scope="module")
def client(tmp_path_factory, shelf):
    from fastapi.testclient import TestClient

    from anomalens.server import create_app

    models = tmp_path_factory.mktemp("models")
    Inspector(image_size=64).fit([texture(i, size=64) for i in range(4)]).save(models / "textile.safetensors")
    app = create_app(models, api_key=API_KEY, folder_roots={"line-3": shelf.resolve()})
    with TestClient(app, headers={"X-API-Key": API_KEY}) as client:
        yield client


def test_roots_and_a_folder_are_listed(client):
    assert client.get("/v1/folders").json() == {"roots": ["line-3"]}
    listing = client.get("/v1/folders/line-3").json()
    assert listing["folders"] == ["lot-7"]
    assert listing["images"] == ["a.png"]  # escape.png leads outside; away too
    assert listing["skipped"] == 3  # notes.txt, escape.png, away
    assert client.get("/v1/folders/line-3", params={"path": "lot-7"}).json()["images"] == ["lot-7/b.png"]


HOSTILE = [
    ("../outside.png", 400, "climbs out with '..'"),
    ("lot-7/../../outside.png", 400, "climbs out with '..'"),
    ("/etc/passwd", 400, "is absolute"),
    ("\\etc\\passwd", 400, "is absolute"),
    ("C:/Windows/win.ini", 400, "is absolute"),
    ("a.png\x00.txt", 400, "NUL character"),
    ("escape.png", 403, "leads outside the folder root"),
    ("away/outside.png", 403, "leads outside the folder root"),
]


@pytest.mark.parametrize(("path", "status", "words"), HOSTILE)
def test_a_path_that_could_lead_out_is_refused(client, path, status, words):
    inspected = client.post("/v1/folders/line-3/inspect", json={"paths": [path], "model_id": "textile"})
    assert inspected.status_code == status and words in inspected.json()["error"], inspected.text
    assert repr(path) in inspected.json()["error"]  # the path is named
    listed = client.get("/v1/folders/line-3", params={"path": path})
    assert listed.status_code == status and words in listed.json()["error"]
    assert client.get("/v1/folders/line-3/image", params={"path": path}).status_code == status


def test_unknown_roots_no_roots_and_no_key_are_refused(client, tmp_path):
    from fastapi.testclient import TestClient

    from anomalens.server import create_app

    unknown = client.get("/v1/folders/elsewhere")
    assert unknown.status_code == 404 and "unknown folder root 'elsewhere'" in unknown.json()["error"]
    assert client.get("/v1/folders", headers={"X-API-Key": "wrong"}).status_code == 401
    with TestClient(create_app(tmp_path)) as bare:
        answer = bare.get("/v1/folders")
        assert answer.status_code == 404 and "--folder-root" in answer.json()["error"]
        assert bare.post("/v1/folders/x/inspect", json={"paths": ["a.png"], "model_id": "m"}).status_code == 404


def without_ids(body: dict) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "inspection_id"} for r in body["results"]]


def test_inspected_by_path_as_if_uploaded(client, shelf):
    paths = ["a.png", "lot-7/b.png", "notes.txt"]
    by_path = client.post("/v1/folders/line-3/inspect", json={"paths": paths, "model_id": "textile", "overlay": True})
    assert by_path.status_code == 200, by_path.text
    files = [("files", (Path(p).name, (shelf / p).read_bytes(), "image/png")) for p in paths[:2]]
    uploaded = client.post("/v1/inspect", files=files, data={"model_id": "textile", "overlay": "true"}).json()
    results = without_ids(by_path.json())
    assert results[:2] == without_ids(uploaded)
    assert results[1]["score"] > results[0]["score"]  # the planted defect stands out
    assert results[2]["ok"] is False and "notes.txt" == results[2]["file"]  # one bad file fails alone
    assert client.get("/v1/folders/line-3/image", params={"path": "a.png"}).content == (shelf / "a.png").read_bytes()


def test_bad_folder_roots_are_named():
    from anomalens.server.folders import folder_roots

    with pytest.raises(ValueError, match="give NAME=PATH"):
        folder_roots(["no-equals-sign"])
    with pytest.raises(ValueError, match="is not a folder"):
        folder_roots(["x=/no/such/folder"])


def test_serve_refuses_a_bad_folder_root_in_words(tmp_path):
    from typer.testing import CliRunner

    from anomalens.cli import app

    given = CliRunner().invoke(app, ["serve", "--models", str(tmp_path), "--folder-root", "line=/no/such/folder"])
    assert given.exit_code == 2 and "is not a folder" in given.output, given.output
