"""Listing the samples of a dataset split, without reading any pixels.

Two on-disk layouts are understood: MVTec-AD folders and VisA's split CSV.
Both produce the same Sample records in the same order, so nothing later has
to know which benchmark it is running on.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from .images import IMAGE_SUFFIXES

_SPLITS = ("train", "test")
_VISA_COLUMNS = ("object", "split", "label", "image", "mask")
_VISA_LABELS = {"normal": (0, "good"), "anomaly": (1, "anomaly")}


@dataclass(frozen=True)
class Sample:
    """One image: label 0 normal, 1 anomalous, None unknown."""

    path: Path
    label: int | None = None
    defect: str | None = None
    mask_path: Path | None = None


def mvtec_split(root: str | Path, category: str, split: str) -> list[Sample]:
    """Samples of `root/category/{train,test}/<defect>/*`, masks from ground_truth/."""
    _check_split(split)
    split_dir = Path(root) / category / split
    _require_dir(split_dir, f"no {split} split for category {category!r}")
    if split == "train":
        # Only good images are trusted for training, whatever else lies there.
        good = split_dir / "good"
        _require_dir(good, f"no train/good folder for category {category!r}")
        defect_dirs = [good]
    else:
        defect_dirs = [d for d in split_dir.iterdir() if d.is_dir() and not _hidden(d)]
    truth = Path(root) / category / "ground_truth"
    return _in_order(
        _mvtec_sample(image, defect_dir.name, truth)
        for defect_dir in defect_dirs
        for image in scan_folder(defect_dir)[0]
    )


def visa_split(root: str | Path, category: str, split: str, csv_path: str | Path | None = None) -> list[Sample]:
    """Samples listed in VisA's split CSV (default `root/split_csv/1cls.csv`)."""
    _check_split(split)
    root = Path(root)
    csv_path = Path(csv_path) if csv_path is not None else _visa_csv(root)
    samples = [
        _visa_sample(root, row, csv_path)
        for row in _read_visa_csv(csv_path)
        if row["object"] == category and row["split"] == split
    ]
    if not samples:
        # FileNotFoundError, as for a missing MVTec folder, so load_split
        # callers handle an unknown category the same way for both layouts.
        raise FileNotFoundError(f"{csv_path} lists no {split} images for category {category!r}")
    return _in_order(samples)


def image_folder(path: str | Path) -> list[Sample]:
    """Unlabelled samples: the images directly in a folder, or one image file."""
    path = Path(path)
    if path.is_file():
        return [Sample(path)]  # named explicitly, so trust it whatever its suffix
    _require_dir(path, "no such image file or folder")
    return [Sample(image) for image in scan_folder(path)[0]]


def scan_folder(folder: str | Path, recursive: bool = False) -> tuple[list[Path], list[str]]:
    """The images in a folder, sorted (with `recursive`, those in its subfolders too), and why each other
    entry was left out: a subfolder not searched, a link to a folder (never followed), an image name that is
    not a file, a type AnomaLens does not read (.gif, .txt, …). Hidden entries (a leading dot) are left out
    without a word, by convention."""
    try:
        entries = sorted(Path(folder).iterdir())
    except OSError as error:
        return [], [f"{folder}: cannot be listed ({error.strerror or error})"]
    images: list[Path] = []
    skipped: list[str] = []
    for entry in (e for e in entries if not _hidden(e)):
        if entry.is_dir() and recursive and not entry.is_symlink():
            found, left = scan_folder(entry, recursive)
            images, skipped = images + found, skipped + left
        elif entry.is_dir():
            skipped.append(f"{entry}: a {'link to a ' if entry.is_symlink() else 'sub'}folder, not searched")
        elif entry.suffix.lower() not in IMAGE_SUFFIXES:
            skipped.append(f"{entry}: not an image type AnomaLens reads ({', '.join(sorted(IMAGE_SUFFIXES))})")
        elif not entry.is_file():
            skipped.append(f"{entry}: not a regular file (a broken link, a pipe or a device)")
        else:
            images.append(entry)
    return images, skipped


def list_categories(root: str | Path) -> list[str]:
    """Category names under `root`, from the VisA CSV if there is one."""
    root = Path(root)
    _require_dir(root, "dataset root does not exist")
    if _visa_csv(root).is_file():
        return sorted({row["object"] for row in _read_visa_csv(_visa_csv(root))})
    return sorted(
        d.name for d in root.iterdir() if d.is_dir() and not _hidden(d) and any((d / s).is_dir() for s in _SPLITS)
    )


def load_split(root: str | Path, category: str, split: str) -> list[Sample]:
    """Samples of one split, reading whichever layout `root` has."""
    if _visa_csv(Path(root)).is_file():
        return visa_split(root, category, split)
    return mvtec_split(root, category, split)


def _check_split(split: str) -> None:
    if split not in _SPLITS:
        raise ValueError(f"split must be one of {_SPLITS}, not {split!r}")


def _require_dir(path: Path, problem: str) -> None:
    if not path.is_dir():
        raise FileNotFoundError(f"{problem}: {path} is not a folder")


def _hidden(path: Path) -> bool:
    return path.name.startswith(".")


def _in_order(samples: Iterable[Sample]) -> list[Sample]:
    return sorted(samples, key=lambda s: (s.defect or "", s.path.name, str(s.path)))


def _mvtec_sample(image: Path, defect: str, truth: Path) -> Sample:
    if defect == "good":
        return Sample(image, 0, defect, None)
    # MVTec names masks <stem>_mask.png; VisA converted to this layout uses <stem>.png.
    candidates = (truth / defect / f"{image.stem}_mask.png", truth / defect / f"{image.stem}.png")
    mask = next((c for c in candidates if c.is_file()), None)
    return Sample(image, 1, defect, mask)


def _visa_csv(root: Path) -> Path:
    return root / "split_csv" / "1cls.csv"


def _read_visa_csv(csv_path: Path) -> list[dict[str, str]]:
    if not csv_path.is_file():
        raise FileNotFoundError(f"VisA split file not found: {csv_path}")
    with csv_path.open(newline="", encoding="utf-8-sig") as file:
        reader = csv.DictReader(file)
        missing = set(_VISA_COLUMNS) - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"{csv_path}: missing column(s) {', '.join(sorted(missing))}")
        return [{k: (row[k] or "").strip() for k in _VISA_COLUMNS} for row in reader]


def _visa_sample(root: Path, row: dict[str, str], csv_path: Path) -> Sample:
    if row["label"] not in _VISA_LABELS:
        raise ValueError(
            f"{csv_path}: label must be 'normal' or 'anomaly', not {row['label']!r} (image {row['image']})"
        )
    label, defect = _VISA_LABELS[row["label"]]
    mask = root / row["mask"] if row["mask"] else None
    return Sample(root / row["image"], label, defect, mask)
