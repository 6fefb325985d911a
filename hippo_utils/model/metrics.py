"""Segmentation metrics, in NumPy: every number that evaluation and inference report.

Scores are pooled over a whole test set from per-class confusion counts
(:func:`confusion_counts`, then :func:`scores_from_counts`). The training losses and the
metrics Keras logs during training are in :mod:`hippo_utils.model.losses`.

**Foreground Dice** (the headline metric) is computed per class, background excluded,
from hard labels. Conventions for empty masks, per class:

- ground truth empty and prediction empty: Dice = 1 (nothing to find, nothing found);
- exactly one of them empty: Dice = 0.

**dice_coef_multiclass** reproduces the original system's metric for comparison: a
soft Dice summed over height, width *and all classes including the background*, per
sample, then averaged over the batch, with smooth = 1. Because the background is 99%
of every slice, it stays near 1 whatever the model does on the hippocampus (a model
that predicts background everywhere scores about 0.99). It is not a hippocampus Dice.
"""

from __future__ import annotations

import numpy as np


# --------------------------------------------------------------------------- NumPy
def confusion_counts(truth: np.ndarray, pred: np.ndarray, num_classes: int) -> np.ndarray:
    """(num_classes, 3) int64 counts of two class maps: per class, true positives, false
    positives and false negatives. Counts add up across slices or batches, so that scores
    pooled over a whole test set come from their sums (:func:`scores_from_counts`)."""
    t, p = np.asarray(truth).ravel(), np.asarray(pred).ravel()
    both = np.bincount(t[t == p], minlength=num_classes)[:num_classes]
    in_truth = np.bincount(t, minlength=num_classes)[:num_classes]
    in_pred = np.bincount(p, minlength=num_classes)[:num_classes]
    return np.stack([both, in_pred - both, in_truth - both], axis=1).astype(np.int64)


def scores_from_counts(tp: float, fp: float, fn: float) -> dict[str, float]:
    """Dice, IoU, precision and recall from counts; each is 1.0 where its denominator is
    empty (nothing to find and nothing found: see the module docstring)."""

    def ratio(num: float, den: float) -> float:
        return float(num / den) if den else 1.0

    return {
        "dice": ratio(2 * tp, 2 * tp + fp + fn),
        "iou": ratio(tp, tp + fp + fn),
        "precision": ratio(tp, tp + fp),
        "recall": ratio(tp, tp + fn),
    }


def _binary_scores(truth: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    t, p = np.asarray(truth, bool), np.asarray(pred, bool)
    tp = int(np.logical_and(t, p).sum())
    return scores_from_counts(tp, int(p.sum()) - tp, int(t.sum()) - tp)


def dice_score(truth: np.ndarray, pred: np.ndarray) -> float:
    """Dice of two binary masks, 1.0 when both are empty."""
    return _binary_scores(truth, pred)["dice"]


def iou_score(truth: np.ndarray, pred: np.ndarray) -> float:
    """Intersection over union of two binary masks, 1.0 when both are empty."""
    return _binary_scores(truth, pred)["iou"]


def precision_recall(truth: np.ndarray, pred: np.ndarray) -> tuple[float, float]:
    """Precision and recall of binary masks; 1.0 where the denominator is empty."""
    scores = _binary_scores(truth, pred)
    return scores["precision"], scores["recall"]


def one_hot(classes: np.ndarray, num_classes: int) -> np.ndarray:
    """Class indices (...) -> float32 one-hot (..., num_classes)."""
    return np.eye(num_classes, dtype=np.float32)[np.asarray(classes)]


def categorical_crossentropy_np(y_true: np.ndarray, y_pred: np.ndarray, eps: float = 1e-7) -> np.ndarray:
    """Per sample, the mean over pixels of the cross-entropy of one-hot (N, H, W, C) truth and
    probabilities (clipped to ``eps``, as Keras does): what Keras's loss averages."""
    pixel = -(y_true * np.log(np.clip(y_pred, eps, 1.0))).sum(axis=-1)
    return pixel.reshape(len(pixel), -1).mean(axis=1)


def dice_coef_multiclass_per_sample(y_true: np.ndarray, y_pred: np.ndarray, smooth: float = 1.0) -> np.ndarray:
    """The original's metric for each one-hot (N, H, W, C) sample: background included."""
    axes = (1, 2, 3)
    inter = (y_true * y_pred).sum(axis=axes)
    total = y_true.sum(axis=axes) + y_pred.sum(axis=axes)
    return (2.0 * inter + smooth) / (total + smooth)


def dice_coef_multiclass_np(y_true: np.ndarray, y_pred: np.ndarray, smooth: float = 1.0) -> float:
    """The original's metric on one-hot (N, H, W, C) arrays, averaged over the samples."""
    return float(np.mean(dice_coef_multiclass_per_sample(y_true, y_pred, smooth)))


# --------------------------------------------------------------------------- 3D
def hd95(truth: np.ndarray, pred: np.ndarray, spacing) -> float:
    """95th-percentile symmetric Hausdorff distance between two masks' surfaces, in mm.

    Conventions: 0.0 when both masks are empty; NaN when exactly one is (the distance
    to nothing is undefined; tables count these cases separately).
    """
    from scipy import ndimage

    t, p = np.asarray(truth, bool), np.asarray(pred, bool)
    if not t.any() and not p.any():
        return 0.0
    if not t.any() or not p.any():
        return float("nan")
    both = t | p
    lo = [max(0, int(ix.min()) - 2) for ix in np.nonzero(both)]
    hi = [int(ix.max()) + 3 for ix in np.nonzero(both)]
    crop = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
    t, p = t[crop], p[crop]
    st = t & ~ndimage.binary_erosion(t, border_value=0)
    sp = p & ~ndimage.binary_erosion(p, border_value=0)
    to_p = ndimage.distance_transform_edt(~sp, sampling=spacing)
    to_t = ndimage.distance_transform_edt(~st, sampling=spacing)
    return float(np.percentile(np.concatenate([to_p[st], to_t[sp]]), 95))


def volume_metrics(truth: np.ndarray, pred: np.ndarray, spacing, voxel_mm3: float) -> dict[str, float]:
    """Dice, HD95 (mm), and absolute (mm^3) and relative volume difference of two masks.

    ``spacing``: the voxel size along each axis, for the distances; ``voxel_mm3``: one voxel's
    volume (a :class:`~hippo_utils.data.volumes.Volume`'s ``voxel_mm3``, right for sheared axes too).
    The relative difference is (pred - truth) / truth; NaN when the truth is empty.
    """
    voxel = float(voxel_mm3)
    vt, vp = float(np.count_nonzero(truth)) * voxel, float(np.count_nonzero(pred)) * voxel
    return {
        "dice": dice_score(truth, pred),
        "hd95_mm": hd95(truth, pred, spacing),
        "volume_true_mm3": vt,
        "volume_pred_mm3": vp,
        "volume_diff_mm3": vp - vt,
        "volume_diff_rel": (vp - vt) / vt if vt else float("nan"),
    }


def labelled_volume_metrics(
    truth: np.ndarray, pred: np.ndarray, spacing, values, prefix: str, voxel_mm3: float
) -> dict[str, float]:
    """:func:`volume_metrics` of each label value in ``values`` (keys ``{prefix}{value}_dice``,
    ...) and of the whole hippocampus (any label; ``hippocampus_dice``, ...), rounded to 4 places."""
    row = {}
    for value in values:
        for k, v in volume_metrics(truth == value, pred == value, spacing, voxel_mm3).items():
            row[f"{prefix}{value}_{k}"] = round(v, 4)
    for k, v in volume_metrics(truth > 0, pred > 0, spacing, voxel_mm3).items():
        row[f"hippocampus_{k}"] = round(v, 4)
    return row
