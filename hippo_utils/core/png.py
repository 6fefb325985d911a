"""PNG in and out with PIL alone (no matplotlib): the derived dataset's images and masks,
the epoch previews and the widgets' pictures."""

from __future__ import annotations

import io
import os
from pathlib import Path

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


# Grey modes of more than 8 bits, which ``convert("L")`` would clip at 255
HIGH_DEPTH_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")


def open_image(path: str | os.PathLike[str]) -> Image.Image:
    """An image file, decoded.

    Raises:
        FileNotFoundError: no such file.
        ValueError: empty, truncated or not an image, naming the file.
    """
    path = Path(path)
    try:
        image = Image.open(path)
        image.load()
    except FileNotFoundError:
        raise
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        why = "the file is empty" if path.is_file() and path.stat().st_size == 0 else str(exc)
        raise ValueError(
            f"{path}: cannot read this file as an image ({why}); a .png, .jpg, .bmp or .tif image is needed"
        ) from None
    return image


def read_rgb(path: str | os.PathLike[str]) -> np.ndarray:
    """An image file as a uint8 (H, W, 3) RGB array (masks, previews, strips)."""
    with open_image(path) as image:
        if image.mode in HIGH_DEPTH_MODES:
            raise ValueError(
                f"{path}: a {image.mode} (more than 8-bit grey) image where a colour mask is "
                "needed; save the mask as an 8-bit PNG"
            )
        return np.asarray(image.convert("RGB"))


def read_grey(path: str | os.PathLike[str]) -> np.ndarray:
    """An image file as a uint8 (H, W) grey array."""
    with open_image(path) as image:
        return np.asarray(image.convert("L"))


def read_grey_values(path: str | os.PathLike[str]) -> np.ndarray:
    """An image file's grey values as float32, at the file's own precision: 0..255 for 8-bit
    images, the stored values for 16-bit and float ones (which ``read_grey`` would clip)."""
    with open_image(path) as image:
        if image.mode in HIGH_DEPTH_MODES:
            return np.asarray(image, dtype=np.float32)
        return np.asarray(image.convert("L"), np.float32)
