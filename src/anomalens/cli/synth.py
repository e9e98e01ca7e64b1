"""`anomalens synth`: preview the synthetic anomalies the decoder expert learns from."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape

from .common import app, console, fail, warn
from .files import fresh_output_dir, normal_images
from .options import SeedOpt, SizeOpt


@app.command()
def synth(
    data: Annotated[Path, typer.Argument(help="Folder of normal images, or an MVTec/VisA category folder.")],
    out: Annotated[Path, typer.Option("-o", "--out", help="Folder for the preview images.")],
    n: Annotated[int, typer.Option("-n", min=1, help="How many synthetic anomalies to make.")] = 16,
    category: Annotated[Optional[str], typer.Option(help="Category, when DATA is a dataset root.")] = None,
    image_size: SizeOpt = 256,
    seed: SeedOpt = 0,
    overwrite: Annotated[bool, typer.Option(help="Write into a non-empty --out folder.")] = False,
):
    """Preview the synthetic anomalies the decoder expert learns from: normal | synthetic | its mask in red."""
    import numpy as np
    from PIL import Image

    from ..data import ImageError, load_image, to_uint8
    from ..resampling import resized
    from ..synth import synthesize

    paths = normal_images(data, category)
    out = fresh_output_dir(out, overwrite, "synth")
    rng = np.random.default_rng(seed)
    images: dict[Path, np.ndarray] = {}

    def image() -> np.ndarray:
        """A random readable image, decoded and resized as the decoder sees it (once); an unreadable one
        is reported and never drawn again."""
        while paths:
            path = paths[int(rng.integers(len(paths)))]
            if path not in images:
                try:
                    images[path] = resized(load_image(path), image_size).transpose(1, 2, 0)
                except ImageError as error:
                    warn(str(error), "skipped")
                    paths.remove(path)
                    continue
            return images[path]
        fail(f"{data}: no readable normal image")

    out.mkdir(parents=True, exist_ok=True)
    for k in range(n):
        target = image()
        result = synthesize(target, image(), rng)
        marked = result.image.copy()
        marked[result.mask] = 0.5 * marked[result.mask] + 0.5 * np.array([1.0, 0.0, 0.0])
        preview = np.concatenate([target, result.image, marked], axis=1)
        Image.fromarray(to_uint8(preview)).save(out / f"{k:03d}_{result.mode}.png")
    console.print(f"{n} synthetic anomalies (normal | synthetic | mask) in {escape(str(out))}")
