import numpy as np
import pytest

from hippo_utils.model.losses import ForegroundDice, dice_coef_multiclass, soft_dice_loss
from hippo_utils.model.metrics import (
    confusion_counts,
    dice_coef_multiclass_np,
    dice_score,
    iou_score,
    scores_from_counts,
)


def _onehot(labels, n=2):
    return np.eye(n, dtype=np.float32)[labels]


def test_dice_and_iou_by_hand():
    t = np.zeros((4, 4), bool)
    p = np.zeros((4, 4), bool)
    t[0, :4] = True  # 4 pixels
    p[0, :2] = True  # 2 pixels, both inside
    p[1, 0] = True  # 1 outside
    assert dice_score(t, p) == pytest.approx(2 * 2 / (4 + 3))
    assert iou_score(t, p) == pytest.approx(2 / 5)


def test_empty_mask_conventions():
    empty = np.zeros((3, 3), bool)
    one = empty.copy()
    one[1, 1] = True
    assert dice_score(empty, empty) == 1.0 and iou_score(empty, empty) == 1.0
    assert dice_score(empty, one) == 0.0 and dice_score(one, empty) == 0.0


def test_per_class_dice_excludes_background():
    """Per-class Dice as evaluation computes it: confusion counts, then scores per foreground class."""
    truth = np.array([[0, 1, 1, 2]])
    pred = np.array([[0, 1, 2, 2]])
    counts = confusion_counts(truth, pred, 3)
    per_class = {c: scores_from_counts(*counts[c])["dice"] for c in range(1, 3)}
    assert per_class == {1: pytest.approx(2 / 3), 2: pytest.approx(2 / 3)}


def test_original_metric_counts_the_background_and_sits_near_one():
    truth = np.zeros((1, 64, 64), int)
    truth[0, 30:34, 30:34] = 1  # 16 hippocampus pixels of 4096
    all_background = np.zeros_like(truth)
    value = dice_coef_multiclass_np(_onehot(truth), _onehot(all_background))
    assert value == pytest.approx((2 * 4080 + 1) / (2 * 4096 + 1))
    assert value > 0.99  # a model that finds nothing scores 0.996
    assert dice_score(truth == 1, all_background == 1) == 0.0
    keras_value = float(dice_coef_multiclass(_onehot(truth), _onehot(all_background)))
    assert keras_value == pytest.approx(value, rel=1e-6)


def test_foreground_dice_metric_pools_over_the_epoch():
    metric = ForegroundDice(2)
    truth = np.zeros((2, 4, 4), int)
    pred = np.zeros((2, 4, 4), int)
    truth[0, 0, :2] = 1  # slice 0: 2 true pixels, 1 found
    pred[0, 0, 0] = 1
    # slice 1: empty truth, empty prediction (would be 1.0 on its own; pooling ignores it)
    metric.update_state(_onehot(truth), _onehot(pred))
    assert float(metric.result()) == pytest.approx(2 * 1 / (2 + 1))
    metric.reset_state()
    metric.update_state(_onehot(np.zeros((1, 2, 2), int)), _onehot(np.zeros((1, 2, 2), int)))
    assert float(metric.result()) == 1.0  # nothing to find, nothing predicted


def test_soft_dice_loss_by_hand():
    truth = _onehot(np.array([[[0, 1], [1, 0]]]))
    assert float(soft_dice_loss(truth, truth, smooth=0.0)) == pytest.approx(0.0, abs=1e-6)
    half = truth.copy()
    half[..., 1] *= 0.5
    half[..., 0] = 1 - half[..., 1]
    # foreground: intersection 1, sizes 2 + 1 -> Dice 2/3
    assert float(soft_dice_loss(truth, half, smooth=0.0)) == pytest.approx(1 / 3, rel=1e-5)


def test_ce_dice_weight_scales_the_dice_part():
    from hippo_utils.model.losses import get_loss

    truth = _onehot(np.array([[[0, 1], [1, 0]]]))
    pred = truth * 0.6 + 0.2  # rows still sum to 1
    ce = float(get_loss("ce_dice", 0.0)(truth, pred))
    assert ce == pytest.approx(-np.log(0.8), rel=1e-5)
    dice = float(soft_dice_loss(truth, pred))
    assert float(get_loss("ce_dice")(truth, pred)) == pytest.approx(ce + dice, rel=1e-5)
    assert float(get_loss("ce_dice", 0.25)(truth, pred)) == pytest.approx(ce + 0.25 * dice, rel=1e-5)
    with pytest.raises(ValueError, match="is not one of"):
        get_loss("dice_ce")


def test_volumetry_against_truth_by_hand():
    from hippo_utils.inference.volumetry import asymmetry_index, flagged_side, volumetry_against_truth

    assert asymmetry_index(3000, 2000) == pytest.approx(0.4)
    assert flagged_side(0.4) == "right" and flagged_side(-0.2) == "left" and flagged_side(0.05) == ""
    measured = {
        "A": {"left_mm3": 3300.0, "right_mm3": 2000.0},
        "B": {"left_mm3": 2900.0, "right_mm3": 3100.0},
        "C": {"left_mm3": 1.0, "right_mm3": 1.0},
    }
    truth = {
        "A": {"left_mm3": "3000", "right_mm3": "2000", "atrophy_side": "right"},
        "B": {"left_mm3": "3000", "right_mm3": "3000", "atrophy_side": ""},
    }
    rows = volumetry_against_truth(measured, truth)
    assert [r["subject"] for r in rows] == ["A", "B"]  # C has no truth
    a, b = rows
    assert a["left_err_%"] == 10.0 and a["right_err_%"] == 0.0
    assert a["AI"] == pytest.approx(round(1300 / 2650, 3)) and a["true_AI"] == pytest.approx(0.4)
    assert a["flag"] == a["true_flag"] == "right" and a["atrophy_made"] == "right"
    assert b["AI"] == pytest.approx(-0.067) and b["flag"] == "-" and b["true_flag"] == "-"


def test_a_sheared_voxel_has_one_volume_in_volumetry_and_in_the_metrics():
    """A voxel's volume is |det| of the affine (the column norms' product overstates a sheared
    one): counted volumes in the volumetry table and the evaluation metrics must say the same mm^3."""
    from hippo_utils.core.config import Config
    from hippo_utils.data.volumes import Volume
    from hippo_utils.inference.volumetry import volumetry
    from hippo_utils.model.metrics import labelled_volume_metrics

    affine = np.array([[1.0, 0.5, 0.0, 0], [0.0, 1.0, 0.0, 0], [0.0, 0.0, 2.0, 0], [0, 0, 0, 1]])
    labels = np.zeros((6, 6, 6), np.uint8)
    labels[1:4, 1:3, 2:5] = 1  # 18 voxels
    volume = Volume(np.zeros(labels.shape, np.float32), affine)
    assert volume.voxel_mm3 == pytest.approx(2.0)
    assert np.prod(volume.spacing) == pytest.approx(np.sqrt(1.25) * 2.0)  # what it would have been
    measured = volumetry(labels, volume, Config())["total_mm3"]
    scored = labelled_volume_metrics(labels, labels, volume.spacing, [1], "label", volume.voxel_mm3)
    assert measured == scored["hippocampus_volume_pred_mm3"] == pytest.approx(36.0)
