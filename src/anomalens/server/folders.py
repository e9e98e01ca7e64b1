"""Server-side folders the operator may read (`serve --folder-root NAME=PATH`): the roots listed, a folder's
sub-folders and images listed, an image fetched, and images inspected by their path under a root, a chunk a
request, exactly as if they had been uploaded (the upload route's own inspection). A client names a path only
relative to a named root: `..`, absolute paths, NUL characters and links that lead outside the root are
refused, each in words naming the path. Without roots the routes answer 404."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path, PurePosixPath

from fastapi import APIRouter, Query
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field

from ..data import IMAGE_SUFFIXES
from .errors import ApiError
from .uploads import Limits

NO_ROOTS = "the service reads no server folders: start it with --folder-root NAME=PATH"
ROOT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")

InspectStored = Callable[[list[tuple[str, bytes]], str, dict], dict]  # (name, bytes) items, model id, options


class FolderInspectRequest(BaseModel):
    paths: list[str] = Field(min_length=1, description="Images, relative to the root (as the listing gives them).")
    model_id: str = Field(min_length=1, max_length=200, description="A fitted model's id.")
    class_name: str | None = Field(None, max_length=100, description="Product class, for the answers.")
    overlay: bool = Field(False, description="Include the heatmap overlay PNG (base64).")
    batch_evidence: bool = Field(False, description="Decide the request's images as one batch (as /v1/inspect).")


def folder_roots(given: list[str]) -> dict[str, Path]:
    """`NAME=PATH` items as roots, each an existing folder under a plain name; a bad item raises ValueError."""
    roots: dict[str, Path] = {}
    for item in given:
        name, equals, path = item.partition("=")
        if not equals or not ROOT_NAME.match(name):
            raise ValueError(f"folder root {item!r}: give NAME=PATH, NAME letters, digits, '.', '_' or '-'")
        if name in roots:
            raise ValueError(f"folder root {name!r} is given twice")
        if not Path(path).is_dir():
            raise ValueError(f"folder root {name!r}: {path!r} is not a folder")
        roots[name] = Path(path).resolve()
    return roots


def inside(root: Path, relative: str) -> Path:
    """The file or folder `relative` names under `root`, refused (4xx, naming it) where it could lead out."""
    if "\x00" in relative:
        raise ApiError(400, f"path {relative!r} holds a NUL character")
    if relative.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", relative):
        raise ApiError(400, f"path {relative!r} is absolute: give it relative to the folder root")
    parts = PurePosixPath(relative.replace("\\", "/")).parts
    if ".." in parts:
        raise ApiError(400, f"path {relative!r} climbs out with '..': give it relative to the folder root")
    try:
        target = root.joinpath(*parts).resolve()
        found = target.exists()
    except (OSError, ValueError, RuntimeError) as error:  # a name too long, a lone surrogate, a link loop
        raise ApiError(400, f"path {relative!r} cannot be looked up: {error}") from None
    if not target.is_relative_to(root):
        raise ApiError(403, f"path {relative!r} leads outside the folder root (through a link)")
    if not found:
        raise ApiError(404, f"path {relative!r} does not exist under the folder root")
    return target


def is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


def folder_listing(root: Path, relative: str) -> dict:
    """The sub-folders and images of one folder (paths relative to the root, sorted); other files and links
    leading outside the root are counted as skipped, never named."""
    folder = inside(root, relative)
    if not folder.is_dir():
        raise ApiError(400, f"path {relative!r} is not a folder")
    try:
        entries = sorted(folder.iterdir())
    except OSError as error:
        raise ApiError(403, f"folder {relative!r} cannot be read: {error.strerror or error}") from None
    folders, images, skipped = [], [], 0
    for entry in entries:
        try:
            target = entry.resolve()
        except (OSError, RuntimeError):  # a link loop: not a folder or an image to offer
            target = None
        if target is None or not target.is_relative_to(root):
            skipped += 1
        elif target.is_dir():
            folders.append(entry.relative_to(root).as_posix())
        elif target.is_file() and is_image(entry):
            images.append(entry.relative_to(root).as_posix())
        else:
            skipped += 1
    return {"path": relative, "folders": folders, "images": images, "skipped": skipped}


def read_images(root: Path, paths: list[str], limits: Limits) -> tuple[list[tuple[str, bytes]], dict[int, dict]]:
    """The images' (path, bytes) to inspect, and the failed ones' results by their place in `paths`: a file
    that is no image or cannot be read fails alone; a path that could lead out refuses the request."""
    targets = [inside(root, path) for path in paths]
    given: list[tuple[str, bytes]] = []
    failed: dict[int, dict] = {}
    for place, (path, target) in enumerate(zip(paths, targets)):
        try:
            if not (target.is_file() and is_image(target)):
                raise OSError(f"not an image file ({', '.join(sorted(IMAGE_SUFFIXES))})")
            with target.open("rb") as file:
                given.append((path, file.read(limits.max_file_bytes + 1)))
        except OSError as error:
            failed[place] = {"file": path, "ok": False, "error": f"cannot be read: {error.strerror or error}"}
    return given, failed


def folder_routes(roots: Mapping[str, Path], inspect_stored: InspectStored, limits: Limits) -> APIRouter:
    """The routes under /v1/folders (behind the API key like every /v1 route)."""
    router = APIRouter()
    roots = {name: Path(path).resolve() for name, path in roots.items()}  # a root's links resolved once

    def root_of(name: str) -> Path:
        if not roots:
            raise ApiError(404, NO_ROOTS)
        if name not in roots:
            raise ApiError(404, f"unknown folder root {name!r} (the roots: {', '.join(sorted(roots))})")
        return roots[name]

    @router.get("/v1/folders")
    def list_roots() -> dict:
        """The named folder roots the service may read."""
        if not roots:
            raise ApiError(404, NO_ROOTS)
        return {"roots": sorted(roots)}

    @router.get("/v1/folders/{root}")
    def list_folder(root: str, path: str = Query("", max_length=4096, description="Relative to the root.")) -> dict:
        """A folder's sub-folders and image files, as paths relative to the root."""
        return {"root": root, **folder_listing(root_of(root), path)}

    @router.get("/v1/folders/{root}/image")
    def folder_image(root: str, path: str = Query(..., max_length=4096)) -> FileResponse:
        """One image file under the root, as it lies (for the page's detail view)."""
        target = inside(root_of(root), path)
        if not (target.is_file() and is_image(target)):
            raise ApiError(400, f"path {path!r} is not an image file")
        return FileResponse(target)

    @router.post("/v1/folders/{root}/inspect")
    def inspect_folder_images(root: str, request: FolderInspectRequest) -> dict:
        """Images under the root inspected with a fitted model: the answer /v1/inspect gives for the same files
        uploaded (a request holds at most as many as an upload may)."""
        if len(request.paths) > limits.max_files:
            raise ApiError(413, f"too many files ({len(request.paths)}; the limit is {limits.max_files})")
        given, failed = read_images(root_of(root), request.paths, limits)
        if not given:
            raise ApiError(400, "no readable image to inspect", results=list(failed.values()))
        asked = request.model_dump(include={"class_name", "overlay", "batch_evidence"})
        answer = inspect_stored(given, request.model_id, asked)
        inspected = iter(answer["results"])
        answer["results"] = [failed[i] if i in failed else next(inspected) for i in range(len(request.paths))]
        return answer

    return router
