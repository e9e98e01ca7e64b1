"""Where a command's images come from and its results go: the bundled sample, images in files and folders,
normal images of a folder or dataset, and output folders checked before any work."""

from __future__ import annotations

import tempfile
import time
from importlib.resources import files
from pathlib import Path

from .common import fail, report_skipped, warn


def sample_root() -> Path:
    """The bundled battery-weld sample (MVTec layout) that ships inside the package."""
    return Path(str(files("anomalens") / "sample"))


def image_paths(inputs: list[Path]) -> list[Path]:
    """Files as given (a bad one is reported later, with the rest), folders expanded to their images and
    those of their subfolders; what a folder holds besides is reported."""
    from ..data.datasets import scan_folder

    paths = []
    for item in inputs:
        if item.is_dir():
            found, skipped = scan_folder(item, recursive=True)
            report_skipped(skipped)
            if not found:
                warn(f"{item}: no images found in this folder")
            paths += found
        else:
            paths.append(item)
    return paths


def normal_images(data: Path, category: str | None) -> list[Path]:
    """Normal images from a folder of images, an MVTec/VisA category (its train split) or a dataset root."""
    from ..data.datasets import list_categories, load_split, scan_folder

    if category:
        return [s.path for s in load_split(data, category, "train")]
    if (data / "train" / "good").is_dir():
        return [s.path for s in load_split(data.parent, data.name, "train")]
    if data.is_dir():
        paths, skipped = scan_folder(data)
        cats = [] if paths else list_categories(data)
        if cats:
            fail(f"{data} is a dataset root: name one of its categories with --category ({', '.join(cats)})")
        report_skipped(skipped)
        if paths:
            return paths
    fail(f"{data}: no normal images found (give a folder of images or an MVTec-layout category)")


def fresh_output_dir(out: Path | None, overwrite: bool, prefix: str) -> Path:
    """A folder for results, checked before any work and made when the first result is written; an existing
    non-empty one is only reused with --overwrite."""
    if out is None:
        out = Path("anomalens-out") / f"{prefix}-{time.strftime('%Y%m%d-%H%M%S')}"
    if out.exists() and not out.is_dir():
        fail(f"{out} is a file; --out names a folder")
    if out.exists() and any(out.iterdir()) and not overwrite:
        fail(f"{out} already holds files; choose another --out or pass --overwrite")
    check_writable(out)
    return out


def check_writable(folder: Path) -> None:
    """Files can be written in the folder, or in the closest existing one above it, where it will be made.
    Checked before any work, so a long fit never ends in a write error; nothing is created here."""
    existing = next(p for p in (folder, *folder.parents) if p.exists())
    if not existing.is_dir():
        fail(f"{folder}: cannot write there ({existing} is a file)")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as error:
        fail(f"{folder}: cannot write there ({error.strerror or error})")
