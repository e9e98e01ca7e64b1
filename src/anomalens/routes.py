"""Routes: a kind of data (images, time series, next point clouds) and the path it takes — loader → detector(s)
behind that kind's own protocol and registry → decision → findings (regions, windows) → answers. Every route
gives the same per-file `Finding`, so the service chooses a route by the files' kinds and the front ends format
one thing.

A new route is one folder (a package) whose `__init__` defines and registers it, and one entry naming that
package in `BUILT_IN` (or, from outside this package, in the `ANOMALENS_PLUGINS` environment variable):

    @register_route
    class PointClouds:
        name = "point_clouds"
        suffixes = (".xyz", ".ply")
        def inspect(self, paths, reference): ...   # yields a Finding per path, in order

`anomalens inspect FILES --reference REF` then reads them. `ANOMALENS_PLUGINS` (module names, comma-separated)
is imported the same way, so experts and series detectors registered outside the package are found too.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import ClassVar, Protocol, TypeVar

# the routes this package holds, each a module that registers its route when imported (imported lazily: a
# route's module may sit above this one in the layers, and an image command need not import the series route)
BUILT_IN = ("anomalens.service.image_route", "anomalens.series.route")
PLUGINS_VARIABLE = "ANOMALENS_PLUGINS"


@dataclass
class Finding:
    """One file's inspection, whatever its kind: the verdict, how sure, where (in the route's words: "top
    left", "rows 120 to 180"), the grounded answer, and the route's full record (JSON-ready)."""

    source: str
    route: str
    ok: bool
    anomalous: bool | None = None
    probability: float | None = None
    where: str = ""
    answer: str = ""
    error: str | None = None
    record: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


class Route(Protocol):
    name: ClassVar[str]
    suffixes: ClassVar[tuple[str, ...]]  # the file kinds it reads, lower case, with the dot

    def inspect(self, paths: Sequence[Path], reference: Path | None) -> Iterator[Finding]:
        """A finding per path, in order; a file that cannot be read is its own failed finding, never the
        batch's. `reference`: what normal looks like, in the route's terms (a model, normal data) or None."""
        ...


ROUTES: dict[str, type[Route]] = {}
R = TypeVar("R", bound=type)


def register_route(cls: R) -> R:
    """Class decorator: make a route known by its name and its files' suffixes."""
    ROUTES[cls.name] = cls  # type: ignore[attr-defined]
    return cls


def load_plugins() -> None:
    """Import the modules `ANOMALENS_PLUGINS` names (each registers what it holds: routes, experts, series
    detectors, engines); the command line does this when it starts."""
    plugins = [name.strip() for name in os.environ.get(PLUGINS_VARIABLE, "").split(",") if name.strip()]
    for module in plugins:
        try:
            importlib.import_module(module)
        except ImportError as error:
            raise ValueError(f"{PLUGINS_VARIABLE} names {module!r}, which cannot be imported: {error}") from None


def load_routes() -> None:
    """Import the built-in routes, then the plugins."""
    for module in BUILT_IN:
        importlib.import_module(module)
    load_plugins()


def _named(name: str) -> type[Route]:
    if name not in ROUTES:
        raise ValueError(f"unknown route {name!r}: choose one of {', '.join(sorted(ROUTES))}")
    return ROUTES[name]


def _reading(path: Path) -> type[Route]:
    """The registered route that reads this kind of file (by its suffix)."""
    suffix = path.suffix.lower()
    for cls in ROUTES.values():
        if suffix in cls.suffixes:
            return cls
    known = sorted(s for cls in ROUTES.values() for s in cls.suffixes)
    raise ValueError(f"{path}: no route reads {suffix or 'files without a suffix'} files (known: {', '.join(known)})")


def route_named(name: str) -> Route:
    load_routes()
    return _named(name)()


def route_for(path: Path) -> Route:
    """The route that reads this kind of file (by its suffix)."""
    load_routes()
    return _reading(path)()


def inspect_files(paths: Sequence[Path], reference: Path | None = None, route: str | None = None) -> Iterator[Finding]:
    """Each file through the route that reads its kind (or the route named), findings in the files' order; a file
    no route reads is its own failed finding. One reference (a model, normal data) serves one kind of data."""
    load_routes()  # once for the call, then each file is looked up among the routes registered
    chosen: dict[str, Route] = {}  # one route object per kind: a route's set-up (a service, a model) is shared
    routed: list[tuple[Path, str | None, str | None]] = []  # (path, route, why not)
    for path in paths:
        try:
            kind = _named(route) if route else _reading(path)
        except ValueError as error:
            routed.append((path, None, str(error)))
            continue
        if kind.name not in chosen:
            chosen[kind.name] = kind()
        routed.append((path, kind.name, None))
    if reference is not None and len(chosen) > 1:
        raise ValueError(f"{reference}: one reference serves one kind of data, and these files are {', '.join(chosen)}")
    found = {
        name: iter(kind.inspect([p for p, r, _ in routed if r == name], reference)) for name, kind in chosen.items()
    }
    for path, name, why in routed:
        yield next(found[name]) if name is not None else Finding(str(path), "", False, error=why)
