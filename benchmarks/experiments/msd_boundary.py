"""Where the MSD anterior/posterior Dice is lost: the boundary between the two labels.

    HIPPO_REAL_DATA=../shared/data python -m benchmarks.experiments.msd_boundary runs/msd_bench_25d/test_predictions

In the MSD Task04 labels, anterior (1) and posterior (2) meet at a plane across array
axis 1: almost no axis-1 slice holds both. So a prediction's class Dice depends on two
things: the whole-hippocampus mask, and the slice where it places that boundary. For
each subject in a predictions folder (``NAME_labels.nii.gz``, as written by
``infer-volume`` and ``accuracy_msd.py``), this prints how far the predicted boundary is
from the true one, and the class Dice the same whole mask would get if split at the true
boundary (an upper bound for a better boundary alone).

    HIPPO_REAL_DATA=../shared/data python -m benchmarks.experiments.msd_boundary --shape-rule

asks instead whether the boundary follows from the hippocampus's shape: over the training and
validation subjects of the MSD derivation, a linear fit of the true boundary slice on the true
mask's first and last axis-1 slice, its centroid and its widest slice, scored leave-one-out.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import nibabel as nib
import numpy as np

from benchmarks.common import ROOT
from hippo_utils.model.metrics import dice_score


def first_anterior_slice(labels: np.ndarray) -> int | None:
    """The first axis-1 index whose slice holds more anterior than posterior voxels."""
    ant, post = (labels == 1).sum((0, 2)), (labels == 2).sum((0, 2))
    idx = np.flatnonzero(ant > post)
    return int(idx[0]) if len(idx) else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("predictions", type=Path, nargs="?", help="folder of NAME_labels.nii.gz")
    parser.add_argument(
        "--shape-rule",
        action="store_true",
        help="how well the masks' shape alone places the boundary (no predictions needed)",
    )
    parser.add_argument(
        "--labels", type=Path, help="ground truth folder (default: $HIPPO_REAL_DATA/msd-task04-hippocampus/labels)"
    )
    args = parser.parse_args()
    labels_dir = args.labels or Path(os.environ.get("HIPPO_REAL_DATA", "")) / "msd-task04-hippocampus" / "labels"
    if args.shape_rule:
        shape_rule(labels_dir)
        return
    if args.predictions is None:
        parser.error("give a predictions folder, or --shape-rule")
    preds = sorted(args.predictions.glob("*_labels.nii.gz"))
    if not preds:
        raise SystemExit(f"{args.predictions}: no *_labels.nii.gz predictions")
    mixed = fg_slices = 0
    offsets, as_is, oracle = [], [], []
    for path in preds:
        truth_path = labels_dir / path.name.replace("_labels.nii.gz", ".nii.gz")
        if not truth_path.exists():
            raise SystemExit(f"{truth_path}: no ground truth for {path.name}")
        pred = np.asarray(nib.load(str(path)).dataobj)
        truth = np.asarray(nib.load(str(truth_path)).dataobj)
        ant, post = (truth == 1).sum((0, 2)), (truth == 2).sum((0, 2))
        mixed += int(((ant > 0) & (post > 0)).sum())
        fg_slices += int(((ant + post) > 0).sum())
        k_true, k_pred = first_anterior_slice(truth), first_anterior_slice(pred)
        if k_true is None or k_pred is None:
            continue
        offsets.append(k_pred - k_true)
        # posterior lies at the lower axis-1 indices in these crops
        posterior_side = np.arange(pred.shape[1])[None, :, None] < k_true
        split = np.where(pred > 0, np.where(posterior_side, 2, 1), 0)
        as_is.append([dice_score(truth == c, pred == c) for c in (1, 2)])
        oracle.append([dice_score(truth == c, split == c) for c in (1, 2)])
    off, as_is, oracle = np.array(offsets), np.array(as_is), np.array(oracle)
    print(f"{len(preds)} subjects; axis-1 slices holding both labels in the truth: {mixed} of {fg_slices}")
    counts = {int(k): int(n) for k, n in zip(*np.unique(off, return_counts=True), strict=True)}
    print(
        f"predicted boundary - true boundary (slices): {counts}; "
        f"exact in {np.mean(off == 0):.0%}, mean |offset| {np.abs(off).mean():.2f}"
    )
    print(
        f"class Dice as predicted:           anterior {as_is[:, 0].mean():.4f}, posterior {as_is[:, 1].mean():.4f}, "
        f"mean {as_is.mean():.4f}"
    )
    print(
        f"same masks split at the true slice: anterior {oracle[:, 0].mean():.4f}, "
        f"posterior {oracle[:, 1].mean():.4f}, mean {oracle.mean():.4f}"
    )


def shape_rule(labels_dir: Path) -> None:
    """Leave-one-out error of a linear rule that places the boundary from the mask's shape."""
    import json

    from hippo_utils.core.config import load_config

    cfg = load_config(ROOT / "configs" / "msd_task04.config")
    listing = json.loads((Path(cfg.derive.output_dir) / "dataset.json").read_text())["subjects"]
    features, targets = [], []
    for name in listing["train"] + listing["valid"]:
        truth = np.asarray(nib.load(str(labels_dir / f"{name}.nii.gz")).dataobj).astype(int)
        area = (truth > 0).sum((0, 2)).astype(float)
        on = np.flatnonzero(area)
        centroid = (area * np.arange(len(area))).sum() / area.sum()
        features.append([1.0, on[0], on[-1], centroid, float(np.argmax(area))])
        targets.append(first_anterior_slice(truth))
    x, y = np.asarray(features), np.asarray(targets, float)
    for columns, what in (([0, 1, 2], "first and last slice"), ([0, 1, 2, 3, 4], "+ centroid and widest slice")):
        errors = []
        for i in range(len(y)):
            keep = np.arange(len(y)) != i
            w, *_ = np.linalg.lstsq(x[keep][:, columns], y[keep], rcond=None)
            errors.append(x[i, columns] @ w - y[i])
        errors = np.abs(np.asarray(errors))
        print(
            f"{len(y)} subjects, boundary from the mask's {what}: mean |error| {errors.mean():.2f} slices, "
            f"within half a slice in {np.mean(errors < 0.5):.0%}"
        )


if __name__ == "__main__":
    main()
