"""Shared fixtures: small synthetic data made once per session, and real-data paths."""

from __future__ import annotations

import os
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from hippo_utils.synthetic import synthesize

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def synthetic_hfh(tmp_path_factory) -> Path:
    """Four labelled and one unlabelled synthetic subject in the Kaggle layout."""
    dest = tmp_path_factory.mktemp("syn") / "hfh"
    return synthesize(dest, n_labelled=4, n_unlabelled=1, seed=5, atrophy_fraction=0.5)


@pytest.fixture
def real_data() -> Path:
    """The shared real data; tests using it skip, with the reason, when it is not set."""
    value = os.environ.get("HIPPO_REAL_DATA")
    if not value:
        pytest.skip("HIPPO_REAL_DATA is not set (point it at the shared real data folder)")
    path = Path(value)
    if not path.is_dir():
        pytest.skip(f"HIPPO_REAL_DATA={value} is not a folder")
    return path


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
