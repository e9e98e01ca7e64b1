"""Shared fixtures: generated textures with planted defects, and generated MVTec-layout datasets."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

SIZE = 128


@pytest.fixture(scope="session", autouse=True)
def backbone_cache(tmp_path_factory):
    """Exported backbone graphs (`backbones.runtime`) go to a folder of the test session, never the user's."""
    folder = tmp_path_factory.mktemp("anomalens-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ANOMALENS_CACHE", str(folder))
        yield folder


def tiny_clip_config(image_resolution: int, vision_layers: int, context_length: int = 16):
    """A CLIP small enough to build and run in a test (no real weights exist offline)."""
    from anomalens.clip.model import ClipConfig

    small = dict(embed_dim=32, vision_width=64, patch_size=8, vocab_size=49408, text_width=64, text_layers=2)
    return ClipConfig(
        image_resolution=image_resolution, vision_layers=vision_layers, context_length=context_length, **small
    )


def texture(seed: int, size: int = SIZE, width: int | None = None) -> np.ndarray:
    """A woven-looking RGB texture, `size` high and `width` (default: `size`) wide: a few oriented sinusoids
    plus fine noise, different per seed only in phase and noise (like photos of one product)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0 : width or size].astype(np.float32)
    image = np.zeros(yy.shape, np.float32)
    for freq, angle in ((0.35, 0.3), (0.22, 1.9), (0.5, 1.1)):
        image += np.sin(freq * (np.cos(angle) * xx + np.sin(angle) * yy) + rng.uniform(0, 2 * np.pi))
    image = 0.5 + 0.12 * image + rng.normal(0, 0.03, image.shape)
    tint = np.array([0.9, 0.75, 0.55], np.float32)
    return np.clip(image[..., None] * tint, 0, 1).astype(np.float32)


def plant_defect(image: np.ndarray, seed: int, radius: int = 9) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """A dark, scratched blob at a random place; returns the image, its mask and the centre (x, y)."""
    rng = np.random.default_rng(1000 + seed)
    size = image.shape[0]
    cx, cy = rng.integers(radius + 4, size - radius - 4, size=2)
    yy, xx = np.mgrid[0:size, 0:size]
    mask = (xx - cx) ** 2 + ((yy - cy) * 1.6) ** 2 <= radius**2
    out = image.copy()
    out[mask] = np.clip(0.15 + 0.1 * np.sin(xx[mask] * 1.3)[:, None], 0, 1) * np.array([0.6, 0.6, 0.7])
    return out.astype(np.float32), mask, (int(cx), int(cy))


def save_png(path: Path, image: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if image.dtype == bool:
        Image.fromarray(image.astype(np.uint8) * 255).save(path)
    else:
        Image.fromarray((image * 255 + 0.5).astype(np.uint8)).save(path)
    return path


@pytest.fixture(scope="session")
def texture_dataset(tmp_path_factory) -> Path:
    """MVTec layout: root/textile/{train/good, test/good, test/blot, ground_truth/blot}."""
    root = tmp_path_factory.mktemp("textures")
    cat = root / "textile"
    for i in range(8):
        save_png(cat / "train" / "good" / f"{i:03d}.png", texture(i))
    for i in range(4):
        save_png(cat / "test" / "good" / f"{i:03d}.png", texture(100 + i))
        image, mask, _ = plant_defect(texture(200 + i), i)
        save_png(cat / "test" / "blot" / f"{i:03d}.png", image)
        save_png(cat / "ground_truth" / "blot" / f"{i:03d}_mask.png", mask)
    return root


def written_before(saved: Path, part: str, out: Path) -> Path:
    """A copy of the model file `saved` as an AnomaLens before `part` (a header key, its tensors `part.*`) wrote it."""
    import json

    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    with safe_open(saved, framework="pt") as handle:
        header = json.loads(handle.metadata()["anomalens"])
    del header[part]
    header["tensors"] = {k: v for k, v in header["tensors"].items() if not k.startswith(f"{part}.")}
    tensors = {k: v for k, v in load_file(saved).items() if not k.startswith(f"{part}.")}
    save_file(tensors, out, metadata={"anomalens": json.dumps(header)})
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running_server(command: list[str], ready_url: str, log: Path, seconds: float, env: dict | None = None):
    """Start a server process, wait until `ready_url` answers 200, and stop it afterwards. Its output goes
    to `log`, never to a pipe, which would block the server once full."""
    import httpx

    process = subprocess.Popen(command, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + seconds
        while True:
            if process.poll() is not None:
                pytest.fail(f"{command[2]} exited: " + log.read_text(errors="replace")[-2000:])
            try:
                if httpx.get(ready_url, timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.time() > deadline:
                pytest.fail(f"{command[2]} did not start in {seconds} s: " + log.read_text(errors="replace")[-2000:])
            time.sleep(0.2)
        yield
    finally:
        process.terminate()
        process.wait(timeout=20)


@pytest.fixture(scope="session")
def postgres_base():
    """A real PostgreSQL server for the records tests (tests/postgres_server.py), one for the session."""
    from postgres_server import postgres_bin, postgres_server

    if postgres_bin() is None:
        if os.environ.get("ANOMALENS_REQUIRE_POSTGRES") == "1":
            pytest.fail(
                "PostgreSQL is required (ANOMALENS_REQUIRE_POSTGRES=1) but Debian's postgresql is not installed"
            )
        pytest.skip("Debian's postgresql package is not installed (apt-get install postgresql)")
    pytest.importorskip("psycopg")
    with postgres_server(free_port()) as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request, tmp_path):
    """A fresh records database of each kind: a SQLite file, a new database on the PostgreSQL server."""
    from postgres_server import new_database

    if request.param == "sqlite":
        return str(tmp_path / "records.db")
    return new_database(request.getfixturevalue("postgres_base"))
