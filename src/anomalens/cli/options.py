"""The option types the commands share, and the parsers behind them (typer reads them from each command's
signature). Light on purpose: a command's help imports this and nothing heavy."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..names import BACKBONE_NAMES

BackboneOpt = Annotated[str, typer.Option(help=f"Feature network: {', '.join(BACKBONE_NAMES)}.")]
WeightsOpt = Annotated[Optional[Path], typer.Option(help="Backbone weights file (.pth state dict or .safetensors).")]
ExpertOpt = Annotated[
    str,
    typer.Option(
        help="memory or auto (few-shot memory bank up to 16 images, else "
        "PatchCore), memory_bank, patchcore, decoder (trained on synthetic "
        "anomalies) or both (memory and decoder fused)."
    ),
]
SizeOpt = Annotated[
    int,
    typer.Option(
        min=32,
        max=2048,
        help="The network's input side: each image's short side (--scale aspect), the square it is squashed to "
        "(squash) or each tile's side (a number). At least 32, since features lie on a grid 8 to 16 times coarser "
        "(32 gives 2×2 to 4×4 patches); at most 2048 (memory grows with its square).",
    ),
]
ScaleOpt = Annotated[
    str,
    typer.Option(
        help="How images meet the input size: squash (the whole image to a square, distorted; the only layout "
        "`export` takes), aspect (short side to --image-size, aspect kept, overlapping tiles along the long side), "
        "a number: the image resized by it (1 = native pixels) and cut into overlapping --image-size tiles, for "
        "small defects in large images; or auto: the coarsest of these that still finds a synthetic defect of "
        "0.05 % of the image in a few normal images (when fitting).",
    ),
]
TileOpt = Annotated[
    Optional[int],
    typer.Option(
        min=32, max=2048, help="Inspect native pixels in overlapping tiles of this side: --image-size N --scale 1."
    ),
]
SeedOpt = Annotated[int, typer.Option(min=0, help="Seed of the random draws.")]


def false_alarm_share(text: str | None) -> float | None:
    """ "1%" or "0.01" → 0.01: a share of normal images, above 0 and below 1."""
    if text is None:
        return None
    try:
        share = float(text.removesuffix("%")) / (100 if text.endswith("%") else 1)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not a share such as 1% or 0.01") from None
    if not 0 < share < 1:
        raise typer.BadParameter(f"{text!r} must lie above 0 and below 100%")
    return share


FalseAlarmsOpt = Annotated[
    Optional[float],
    typer.Option(
        parser=false_alarm_share,
        metavar="SHARE",
        help="Operating point: at most this share of normal images flagged (e.g. 1%), the threshold placed "
        "from the normal references alone. Default: the threshold between normal and synthetic anomalies.",
    ),
]
BatchEvidenceOpt = Annotated[
    bool,
    typer.Option(
        "--batch-evidence",
        help="Decide the images as one batch: the threshold may move on the batch's own scores where they are "
        "clearly two groups (at least 16 images; never raised). Default: each image alone, its verdict "
        "depending on it and the model only. Each result's decision.mode says which.",
    ),
]
# the default before batch evidence was asked for; accepted, and changes nothing
PerImageOpt = Annotated[bool, typer.Option("--per-image", hidden=True, help="Deprecated: the default now.")]
ZeroShotOpt = Annotated[
    Optional[str],
    typer.Option(
        "--zero-shot",
        metavar="ROUTE",
        help="No normal images: inspect on this registered zero-shot route. mutual (the usual choice): the images "
        "scored against each other, so at least 2 of them; clip: CLIP and text prompts about --class, with "
        "--clip-weights or --clip-model.",
    ),
]
ClipWeightsOpt = Annotated[
    Optional[Path],
    typer.Option(
        help="The zero-shot route clip: a CLIP checkpoint file (OpenAI, "
        "OpenCLIP or transformers layout; .safetensors or state dict)."
    ),
]
ClipModelOpt = Annotated[
    Optional[str],
    typer.Option(
        help="The zero-shot route clip: ViT-B-16, ViT-B-32, ViT-L-14 or ViT-L-14-336 "
        "(without --clip-weights: downloaded from the Hugging Face hub)."
    ),
]
MaxPixelsOpt = Annotated[
    int,
    typer.Option(
        min=1,
        help="Largest image accepted, in pixels (width × height); larger ones are refused from "
        "their header, before decoding.",
    ),
]
ClassOpt = Annotated[
    Optional[str],
    typer.Option("--class", help="What the product is, e.g. 'metal nut' (zero-shot prompts and answers)."),
]

ExpertSettingOpt = Annotated[
    Optional[list[str]],
    typer.Option(
        "--expert-setting",
        metavar="KEY=VALUE",
        help="One of the expert's own settings (repeatable), e.g. coreset_ratio=0.05 for patchcore; "
        "a value that reads as a JSON number, true/false or null is taken so, else as text.",
    ),
]
