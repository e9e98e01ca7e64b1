"""Data input: decoding images and masks, and listing dataset splits."""

from .datasets import (
    Sample,
    image_folder,
    list_categories,
    load_split,
    mvtec_split,
    visa_split,
)
from .images import (
    IMAGE_SUFFIXES,
    ImageError,
    as_float,
    image_size,
    load_image,
    load_mask,
    read_image,
    reduced,
    to_uint8,
)

__all__ = [
    "IMAGE_SUFFIXES",
    "ImageError",
    "Sample",
    "image_folder",
    "list_categories",
    "load_image",
    "read_image",
    "image_size",
    "as_float",
    "reduced",
    "to_uint8",
    "load_mask",
    "load_split",
    "mvtec_split",
    "visa_split",
]
