"""evaluate() on a hand-made test split with a stand-in model: every number it writes,
checked against a computation done by hand."""

import csv
import json
import math

import numpy as np
import pytest
from PIL import Image

from hippo_utils import load_config
from hippo_utils.data.derive import MANIFEST_COLUMNS
from hippo_utils.evaluation.evaluate import evaluate

from helpers import write_config

RED, BLACK = (255, 0, 0), (0, 0, 0)


class BrightnessModel:
    """A stand-in model: P(hippocampus) = pixel / 255, so every probability is known."""

    def predict_on_batch(self, x):
        p = x[..., 0] / 255.0
        return np.stack([1 - p, p], axis=-1).astype(np.float32)


def _split(tmp_path):
    """Two 8x8 test slices.

    ``a``: a 2x2 block at 255 that the truth also marks (4 true positives), a pixel at 191
    (P = 0.749: predicted, but background in the truth: a false positive), one at 64
    (P = 0.251: not predicted, but hippocampus in the truth: a false negative) and one at 0
    that the truth marks (P = 0, clipped to 1e-7 in the cross-entropy: another false negative).
    ``b``: empty image, empty truth.
    """
    out = tmp_path / "derived"
    for sub in ("images", "masks"):
        (out / "test" / sub).mkdir(parents=True)
    a = np.zeros((8, 8), np.uint8)
    a[2:4, 2:4] = 255
    a[6, 6], a[0, 7] = 191, 64
    truth_a = np.zeros((8, 8, 3), np.uint8)
    truth_a[2:4, 2:4] = RED
    truth_a[0, 7] = RED
    truth_a[7, 0] = RED
    for name, image, mask in (("a", a, truth_a), ("b", np.zeros((8, 8), np.uint8), np.zeros((8, 8, 3), np.uint8))):
        Image.fromarray(image).save(out / "test" / "images" / f"{name}.png")
        Image.fromarray(mask).save(out / "test" / "masks" / f"{name}.png")
    with (out / "manifest.csv").open("w", newline="") as fh:  # no volumes: slice-level only
        csv.DictWriter(fh, fieldnames=MANIFEST_COLUMNS).writeheader()
    path = write_config(
        tmp_path / "eval.config",
        {"output_dir": str(out)},
        size=8,
        extra=f"[train]\neval_dir = {str(tmp_path / 'eval')!r}\n",
    )
    return load_config(path, ["model.image_channels=1"])


def _read_csv(path):
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def test_every_reported_number_matches_a_hand_computation(tmp_path):
    cfg = _split(tmp_path)
    result = evaluate(cfg, model=BrightnessModel(), progress=False)

    # The original's two numbers, per slice then averaged over the 2 slices. Slice a: the
    # true class has P = 1 everywhere but at three wrong pixels: 64/255, 64/255 and 0.
    ce_a = (2 * -math.log(64 / 255) - math.log(1e-7)) / 64
    inter_a = 61 + 2 * 64 / 255  # sum over pixels of P(true class)
    dcm_a = (2 * inter_a + 1) / (64 + 64 + 1)  # smooth = 1; truth and probabilities sum to 64 each
    dcm_b = (2 * 64 + 1) / (64 + 64 + 1)  # all background, predicted so: 1
    lines = (result.eval_dir / "evaluation.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in lines] == ["categorical_crossentropy", "dice_coef_multiclass"]
    assert float(lines[0].split(",")[1]) == pytest.approx((ce_a + 0) / 2, abs=1e-4)
    assert float(lines[1].split(",")[1]) == pytest.approx((dcm_a + dcm_b) / 2, abs=1e-4)

    # Pooled over the slices, class 1: TP 4, FP 1 (the 191 pixel), FN 2 (the 64 and 0 pixels).
    (row,) = _read_csv(result.eval_dir / "evaluation_slices.csv")
    expected = {
        "class": 1,
        "dice": 8 / 11,
        "iou": 4 / 7,
        "precision": 4 / 5,
        "recall": 4 / 6,
        "true_pixels": 6,
        "predicted_pixels": 5,
    }
    assert list(row) == list(expected)
    for key, value in expected.items():
        assert float(row[key]) == pytest.approx(value, abs=1e-4), key
    (as_json,) = json.loads((result.eval_dir / "evaluation_slices.json").read_text())
    assert as_json == {k: round(v, 4) if isinstance(v, float) else v for k, v in expected.items()}

    # Each slice's foreground Dice: a is 2*4 / (6 + 5); b is empty in both, so 1.
    assert result.per_slice_dice == [("a", pytest.approx(8 / 11)), ("b", 1.0)]
    assert result.subjects == [] and not (result.eval_dir / "evaluation_subjects.csv").exists()
    assert (result.eval_dir / "best_worst_slices.png").is_file()


def test_a_model_that_finds_nothing_scores_zero_foreground_dice_but_high_original_metric(tmp_path):
    """The original's metric counts the background: it stays near 1 for a useless model."""
    cfg = _split(tmp_path)

    class Nothing:
        def predict_on_batch(self, x):
            return np.stack([np.ones(x.shape[:3]), np.zeros(x.shape[:3])], axis=-1).astype(np.float32)

    result = evaluate(cfg, model=Nothing(), progress=False)
    (row,) = result.slices
    assert row["dice"] == 0.0 and row["iou"] == 0.0 and row["recall"] == 0.0
    assert row["precision"] == 1.0  # nothing predicted: no false positive (the empty convention)
    assert row["predicted_pixels"] == 0 and row["true_pixels"] == 6
    dcm_a = (2 * (64 - 6) + 1) / (64 + 64 + 1)
    assert result.original["dice_coef_multiclass"] == pytest.approx((dcm_a + 1) / 2, abs=1e-6)
