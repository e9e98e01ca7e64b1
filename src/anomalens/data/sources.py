"""Where a batch's images come from: a folder, a glob, a list file, an image file, or the URI of a folder or an
image on a file system pyarrow reaches (s3://, gs://, hdfs://, file://, …, where the user has its library and
credentials). A remote image is fetched to a local file by the worker that inspects it, its SHA-256 taken on the
way (`fetched`), so it is decoded, bounded and refused exactly as a local one is."""

from __future__ import annotations

import glob
import hashlib
import os
import re
from collections.abc import Sequence
from pathlib import Path

from .datasets import scan_folder
from .images import IMAGE_SUFFIXES

LIST_SUFFIXES = (".txt", ".lst", ".list")  # a list file: one image path or URI a line (relative: to its folder)
URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
CHUNK = 1 << 20  # bytes read at a time from a remote file


def is_uri(text: str) -> bool:
    return bool(URI.match(text))


def source_paths(source: str | os.PathLike | Sequence[str | os.PathLike]) -> list[str]:
    """The images a source names, each once, in order: absolute local paths, and URIs as given: a folder (its
    images and its subfolders'), a glob (`"/data/**/*.png"`), a list file (.txt, .lst, .list: one path or URI a
    line, `#` comments), an image file, a URI of a folder or an image, or a sequence of any of these."""
    if not isinstance(source, str | os.PathLike):
        return list(dict.fromkeys(path for item in source for path in source_paths(item)))
    text = os.fspath(source)
    if is_uri(text):
        return remote_images(text)
    path = Path(text)
    if any(char in text for char in "*?[") and not path.exists():
        paths = [Path(p) for p in sorted(glob.glob(text, recursive=True)) if Path(p).is_file()]
    elif path.is_dir():
        paths = scan_folder(path, recursive=True)[0]
    elif path.suffix.lower() in LIST_SUFFIXES:
        lines = [line.strip() for line in path.read_text().splitlines()]
        named = [line for line in lines if line and not line.startswith("#")]
        return list(dict.fromkeys(n if is_uri(n) else str((path.parent / n).absolute()) for n in named))
    else:
        paths = [path]
    return list(dict.fromkeys(str(p.absolute()) for p in paths))


def remote_images(uri: str) -> list[str]:
    """The images at a URI: itself if it names a file, else the images below the folder it names (by suffix,
    sorted). A URI pyarrow cannot open, or that names nothing, is an error that says so."""
    from pyarrow import fs

    filesystem, root = _opened(uri)
    found = filesystem.get_file_info(root)
    if found.type == fs.FileType.NotFound:
        raise FileNotFoundError(f"{uri}: no such file or folder")
    if found.type == fs.FileType.File:
        return [uri]
    scheme = uri[: uri.index("://") + 3]
    below = filesystem.get_file_info(fs.FileSelector(root, recursive=True))
    files = (f.path for f in below if f.type == fs.FileType.File and Path(f.path).suffix.lower() in IMAGE_SUFFIXES)
    return [scheme + name for name in sorted(files)]  # file:///data/a.png, s3://bucket/data/a.png


def fetched(uri: str, folder: Path) -> tuple[Path, str]:
    """The remote image copied into `folder` (named by the URI's hash, its suffix kept) and the SHA-256 of its
    bytes."""
    filesystem, path = _opened(uri)
    target = folder / f"{hashlib.sha1(uri.encode()).hexdigest()[:16]}{Path(path).suffix.lower()}"
    digest = hashlib.sha256()
    with filesystem.open_input_stream(path) as stream, target.open("wb") as copy:
        while chunk := stream.read(CHUNK):
            digest.update(chunk)
            copy.write(chunk)
    return target, digest.hexdigest()


def _opened(uri: str):
    """(file system, path in it) for a URI; one pyarrow does not know, or cannot reach, is a ValueError."""
    import pyarrow as pa
    from pyarrow import fs

    try:
        return fs.FileSystem.from_uri(uri)
    except (pa.ArrowException, OSError) as error:
        raise ValueError(f"{uri}: cannot be opened through pyarrow ({error})") from None
