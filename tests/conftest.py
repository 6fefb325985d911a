"""Shared fixtures: small synthetic data made once per session, and real-data paths."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hippo_utils.data.synthetic import synthesize


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


@pytest.fixture
def clear_keras():
    """A fresh Keras session per model test."""
    import keras

    keras.backend.clear_session()
    yield
    keras.backend.clear_session()


@pytest.fixture(scope="session")
def tiny_config(synthetic_hfh, tmp_path_factory):
    """A derived 32x32 dataset and a tiny model config to train on it."""
    from hippo_utils import load_config
    from hippo_utils.data.derive import derive_dataset

    from helpers import write_config

    tmp = tmp_path_factory.mktemp("tiny")
    extra = "\n".join(
        [
            "[train]",
            "epochs = 2",
            "batch_size = 16",
            "patience = 5",
            "num_infer_images = 2",
            f"model_dir = {str(tmp / 'run' / 'models')!r}",
            f"eval_dir = {str(tmp / 'run' / 'eval')!r}",
            f"epoch_change_infer_dir = {str(tmp / 'run' / 'previews')!r}",
        ]
    )
    path = write_config(
        tmp / "tiny.config",
        {
            "source_dir": str(synthetic_hfh),
            "output_dir": str(tmp / "derived"),
            "split": (0.5, 0.25, 0.25),
            "mini_test_size": 2,
        },
        size=32,
        extra=extra,
    )
    text = path.read_text().replace("num_layers = 4", "num_layers = 3\nbase_filters = 4\nlearning_rate = 0.003")
    path.write_text(text)
    cfg = load_config(path)
    derive_dataset(cfg, progress=False)
    return cfg


@pytest.fixture(scope="session")
def tiny_model_dir(tiny_config, tmp_path_factory):
    """A model trained for 2 epochs on the tiny dataset, in its own folder."""
    import keras

    from hippo_utils import load_config
    from hippo_utils.training.trainer import train

    run = tmp_path_factory.mktemp("tinyrun")
    cfg = load_config(
        tiny_config.path,
        [
            f"train.model_dir={run / 'models'}",
            f"train.eval_dir={run / 'eval'}",
            f"train.epoch_change_infer_dir={run / 'previews'}",
        ],
    )
    keras.backend.clear_session()
    train(cfg, progress=False)
    return cfg


@pytest.fixture
def browser():
    """A headless Chromium through Playwright (tests/helpers.py: skipped with the reason when
    there is none, failed instead when HIPPO_REQUIRE_BROWSER=1)."""
    from playwright.sync_api import sync_playwright

    from helpers import launch_chromium

    with sync_playwright() as pw:
        chromium = launch_chromium(pw)
        try:
            yield chromium
        finally:
            chromium.close()
