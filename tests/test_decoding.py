"""The image decoder under hostile input: random, truncated and oversized files give only ImageError (never
another exception), and large images are decoded small and within their pixel limit."""

from __future__ import annotations

import io

import numpy as np
import pytest
import tifffile
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from anomalens.data import ImageError, image_size, load_image, read_image
from anomalens.preprocessing import MAX_SIDE, decode


def _png(width: int, height: int, mode: str = "RGB") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, (width, height), 128).save(buffer, format="PNG")
    return buffer.getvalue()


def _jpeg(width: int, height: int) -> bytes:
    rng = np.random.default_rng(0)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(buffer, format="JPEG")
    return buffer.getvalue()


SEEDS = {"png": _png(64, 48), "grey": _png(40, 30, "L"), "jpeg": _jpeg(64, 48)}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    data=st.one_of(
        st.binary(max_size=512),
        st.sampled_from(list(SEEDS.values())).flatmap(lambda b: st.integers(1, len(b) - 1).map(lambda n: b[:n])),
        st.sampled_from(list(SEEDS.values())).flatmap(
            lambda b: st.tuples(st.integers(0, len(b) - 1), st.binary(min_size=1, max_size=8)).map(
                lambda cut: b[: cut[0]] + cut[1] + b[cut[0] + len(cut[1]) :]
            )
        ),
    )
)
def test_any_bytes_decode_or_raise_image_error(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("fuzz") / "input.png"
    path.write_bytes(data)
    try:
        image = read_image(path, max_side=32, max_pixels=10_000)
    except ImageError as error:
        assert str(path) in str(error)
        return
    assert image.ndim == 3 and image.shape[2] == 3 and max(image.shape[:2]) <= 32


def test_a_large_png_is_decoded_small_and_sized_from_its_header(tmp_path):
    path = tmp_path / "large.png"
    path.write_bytes(_png(6000, 3000))
    assert image_size(path) == (6000, 3000)
    decoded = decode(path, str(path))
    assert decoded.size == (6000, 3000) and decoded.image.dtype == np.uint8
    assert max(decoded.image.shape[:2]) <= MAX_SIDE and decoded.image.shape[1] == 2 * decoded.image.shape[0]
    with pytest.raises(ImageError, match="too large .6000 × 3000 pixels; the limit is 1000000"):
        read_image(path, max_pixels=1_000_000)


def test_a_float32_tiff_is_refused_from_its_header(tmp_path):
    """Pillow cannot read a float32 RGB TIFF's header; the pixel limit must hold all the same."""
    path = tmp_path / "huge.tif"
    tifffile.imwrite(path, np.zeros((3000, 2000, 3), np.float32), photometric="rgb")
    assert image_size(path) == (2000, 3000)
    with pytest.raises(ImageError, match="too large"):
        read_image(path, max_pixels=1_000_000)


def test_eight_bit_images_stay_exact_and_load_image_is_unchanged(tmp_path):
    rng = np.random.default_rng(1)
    pixels = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    path = tmp_path / "exact.png"
    Image.fromarray(pixels).save(path)
    assert np.array_equal(read_image(path), pixels)
    assert np.array_equal(load_image(path), pixels.astype(np.float32) / 255)


@pytest.mark.parametrize("orientation", [6, 8])
def test_a_rotated_jpeg_reports_its_upright_size(tmp_path, orientation):
    path = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(np.zeros((30, 80, 3), np.uint8)).save(path, exif=exif)
    assert image_size(path) == (30, 80)
    assert read_image(path).shape[:2] == (80, 30)


def test_an_upload_keeps_the_size_it_came_at(tmp_path):
    from anomalens.server.uploads import Limits, read_uploads

    [big, refused] = read_uploads(
        [("big.png", _png(4100, 100)), ("bomb.png", _png(3000, 3000))], Limits(max_pixels=5_000_000)
    )
    assert big.image is not None and big.image.size == (4100, 100) and max(big.image.image.shape) <= MAX_SIDE
    assert refused.image is None and "too large" in (refused.error or "")


def test_a_large_16_bit_tiff_is_reduced_in_its_own_samples(tmp_path):
    path = tmp_path / "deep.tif"
    ramp = np.tile(np.arange(4100, dtype=np.uint16)[None] * 15, (60, 1))  # 0 … 61485 along x
    tifffile.imwrite(path, ramp)
    image = read_image(path, max_side=2048)
    assert image.dtype == np.float32 and image.shape == (20, 1366, 3)  # factor 3
    assert image[0, 1, 0] == pytest.approx((3 + 4 + 5) / 3 * 15 / 65535, abs=1e-6)  # the mean of one 3 × 3 block
