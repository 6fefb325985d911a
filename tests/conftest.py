"""Shared fixtures: small synthetic data made once per session, and real-data paths."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hippo_utils.synthetic import synthesize


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
