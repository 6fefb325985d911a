"""Accuracy on real data: MSD Task04 hippocampus (T1w crops; 1 = anterior, 2 = posterior).

    HIPPO_REAL_DATA=../shared/data python benchmarks/accuracy_msd.py [--set train.epochs=25] [--out runs/msd_bench]
    HIPPO_REAL_DATA=../shared/data python benchmarks/accuracy_msd.py --score-only --set infer.flip_tta=True
    HIPPO_REAL_DATA=../shared/data python benchmarks/accuracy_msd.py --score-only --split valid \
        --set infer.KEY=VALUE   # tune on the validation subjects
    HIPPO_REAL_DATA=../shared/data python benchmarks/accuracy_msd.py --planes axis0,axis1,axis2 \
        --set train.epochs=16 --set axis2:augment.hflip=False --set axis2:infer.flip_tta=False

Derives the 2D dataset from $HIPPO_REAL_DATA/msd-task04-hippocampus with
configs/msd_task04.config, trains the FlexUNet (timed), then segments every held-out
test subject's whole volume and prints the subject-level 3D Dice per class and overall,
each with a 95% bootstrap interval over subjects, and draws the worst subjects'
slices of largest error, with what went wrong (OUT/SPLIT_predictions/worst_subjects.png).
With --planes, one model is trained per slicing plane (each with its own derived
dataset, in OUT/PLANE/) and their class probabilities are fused on each volume's grid;
the training time reported is the sum. ``--set PLANE:section.key=value`` applies to one
plane only (axis2 slices have the anterior-posterior axis as columns, so mirroring them
would swap the two labels' places).
Anchors: nnU-Net about 0.90 (anterior) and 0.89 (posterior); the HFH paper's classical
methods 0.64-0.75.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from hippo_utils import load_config  # noqa: E402

from common import ROOT, bootstrap_ci  # noqa: E402  (benchmarks/ is sys.path[0]: this runs as a file)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(ROOT / "configs" / "msd_task04.config"))
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE")
    parser.add_argument("--out", default=str(ROOT / "runs" / "msd_bench"), help="run folder")
    parser.add_argument(
        "--score-only",
        action="store_true",
        help="do not train: score the model already in OUT/models (e.g. with --set infer.*)",
    )
    parser.add_argument("--planes", help="comma-separated planes (e.g. axis0,axis1,axis2): one model each, fused")
    parser.add_argument(
        "--split",
        default="test",
        choices=("test", "valid"),
        help="whose volumes to score: the held-out test subjects, or the validation ones (for tuning)",
    )
    parser.add_argument("--predictions", help="folder for the predictions (default OUT/SPLIT_predictions)")
    parser.add_argument("--worst", type=int, default=5, help="figure of the N worst subjects (0: none)")
    args = parser.parse_args()
    real = os.environ.get("HIPPO_REAL_DATA")
    if not real:
        raise SystemExit("set HIPPO_REAL_DATA to the folder holding msd-task04-hippocampus/")
    out = Path(args.out).resolve()
    common = [s for s in args.set if ":" not in s.split("=", 1)[0]]

    from hippo_utils.data.derive import derive_dataset
    from hippo_utils.inference.segment import infer_volumes
    from hippo_utils.training.trainer import train

    planes = args.planes.split(",") if args.planes else [None]
    base_dir = load_config(args.config, common).derive.output_dir
    model_dirs, done, t_derive, t_train = [], [], 0.0, 0.0
    for plane in planes:
        run = out / plane if plane else out
        only = [s.split(":", 1)[1] for s in args.set if plane and s.startswith(f"{plane}:")]
        overrides = [
            f"train.model_dir={run / 'models'}",
            f"train.eval_dir={run / 'eval'}",
            f"train.epoch_change_infer_dir={run / 'previews'}",
            *common,
            *([f"derive.plane={plane}", f"derive.output_dir={base_dir}_{plane}"] if plane else []),
            *only,
        ]
        cfg = load_config(args.config, overrides)
        t = time.perf_counter()
        derived = derive_dataset(cfg, progress=False)
        t_derive += time.perf_counter() - t
        t = time.perf_counter()
        if args.score_only:
            state = json.loads((cfg.train.model_dir / "state.json").read_text())
            epochs_done, best = state["epoch"], state["best"]
        else:
            result = train(cfg, progress=False)
            epochs_done, best = result.epochs_done, result.best
        t_train += time.perf_counter() - t
        model_dirs.append(cfg.train.model_dir)
        done.append(f"{plane or cfg.derive.plane}: epochs {epochs_done}, best val_dice_fg {best:.4f}")
    held_out = json.loads((derived.output_dir / "dataset.json").read_text())["subjects"][args.split]
    src = Path(real) / "msd-task04-hippocampus"
    predictions = Path(args.predictions) if args.predictions else out / f"{args.split}_predictions"
    t = time.perf_counter()
    infer_sets = [s for s in common if s.startswith("infer.")]
    infer_volumes(
        model_dirs,
        [src / "images" / f"{n}.nii.gz" for n in held_out],
        predictions,
        labels_dir=src / "labels",
        progress=False,
        overrides=infer_sets,
    )
    t_infer = time.perf_counter() - t
    wanted = {str((src / "images" / f"{n}.nii.gz").resolve()) for n in held_out}
    rows = [r for r in csv.DictReader((predictions / "metrics.csv").open()) if r["input"] in wanted]

    def column(col):
        return np.array([float(r[col]) for r in rows])

    def stat(col):
        v = column(col)
        lo, hi = bootstrap_ci(v)
        return f"{np.nanmean(v):.4f} [{lo:.4f}, {hi:.4f}] (sd {np.nanstd(v):.4f})"

    a, p = column("label1_dice"), column("label2_dice")
    lo, hi = bootstrap_ci((a + p) / 2)
    print(
        f"MSD Task04, {len(rows)} held-out {args.split} subjects (3D, on the source grid), {os.cpu_count()} CPU "
        "cores; mean [95% bootstrap interval over subjects]"
    )
    print(f"  settings: {' '.join(args.set) or '(config as is)'}")
    print(f"  anterior (1) Dice  {stat('label1_dice')}   HD95 {np.nanmean(column('label1_hd95_mm')):.2f} mm")
    print(f"  posterior (2) Dice {stat('label2_dice')}   HD95 {np.nanmean(column('label2_hd95_mm')):.2f} mm")
    print(f"  mean of the two    {np.mean((a + p) / 2):.4f} [{lo:.4f}, {hi:.4f}]")
    print(f"  whole hippocampus  {stat('hippocampus_dice')}")
    if args.worst:
        figure = worst_subjects(rows, predictions, src / "labels", args.worst)
        print(f"  the {args.worst} worst subjects: {figure}")
    print(
        f"  {'; '.join(done)}; derive {t_derive:.0f} s, "
        f"train {t_train / 60:.1f} min{' (not trained: --score-only)' if args.score_only else ''}, "
        f"infer {t_infer:.0f} s"
    )


def diagnose(truth: np.ndarray, pred: np.ndarray, axis: int = 1) -> str:
    """What went wrong, in words, from where the wrong voxels lie: labels swapped inside the
    hippocampus (the anterior/posterior boundary placed wrong, on how many slices), truth
    missed at an end of the slicing axis (a head or tail), prediction past the truth's ends
    (a leak, e.g. into the amygdala in front), or the rest: the surface, a voxel in or out."""
    others = tuple(a for a in range(3) if a != axis)
    swapped = (truth > 0) & (pred > 0) & (truth != pred)
    missed, extra = (truth > 0) & (pred == 0), (pred > 0) & (truth == 0)
    along = np.arange(truth.shape[axis]).reshape([-1 if a == axis else 1 for a in range(3)])
    t_idx = np.nonzero((truth > 0).any(axis=others))[0]
    p_idx = np.nonzero((pred > 0).any(axis=others))[0]
    ends_missed = int((missed & ((along < p_idx.min()) | (along > p_idx.max()))).sum()) if len(p_idx) else 0
    ends_leak = int((extra & ((along < t_idx.min()) | (along > t_idx.max()))).sum()) if len(t_idx) else 0
    parts = {
        f"boundary: labels swapped on {int(swapped.any(axis=others).sum())} slices": int(swapped.sum()),
        "missed at the ends": ends_missed,
        "leak past the ends": ends_leak,
        "surface (a voxel in or out)": int(missed.sum() + extra.sum()) - ends_missed - ends_leak,
    }
    total = sum(parts.values()) or 1
    return "; ".join(f"{name} {100 * v / total:.0f}%" for name, v in sorted(parts.items(), key=lambda kv: -kv[1]) if v)


def worst_subjects(rows: list[dict], predictions: Path, labels_dir: Path, n: int) -> Path:
    """One row per worst subject (by the mean of the two Dice): the slice (across axis 1, the
    slicing axis) with the most wrong voxels, as image, truth and prediction, with what went wrong."""
    from hippo_utils.data.preprocess import normalize_intensity
    from hippo_utils.data.volumes import load_labels, load_volume
    from hippo_utils.display import figures, pictures

    worst = sorted(rows, key=lambda r: (float(r["label1_dice"]) + float(r["label2_dice"])) / 2)[:n]
    fig = figures.Figure(figsize=(8.5, 2.7 * len(worst)))
    axes = fig.subplots(len(worst), 3, squeeze=False)
    fig.subplots_adjust(top=0.95, bottom=0.03, hspace=0.45, wspace=0.05)
    colours = np.array([[0, 0, 0], [255, 32, 32], [255, 210, 31]], np.uint8)
    for row_axes, r in zip(axes, worst, strict=True):
        volume = load_volume(r["input"])
        truth = load_labels(labels_dir / Path(r["input"]).name, like=volume)
        pred = load_labels(predictions / f"{r['subject']}_labels.nii.gz", like=volume)
        k = int(np.argmax((truth != pred).sum(axis=(0, 2))))
        grey = (normalize_intensity(volume)[:, k, :] * 255).astype(np.uint8).T[::-1]
        for ax, (what, lab) in zip(row_axes, (("image", None), ("truth", truth), ("prediction", pred)), strict=True):
            shown = np.repeat(grey[..., None], 3, axis=2)
            if lab is not None:
                sl = lab[:, k, :].T[::-1]
                shown = pictures.overlay(grey, colours[np.minimum(sl, 2)], alpha=0.5)
            ax.imshow(shown, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(what if what != "image" else f"{r['subject']}, slice {k} of axis 1", fontsize=8)
        row_axes[1].set_xlabel(
            f"Dice anterior {float(r['label1_dice']):.3f}, posterior "
            f"{float(r['label2_dice']):.3f}. Wrong voxels: {diagnose(truth, pred)}",
            fontsize=7,
        )
    fig.suptitle(
        "worst subjects: the slice across axis 1 with the most wrong voxels (red anterior, yellow posterior)",
        fontsize=9,
    )
    path = predictions / "worst_subjects.png"
    figures.save_figure(fig, path)
    return path


if __name__ == "__main__":
    main()
