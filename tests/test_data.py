"""Tests for anomalens.data: every file is generated under tmp_path."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from anomalens.data import (
    IMAGE_SUFFIXES,
    ImageError,
    Sample,
    image_folder,
    list_categories,
    load_image,
    load_mask,
    load_split,
    mvtec_split,
    visa_split,
)

RNG = np.random.default_rng(0)


def _rgb8(h: int = 6, w: int = 5) -> np.ndarray:
    return RNG.integers(0, 256, (h, w, 3), dtype=np.uint8)


def _save(path: Path, array: np.ndarray, **kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, **kwargs)
    return path


def _check_layout(image: np.ndarray, h: int, w: int) -> None:
    assert image.shape == (h, w, 3)
    assert image.dtype == np.float32
    assert image.flags.c_contiguous
    assert image.min() >= 0.0 and image.max() <= 1.0


# --- load_image: formats ----------------------------------------------------


def test_png_rgb8_round_trips_exactly(tmp_path):
    pixels = _rgb8()
    image = load_image(_save(tmp_path / "a.png", pixels))
    _check_layout(image, 6, 5)
    np.testing.assert_array_equal(image, pixels.astype(np.float32) / 255)


def test_jpeg_is_close(tmp_path):
    pixels = np.full((16, 16, 3), (200, 100, 50), dtype=np.uint8)
    image = load_image(_save(tmp_path / "a.jpg", pixels, quality=95))
    _check_layout(image, 16, 16)
    np.testing.assert_allclose(image, pixels / 255, atol=0.03)


def test_jpeg_exif_orientation_is_applied(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: display rotated 90° clockwise
    path = _save(tmp_path / "r.jpg", np.zeros((4, 8, 3), np.uint8), exif=exif.tobytes())
    assert load_image(path).shape == (8, 4, 3)


def test_bmp(tmp_path):
    pixels = _rgb8()
    image = load_image(_save(tmp_path / "a.bmp", pixels))
    np.testing.assert_array_equal(image, pixels / np.float32(255))


def test_png_grey16_is_scaled_and_replicated(tmp_path):
    path = tmp_path / "g16.png"
    grey = Image.fromarray(np.full((4, 5), 65535 // 2, dtype=np.uint16))
    assert grey.mode == "I;16"
    grey.save(path)
    image = load_image(path)
    _check_layout(image, 4, 5)
    np.testing.assert_allclose(image, 0.5, atol=1e-4)


def test_tiff_rgb16_is_scaled_exactly(tmp_path):
    pixels = RNG.integers(0, 65536, (4, 5, 3), dtype=np.uint16)
    pixels[0, 0] = (0, 65535, 32768)
    path = tmp_path / "c16.tif"
    tifffile.imwrite(path, pixels, photometric="rgb")
    image = load_image(path)
    _check_layout(image, 4, 5)
    np.testing.assert_array_equal(image, pixels.astype(np.float32) / 65535)


def test_tiff_planar_is_read_as_hwc(tmp_path):
    pixels = RNG.integers(0, 65536, (4, 5, 3), dtype=np.uint16)
    path = tmp_path / "planar.tiff"
    tifffile.imwrite(path, pixels.transpose(2, 0, 1), photometric="rgb", planarconfig="separate")
    np.testing.assert_array_equal(load_image(path), pixels.astype(np.float32) / 65535)


def test_tiff_float_is_clipped(tmp_path):
    path = tmp_path / "f.tif"
    tifffile.imwrite(path, np.array([[-1.0, 0.25, 2.0]], dtype=np.float32))
    np.testing.assert_array_equal(load_image(path)[0, :, 0], [0.0, 0.25, 1.0])


def test_content_decides_not_suffix(tmp_path):
    pixels = RNG.integers(0, 65536, (3, 4, 3), dtype=np.uint16)
    tiff_named_png = tmp_path / "really_tiff.png"
    tifffile.imwrite(tiff_named_png, pixels, photometric="rgb")
    np.testing.assert_array_equal(load_image(tiff_named_png), pixels / np.float32(65535))
    png_named_tif = _save(tmp_path / "p.png", _rgb8()).rename(tmp_path / "really_png.tif")
    _check_layout(load_image(png_named_tif), 6, 5)


def test_grey8_is_replicated(tmp_path):
    grey = RNG.integers(0, 256, (4, 5), dtype=np.uint8)
    image = load_image(_save(tmp_path / "g.png", grey))
    _check_layout(image, 4, 5)
    for channel in range(3):
        np.testing.assert_array_equal(image[..., channel], grey / np.float32(255))


def test_rgba_is_composited_over_black(tmp_path):
    rgba = np.array([[[255, 0, 0, 0], [10, 200, 30, 255], [200, 100, 50, 128]]], np.uint8)
    image = load_image(_save(tmp_path / "a.png", rgba))
    np.testing.assert_array_equal(image[0, 0], [0, 0, 0])
    np.testing.assert_allclose(image[0, 1], np.array([10, 200, 30]) / 255, atol=1e-6)
    np.testing.assert_allclose(image[0, 2], np.array([100, 50, 25]) / 255, atol=0.005)


def test_palette_png(tmp_path):
    palette = Image.new("P", (3, 2))
    palette.putpalette([0, 0, 0, 255, 0, 0, 0, 0, 255])
    palette.putdata([0, 1, 2, 2, 1, 0])
    path = tmp_path / "p.png"
    palette.save(path)
    image = load_image(path)
    _check_layout(image, 2, 3)
    np.testing.assert_array_equal(image[0], [[0, 0, 0], [1, 0, 0], [0, 0, 1]])


def test_palette_transparency_is_composited(tmp_path):
    palette = Image.new("P", (2, 1))
    palette.putpalette([255, 255, 255, 0, 255, 0])
    palette.putdata([0, 1])
    path = tmp_path / "pt.png"
    palette.save(path, transparency=0)
    np.testing.assert_array_equal(load_image(path)[0], [[0, 0, 0], [0, 1, 0]])


# --- load_image: bad inputs -------------------------------------------------


def _error(path: Path) -> ImageError:
    with pytest.raises(ImageError) as caught:
        load_image(path)
    assert path.name in str(caught.value)
    assert caught.value.path == path
    return caught.value


def test_missing_file(tmp_path):
    assert _error(tmp_path / "nope.png").reason == "file not found"


def test_empty_file(tmp_path):
    path = tmp_path / "empty.png"
    path.touch()
    assert "empty (0 bytes)" in _error(path).reason


def test_truncated_png(tmp_path):
    data = _save(tmp_path / "whole.png", _rgb8(64, 64)).read_bytes()
    path = tmp_path / "half.png"
    path.write_bytes(data[: len(data) // 2])
    assert _error(path).reason == "image data is truncated"


def test_text_file_named_png(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("not an image\n")
    assert "not a readable image" in _error(path).reason


@pytest.mark.filterwarnings("ignore:Corrupt EXIF")  # Pillow's complaint on the way to failing
def test_truncated_tiff_is_an_image_error(tmp_path):
    whole = tmp_path / "whole.tif"
    tifffile.imwrite(whole, RNG.integers(0, 65536, (32, 32, 3), dtype=np.uint16))
    path = tmp_path / "cut.tif"
    path.write_bytes(whole.read_bytes()[:40])
    _error(path)


def test_image_error_str_and_pickle(tmp_path):
    error = ImageError(tmp_path / "x.png", "file not found")
    assert isinstance(error, ValueError)
    assert str(error) == f"{tmp_path / 'x.png'}: file not found"
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.path, copy.reason, str(copy)) == (error.path, error.reason, str(error))


# --- load_mask ----------------------------------------------------------------


def test_mask_binary_labels_and_rgb(tmp_path):
    binary = np.array([[0, 255], [0, 0]], np.uint8)
    np.testing.assert_array_equal(load_mask(_save(tmp_path / "m.png", binary)), binary > 0)
    labels = np.array([[0, 3], [7, 0]], np.uint8)
    np.testing.assert_array_equal(load_mask(_save(tmp_path / "l.png", labels)), labels > 0)
    rgb = np.zeros((2, 2, 3), np.uint8)
    rgb[1, 1, 2] = 9  # only the blue channel is set
    mask = load_mask(_save(tmp_path / "c.png", rgb), shape=(2, 2))
    assert mask.dtype == bool
    np.testing.assert_array_equal(mask, [[False, False], [False, True]])


def test_mask_ignores_alpha(tmp_path):
    rgba = np.zeros((1, 2, 4), np.uint8)
    rgba[..., 3] = 255
    rgba[0, 1, 0] = 255
    np.testing.assert_array_equal(load_mask(_save(tmp_path / "a.png", rgba)), [[False, True]])


def test_mask_wrong_shape_names_file_and_sizes(tmp_path):
    path = _save(tmp_path / "000_mask.png", np.zeros((200, 300), np.uint8))
    with pytest.raises(ImageError) as caught:
        load_mask(path, shape=(256, 400))
    message = str(caught.value)
    assert "000_mask.png" in message
    assert "mask is 300x200 but its image is 400x256" in message


def test_mask_rgb16_tiff(tmp_path):
    rgb = np.zeros((2, 2, 3), np.uint16)
    rgb[0, 1, 2] = 1000
    path = tmp_path / "m.tif"
    tifffile.imwrite(path, rgb, photometric="rgb")
    np.testing.assert_array_equal(load_mask(path), [[False, True], [False, False]])


def test_mask_missing(tmp_path):
    with pytest.raises(ImageError, match="file not found"):
        load_mask(tmp_path / "gone_mask.png")


# --- dataset layouts ------------------------------------------------------------


def _png(path: Path) -> Path:
    return _save(path, np.zeros((8, 8), np.uint8))


@pytest.fixture
def mvtec(tmp_path) -> Path:
    root = tmp_path / "mvtec"
    bottle = root / "bottle"
    for name in ("001.png", "000.png"):
        _png(bottle / "train" / "good" / name)
    _png(bottle / "test" / "good" / "000.png")
    for name in ("001.PNG", "000.png"):
        _png(bottle / "test" / "crack" / name)
    _png(bottle / "test" / "broken" / "000.png")
    _png(bottle / "ground_truth" / "crack" / "000_mask.png")
    _png(bottle / "ground_truth" / "broken" / "000.png")  # VisA-converted naming
    # Noise a real copy accumulates: none of it is a sample.
    (bottle / "test" / "crack" / "notes.txt").write_text("x")
    _png(bottle / "test" / "crack" / ".hidden.png")
    (bottle / "test" / ".DS_Store").write_text("x")
    (bottle / "license.txt").write_text("x")
    (root / "cable" / "test").mkdir(parents=True)
    (root / "docs").mkdir()
    return root


def test_mvtec_train(mvtec):
    samples = mvtec_split(mvtec, "bottle", "train")
    train = mvtec / "bottle" / "train" / "good"
    assert samples == [
        Sample(train / "000.png", 0, "good", None),
        Sample(train / "001.png", 0, "good", None),
    ]


def test_mvtec_test(mvtec):
    test, truth = mvtec / "bottle" / "test", mvtec / "bottle" / "ground_truth"
    assert mvtec_split(mvtec, "bottle", "test") == [
        Sample(test / "broken" / "000.png", 1, "broken", truth / "broken" / "000.png"),
        Sample(test / "crack" / "000.png", 1, "crack", truth / "crack" / "000_mask.png"),
        Sample(test / "crack" / "001.PNG", 1, "crack", None),  # no mask: kept, not an error
        Sample(test / "good" / "000.png", 0, "good", None),
    ]


def test_mvtec_missing_folders(mvtec):
    with pytest.raises(FileNotFoundError, match="zipper"):
        mvtec_split(mvtec, "zipper", "test")
    with pytest.raises(FileNotFoundError, match="train"):
        mvtec_split(mvtec, "cable", "train")
    with pytest.raises(ValueError, match="split"):
        mvtec_split(mvtec, "bottle", "val")


def test_list_categories_mvtec(mvtec):
    assert list_categories(mvtec) == ["bottle", "cable"]


@pytest.fixture
def visa(tmp_path) -> Path:
    root = tmp_path / "visa"
    rows = [
        "object,split,label,image,mask",
        "pcb1,train,normal,pcb1/Data/Images/Normal/001.JPG,",
        "pcb1,train,normal,pcb1/Data/Images/Normal/000.JPG,",
        "pcb1,test,anomaly,pcb1/Data/Images/Anomaly/000.JPG,pcb1/Data/Masks/Anomaly/000.png",
        "pcb1,test,normal,pcb1/Data/Images/Normal/002.JPG,",
        "candle,test,normal,candle/Data/Images/Normal/000.JPG,",
    ]
    (root / "split_csv").mkdir(parents=True)
    (root / "split_csv" / "1cls.csv").write_text("\n".join(rows) + "\n")
    return root


def test_visa_train_and_test(visa):
    images = visa / "pcb1" / "Data" / "Images"
    assert visa_split(visa, "pcb1", "train") == [
        Sample(images / "Normal" / "000.JPG", 0, "good", None),
        Sample(images / "Normal" / "001.JPG", 0, "good", None),
    ]
    mask = visa / "pcb1" / "Data" / "Masks" / "Anomaly" / "000.png"
    assert visa_split(visa, "pcb1", "test") == [
        Sample(images / "Anomaly" / "000.JPG", 1, "anomaly", mask),
        Sample(images / "Normal" / "002.JPG", 0, "good", None),
    ]


def test_visa_explicit_csv_and_unknown_category(visa, tmp_path):
    moved = (visa / "split_csv" / "1cls.csv").rename(tmp_path / "split.csv")
    assert len(visa_split(visa, "pcb1", "train", csv_path=moved)) == 2
    with pytest.raises(FileNotFoundError, match="macaroni"):
        visa_split(visa, "macaroni", "test", csv_path=moved)
    with pytest.raises(FileNotFoundError, match="1cls.csv"):
        visa_split(visa, "pcb1", "test")


def test_list_categories_visa(visa):
    assert list_categories(visa) == ["candle", "pcb1"]


def test_load_split_detects_layout(mvtec, visa):
    assert load_split(visa, "pcb1", "test") == visa_split(visa, "pcb1", "test")
    assert load_split(mvtec, "bottle", "test") == mvtec_split(mvtec, "bottle", "test")


def test_image_folder(tmp_path):
    for name in ("b.jpg", "a.PNG", "c.tiff"):
        _png(tmp_path / name)
    (tmp_path / "readme.md").write_text("x")
    _png(tmp_path / ".a.png")
    _png(tmp_path / "sub" / "d.png")
    assert image_folder(tmp_path) == [Sample(tmp_path / n) for n in ("a.PNG", "b.jpg", "c.tiff")]
    assert image_folder(tmp_path / "b.jpg") == [Sample(tmp_path / "b.jpg", None, None, None)]
    with pytest.raises(FileNotFoundError):
        image_folder(tmp_path / "missing")


def test_image_suffixes():
    assert IMAGE_SUFFIXES == {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}
    assert isinstance(IMAGE_SUFFIXES, frozenset)
