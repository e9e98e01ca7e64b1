"""Reading weights files: tensors only, so loading a file can never run code. Every network that takes a
weights file (backbones, CLIP) reads it here; *which* network a file makes is decided elsewhere."""

from __future__ import annotations

from pathlib import Path

import torch


def load_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors only: safetensors, or torch's restricted unpickler that refuses arbitrary objects."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: weights file not found")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(path)
    state = torch.load(path, map_location="cpu", weights_only=True)
    return state.get("state_dict", state) if isinstance(state, dict) else state
