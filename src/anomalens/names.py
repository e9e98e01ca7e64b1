"""Names the command line offers before anything heavy is imported: the backbones and the default one.

Plain values only (no torch, no numpy), so that `anomalens --help` and every command's help start at once;
`anomalens.backbones` builds its registry from these names."""

from __future__ import annotations

DEFAULT_BACKBONE = "efficientnet_lite0"
EFFICIENTNET_LITE = tuple(f"efficientnet_lite{i}" for i in (0, 1, 2))
CLIP_BACKBONES = {  # backbone name → the CLIP model whose image tower it is (fetched by that name)
    "clip_vit_b32": "ViT-B-32",
    "clip_vit_b16": "ViT-B-16",
    "clip_vit_l14": "ViT-L-14",
    "clip_vit_l14_336": "ViT-L-14-336",
}
BACKBONE_NAMES = (*EFFICIENTNET_LITE, "wide_resnet50_2", "clip", *CLIP_BACKBONES)  # the registry's order
