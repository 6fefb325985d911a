"""Plain helpers for the tests (fixtures live in conftest.py)."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np

REPO = Path(__file__).resolve().parents[1]


def write_config(path: Path, derive: dict, size: int = 64, extra: str = "") -> Path:
    """A small config file with the given [derive] values (Python literals)."""
    lines = [
        "[model]", f"image_width = {size}", f"image_height = {size}", "num_layers = 4",
        "base_kernels = (3,3)", "num_classes = 2", "[mask]", "rgb_map = {(0,0,0):0, (255,0,0):1}",
        "[derive]", *(f"{k} = {v!r}" for k, v in derive.items()), extra,
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def toy_volume(seed: int, shape=(20, 24, 18)) -> tuple[np.ndarray, np.ndarray]:
    """A small image with a labelled blob (labels 1 and 2) that identifies the seed."""
    rng = np.random.default_rng(seed)
    img = rng.normal(100, 10, shape).astype(np.float32)
    lab = np.zeros(shape, np.uint8)
    c = np.array(shape) // 2 + rng.integers(-2, 3, 3)
    lab[c[0] - 3:c[0] + 3, c[1] - 4:c[1], c[2] - 2:c[2] + 3] = 1
    lab[c[0] - 3:c[0] + 3, c[1]:c[1] + 2 + seed % 4, c[2] - 2:c[2] + 3] = 2
    img[lab > 0] += 80
    return img, lab


def write_nifti(path: Path, data: np.ndarray, affine=None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(data, np.eye(4) if affine is None else affine), str(path))
    return path
