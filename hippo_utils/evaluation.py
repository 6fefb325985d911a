"""Evaluation of a trained model on the test split: per slice and per subject in 3D.

Writes into ``[train] eval_dir``:

- ``evaluation.csv``: the original's two lines, ``categorical_crossentropy,x`` and
  ``dice_coef_multiclass,y``, so that results compare with the original system;
- ``evaluation_slices.csv``/``.json``: what matters, per foreground class, pooled over
  the test slices: Dice, IoU, precision and recall;
- ``evaluation_subjects.csv``/``.json``: per test subject, in 3D on the source volume:
  Dice, HD95 (mm) and volume difference per class and for the whole hippocampus, with
  mean and standard deviation rows;
- ``dice_per_subject.png`` and ``best_worst_slices.png``.

Conventions (see :mod:`hippo_utils.metrics`): an empty ground truth with an empty
prediction scores Dice 1 and HD95 0; when exactly one is empty, Dice is 0 and HD95
is undefined (NaN, left out of the mean).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hippo_utils.config import Config
from hippo_utils.fsutil import atomic_write_text

logger = logging.getLogger(__name__)


@dataclass
class EvaluationResult:
    eval_dir: Path
    original: dict[str, float]  # categorical_crossentropy, dice_coef_multiclass
    slices: list[dict]  # per class
    subjects: list[dict]  # per subject (3D); empty for 2D-only datasets
    per_slice_dice: list[tuple[str, float]]


def _slice_level(model, cfg: Config, progress: bool):
    from PIL import Image

    from hippo_utils.dataset import load_images, pair_files, split_dirs
    from hippo_utils.derive import mask_to_classes
    from hippo_utils.inference import predict_batches
    from hippo_utils.metrics import dice_score

    pairs = pair_files(*split_dirs(cfg, "test"))
    n_classes = cfg.model.num_classes
    ce_sum, dcm_sum, count = 0.0, 0.0, 0
    inter = np.zeros(n_classes)
    t_sum = np.zeros(n_classes)
    p_sum = np.zeros(n_classes)
    per_slice = []
    batch = cfg.infer.batch_size
    for start in range(0, len(pairs), batch):
        chunk = pairs[start:start + batch]
        probs = predict_batches(model, load_images([p[0] for p in chunk], cfg), batch, flip=cfg.infer.flip_tta)
        truths = np.stack([mask_to_classes(np.asarray(Image.open(p[1]).convert("RGB")), cfg.mask.rgb_map,
                                           str(p[1])) for p in chunk])
        onehot = np.eye(n_classes, dtype=np.float32)[truths]
        ce_sum += float(-(onehot * np.log(np.clip(probs, 1e-7, 1.0))).sum(-1).mean(axis=(1, 2)).sum())
        inter_s = (onehot * probs).sum(axis=(1, 2, 3))
        dcm_sum += float(((2 * inter_s + 1) / (onehot.sum(axis=(1, 2, 3)) + probs.sum(axis=(1, 2, 3)) + 1)).sum())
        count += len(chunk)
        preds = probs.argmax(-1)
        for c in range(1, n_classes):
            t, p = truths == c, preds == c
            inter[c] += np.logical_and(t, p).sum()
            t_sum[c] += t.sum()
            p_sum[c] += p.sum()
        for (img, _), t, p in zip(chunk, truths, preds, strict=True):
            per_slice.append((img.stem, dice_score(t > 0, p > 0)))
    rows = []
    for c in range(1, n_classes):
        union = t_sum[c] + p_sum[c] - inter[c]
        rows.append({"class": c,
                     "dice": float(2 * inter[c] / (t_sum[c] + p_sum[c])) if t_sum[c] + p_sum[c] else 1.0,
                     "iou": float(inter[c] / union) if union else 1.0,
                     "precision": float(inter[c] / p_sum[c]) if p_sum[c] else 1.0,
                     "recall": float(inter[c] / t_sum[c]) if t_sum[c] else 1.0,
                     "true_pixels": int(t_sum[c]), "predicted_pixels": int(p_sum[c])})
    original = {"categorical_crossentropy": ce_sum / count, "dice_coef_multiclass": dcm_sum / count}
    return original, rows, per_slice


def segment_against_truth(model, cfg: Config, source: str, label_source: str):
    """(volume, true classes, predicted classes) of one labelled subject, the prediction
    post-processed as inference does ([infer] keep_largest_components)."""
    from hippo_utils.derive import map_labels
    from hippo_utils.inference import keep_largest, segment_volume
    from hippo_utils.volumes import load_labels, load_volume

    volume = load_volume(source)
    truth = map_labels(load_labels(label_source, like=volume), cfg.derive.label_map, label_source)
    pred = keep_largest(segment_volume(model, cfg, volume), cfg.infer.keep_largest_components)
    return volume, truth, pred


def _subject_level(model, cfg: Config, progress: bool) -> list[dict]:
    from tqdm.auto import tqdm

    from hippo_utils.derive import read_manifest
    from hippo_utils.metrics import volume_metrics

    rows = read_manifest(cfg.derive.output_dir)
    subjects = {}
    for r in rows:
        if r["split"] == "test" and r["plane"] != "image":
            subjects.setdefault(r["subject"], (r["source"], r["label_source"]))
    table = []
    for name, (source, label_source) in tqdm(sorted(subjects.items()), desc="test subjects (3D)",
                                             unit="subject", disable=not progress):
        volume, truth, pred = segment_against_truth(model, cfg, source, label_source)
        row: dict = {"subject": name}
        classes = range(1, cfg.model.num_classes)
        for c in classes:
            if len(classes) > 1:
                for k, v in volume_metrics(truth == c, pred == c, volume.spacing).items():
                    row[f"class{c}_{k}"] = round(v, 4)
        for k, v in volume_metrics(truth > 0, pred > 0, volume.spacing).items():
            row[f"hippocampus_{k}"] = round(v, 4)
        table.append(row)
    return table


def evaluate(cfg: Config, model=None, model_dir: str | os.PathLike[str] | None = None,
             progress: bool = True) -> EvaluationResult:
    """Evaluate the model of ``model_dir`` (default ``[train] model_dir``) on the test split.

    Raises:
        FileNotFoundError: no trained model or no derived test split.
    """
    from hippo_utils import plots
    from hippo_utils.inference import write_table
    from hippo_utils.trainer import load_trained

    if model is None:
        model, _ = load_trained(model_dir or cfg.train.model_dir)
    eval_dir = cfg.train.eval_dir
    original, slices, per_slice = _slice_level(model, cfg, progress)
    atomic_write_text(eval_dir / "evaluation.csv", "".join(f"{k},{v:.4f}\n" for k, v in original.items()))
    write_table([{k: round(v, 4) if isinstance(v, float) else v for k, v in r.items()} for r in slices],
                eval_dir / "evaluation_slices.csv")
    subjects = _subject_level(model, cfg, progress)
    if subjects:
        write_table(subjects, eval_dir / "evaluation_subjects.csv", with_summary=True)
        plots.save_figure(plots.dice_per_subject(subjects), eval_dir / "dice_per_subject.png")
    plots.save_figure(best_worst_figure(model, cfg, per_slice), eval_dir / "best_worst_slices.png")
    return EvaluationResult(eval_dir, original, slices, subjects, per_slice)


def best_worst_figure(model, cfg: Config, per_slice: list[tuple[str, float]], n: int = 3):
    """The ``n`` worst and best test slices that contain hippocampus, as image, ground
    truth and the prediction coloured against it (TP/FP/FN), with each slice's Dice."""
    from PIL import Image

    from hippo_utils import plots
    from hippo_utils.dataset import load_images, split_dirs
    from hippo_utils.inference import predict_batches

    images_dir, masks_dir = split_dirs(cfg, "test")
    labelled = [(s, d) for s, d in per_slice
                if np.asarray(Image.open(masks_dir / f"{s}.png").convert("L")).any()]
    ranked = sorted(labelled, key=lambda sd: (sd[1], sd[0]))
    chosen = ranked[:n] + ranked[-n:] if len(ranked) > 2 * n else ranked
    images = load_images([images_dir / f"{s}.png" for s, _ in chosen], cfg)
    probs = predict_batches(model, images, cfg.infer.batch_size, flip=cfg.infer.flip_tta)
    preds = cfg.class_colours()[probs.argmax(-1)]
    fig = plots.Figure(figsize=(2.3 * len(chosen), 7))
    axes = fig.subplots(3, len(chosen), squeeze=False)
    for i, ((name, dice), img, pred) in enumerate(zip(chosen, images, preds, strict=True)):
        grey = img[..., 0].astype(np.uint8)
        truth = np.asarray(Image.open(masks_dir / f"{name}.png").convert("RGB"))
        window = plots.zoom_box([truth, pred], grey.shape)
        for row, shown in enumerate((np.repeat(grey[..., None], 3, 2), plots.overlay(grey, truth),
                                     plots.agreement(grey, truth, pred))):
            axes[row, i].imshow(shown[window], interpolation="nearest")
            axes[row, i].set_xticks([])
            axes[row, i].set_yticks([])
        area = int(np.count_nonzero(truth.any(axis=-1)))
        axes[0, i].set_title(f"{'worst' if i < len(chosen) // 2 else 'best'}: {name}\nDice {dice:.2f} · "
                             f"{area} px of truth", fontsize=8)
    for row, label in enumerate(("image", "ground truth", "prediction")):
        axes[row, 0].set_ylabel(label, fontsize=9)
    for ax in axes.ravel():
        plots.letter_axes(ax, cfg.derive.plane, fontsize=8)
    fig.suptitle("test slices with hippocampus, zoomed on it; px: its size in the slice", fontsize=10)
    plots.agreement_legend(fig)
    return fig


# ------------------------------------------------------------------------- volumetry
ASYMMETRY_THRESHOLD = 0.1  # |AI| above this is read as one-sided atrophy (notebook 05 explains)


def asymmetry_index(left: float, right: float) -> float:
    """AI = (L - R) / ((L + R) / 2): positive when the right hippocampus is the smaller."""
    return (left - right) / ((left + right) / 2) if left + right else float("nan")


def flagged_side(ai: float, threshold: float = ASYMMETRY_THRESHOLD) -> str:
    """The side read as shrunken ("left" or "right"), or "" when |AI| is within the threshold."""
    if not np.isfinite(ai) or abs(ai) <= threshold:
        return ""
    return "right" if ai > 0 else "left"


def read_synthetic_truth(source_dir: str | os.PathLike[str]) -> dict[str, dict[str, str]]:
    """The generator's ``synthetic_subjects.csv`` of a synthetic data set, by subject; empty
    for other data."""
    import csv

    path = Path(source_dir) / "synthetic_subjects.csv"
    if not path.is_file():
        return {}
    with path.open(newline="") as fh:
        return {row["subject"]: row for row in csv.DictReader(fh)}


def volumetry_against_truth(measured: dict[str, dict[str, float]], truth: dict[str, dict],
                            threshold: float = ASYMMETRY_THRESHOLD) -> list[dict]:
    """Measured left/right volumes beside the true ones, per subject: the relative volume
    errors, the true and measured asymmetry index and the side each flags.

    Args:
        measured: subject -> a volumetry row (``left_mm3``, ``right_mm3``), as
            :func:`hippo_utils.inference.volumetry` returns.
        truth: subject -> ``left_mm3``, ``right_mm3`` (numbers or strings), e.g. from
            :func:`read_synthetic_truth`. Subjects without a truth are left out.
    """
    rows = []
    for subject, v in measured.items():
        t = truth.get(subject)
        if not t:
            continue
        left, right = float(v["left_mm3"]), float(v["right_mm3"])
        true_left, true_right = float(t["left_mm3"]), float(t["right_mm3"])
        ai, true_ai = asymmetry_index(left, right), asymmetry_index(true_left, true_right)
        rows.append({
            "subject": subject, "left_mm3": round(left, 1), "true_left": round(true_left, 1),
            "left_err_%": round(100 * (left / true_left - 1), 1), "right_mm3": round(right, 1),
            "true_right": round(true_right, 1), "right_err_%": round(100 * (right / true_right - 1), 1),
            "AI": round(ai, 3), "true_AI": round(true_ai, 3), "AI_err": round(ai - true_ai, 3),
            "flag": flagged_side(ai, threshold) or "-", "true_flag": flagged_side(true_ai, threshold) or "-",
            "atrophy_made": t.get("atrophy_side") or "-",
        })
    return rows
