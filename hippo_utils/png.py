"""PNG in and out with PIL alone (no matplotlib): the derived dataset's images and masks,
the epoch previews and the widgets' pictures."""

from __future__ import annotations

import io
import os

import numpy as np
from PIL import Image

# What the training pipeline's tf.image decoder reads: the derived dataset and its pairs.
DATASET_SUFFIXES = (".png", ".jpg", ".jpeg")
# What PIL reads: 2D source slices to derive from, and images to segment.
IMAGE_SUFFIXES = (*DATASET_SUFFIXES, ".bmp", ".tif", ".tiff")


def png_bytes(array: np.ndarray, compress_level: int = 6) -> bytes:
    """A uint8 grey or RGB array as PNG bytes (deterministic: no timestamps).

    ``compress_level=1`` trades size for speed, for images redrawn on every event.
    """
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG", compress_level=compress_level)
    return buf.getvalue()


def read_rgb(path: str | os.PathLike[str]) -> np.ndarray:
    """An image file as a uint8 (H, W, 3) RGB array (masks, previews, strips)."""
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def read_grey(path: str | os.PathLike[str]) -> np.ndarray:
    """An image file as a uint8 (H, W) grey array."""
    with Image.open(path) as image:
        return np.asarray(image.convert("L"))
