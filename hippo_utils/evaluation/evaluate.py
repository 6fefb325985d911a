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

Conventions (see :mod:`hippo_utils.model.metrics`): an empty ground truth with an empty
prediction scores Dice 1 and HD95 0; when exactly one is empty, Dice is 0 and HD95
is undefined (NaN, left out of the mean).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hippo_utils.core.config import Config
from hippo_utils.core.locks import folder_lock
from hippo_utils.core.ownership import claim
from hippo_utils.core.png import read_grey, read_rgb
from hippo_utils.core.tables import write_key_values, write_table
from hippo_utils.data.components import keep_largest
from hippo_utils.data.dataset import load_images, load_masks, split_dirs, split_pairs
from hippo_utils.data.derive import split_volumes
from hippo_utils.data.labels import Labels
from hippo_utils.data.volumes import load_labels, load_volume
from hippo_utils.display import figures, pictures
from hippo_utils.inference.predict import predict_batches, segment_volume
from hippo_utils.model import metrics
from hippo_utils.model.folder import check_same_dataset, load_model_dir

logger = logging.getLogger(__name__)


@dataclass
class EvaluationResult:
    eval_dir: Path
    original: dict[str, float]  # categorical_crossentropy, dice_coef_multiclass
    slices: list[dict]  # per class
    subjects: list[dict]  # per subject (3D); empty for 2D-only datasets
    per_slice_dice: list[tuple[str, float]]


def _slice_level(model, cfg: Config) -> tuple[dict[str, float], list[dict], list[tuple[str, float]]]:
    """The test slices: the original's two numbers, the pooled per-class scores and each
    slice's foreground Dice, all through :mod:`hippo_utils.model.metrics`."""
    pairs = split_pairs(cfg, "test")
    n_classes = cfg.model.num_classes
    ce_sum, dcm_sum = 0.0, 0.0
    counts = np.zeros((n_classes, 3), np.int64)
    per_slice = []
    batch = cfg.infer.batch_size
    for start in range(0, len(pairs), batch):
        chunk = pairs[start : start + batch]
        probs = predict_batches(model, load_images([p[0] for p in chunk], cfg), batch, flip=cfg.infer.flip_tta)
        truths = load_masks([p[1] for p in chunk], cfg)
        onehot = metrics.one_hot(truths, n_classes)
        ce_sum += float(metrics.categorical_crossentropy_np(onehot, probs).sum())
        dcm_sum += float(metrics.dice_coef_multiclass_per_sample(onehot, probs).sum())
        preds = probs.argmax(-1)
        counts += metrics.confusion_counts(truths, preds, n_classes)
        per_slice += [
            (img.stem, metrics.dice_score(t > 0, p > 0)) for (img, _), t, p in zip(chunk, truths, preds, strict=True)
        ]
    rows = [
        {
            "class": c,
            **metrics.scores_from_counts(*counts[c]),
            "true_pixels": int(counts[c, 0] + counts[c, 2]),
            "predicted_pixels": int(counts[c, 0] + counts[c, 1]),
        }
        for c in range(1, n_classes)
    ]
    original = {"categorical_crossentropy": ce_sum / len(pairs), "dice_coef_multiclass": dcm_sum / len(pairs)}
    return original, rows, per_slice


def segment_against_truth(model, cfg: Config, source: str, label_source: str):
    """(volume, true classes, predicted classes) of one labelled subject, the prediction
    post-processed as inference does ([infer] keep_largest_components)."""
    volume = load_volume(source)
    truth = Labels.from_config(cfg).to_classes(load_labels(label_source, like=volume), label_source)
    pred = keep_largest(segment_volume(model, cfg, volume), cfg.infer.keep_largest_components)
    return volume, truth, pred


def _subject_level(model, cfg: Config, progress: bool) -> list[dict]:
    from tqdm.auto import tqdm

    table = []
    subjects = split_volumes(cfg.derive.output_dir, "test")
    for name, (source, label_source) in tqdm(
        sorted(subjects.items()), desc="test subjects (3D)", unit="subject", disable=not progress
    ):
        volume, truth, pred = segment_against_truth(model, cfg, source, label_source)
        classes = list(range(1, cfg.model.num_classes))
        table.append(
            {
                "subject": name,
                **metrics.labelled_volume_metrics(
                    truth, pred, volume.spacing, classes if len(classes) > 1 else [], "class", volume.voxel_mm3
                ),
            }
        )
    return table


def evaluate(
    cfg: Config, model=None, model_dir: str | os.PathLike[str] | None = None, progress: bool = True
) -> EvaluationResult:
    """Evaluate the model of ``model_dir`` (default ``[train] model_dir``) on the test split.

    The results go to ``[train] eval_dir``, which is locked meanwhile and must be this model
    folder's (training claims it): another model's evaluation would overwrite its files.

    Raises:
        FileNotFoundError: no trained model or no derived test split.
        FileExistsError: ``eval_dir`` belongs to another model folder, or another process
            is writing it.
    """
    model_dir = Path(model_dir or cfg.train.model_dir)
    if model is None:
        model, _ = load_model_dir(model_dir)
    check_same_dataset(model_dir, cfg, "evaluate")  # else its test set may be seen
    eval_dir = cfg.train.eval_dir
    with folder_lock(eval_dir, "evaluate"):
        claim(eval_dir, {"model_dir": str(model_dir.resolve())}, "[train] eval_dir")
        return _evaluate(model, cfg, eval_dir, progress)


def _evaluate(model, cfg: Config, eval_dir: Path, progress: bool) -> EvaluationResult:
    """The body of :func:`evaluate`, run while it holds the evaluation folder's lock."""
    original, slices, per_slice = _slice_level(model, cfg)
    write_key_values(eval_dir / "evaluation.csv", original)
    write_table(
        [{k: round(v, 4) if isinstance(v, float) else v for k, v in r.items()} for r in slices],
        eval_dir / "evaluation_slices.csv",
    )
    subjects = _subject_level(model, cfg, progress)
    if subjects:
        write_table(subjects, eval_dir / "evaluation_subjects.csv", with_summary=True)
        figures.save_figure(figures.dice_per_subject(subjects), eval_dir / "dice_per_subject.png")
    figures.save_figure(best_worst_figure(model, cfg, per_slice), eval_dir / "best_worst_slices.png")
    return EvaluationResult(eval_dir, original, slices, subjects, per_slice)


def best_worst_figure(model, cfg: Config, per_slice: list[tuple[str, float]], n: int = 3):
    """The ``n`` worst and best test slices that contain hippocampus, as image, ground
    truth and the prediction coloured against it (TP/FP/FN), with each slice's Dice."""
    images_dir, masks_dir = split_dirs(cfg, "test")
    labelled = [(s, d) for s, d in per_slice if read_grey(masks_dir / f"{s}.png").any()]
    ranked = sorted(labelled, key=lambda sd: (sd[1], sd[0]))
    chosen = ranked[:n] + ranked[-n:] if len(ranked) > 2 * n else ranked
    images = load_images([images_dir / f"{s}.png" for s, _ in chosen], cfg)
    probs = predict_batches(model, images, cfg.infer.batch_size, flip=cfg.infer.flip_tta)
    preds = Labels.from_config(cfg).colours[probs.argmax(-1)]
    fig = figures.Figure(figsize=(2.3 * len(chosen), 7))
    axes = fig.subplots(3, len(chosen), squeeze=False)
    for i, ((name, dice), img, pred) in enumerate(zip(chosen, images, preds, strict=True)):
        grey = img[..., 0].astype(np.uint8)
        truth = read_rgb(masks_dir / f"{name}.png")
        window = pictures.zoom_box([truth, pred], grey.shape)
        for row, shown in enumerate(
            (np.repeat(grey[..., None], 3, 2), pictures.overlay(grey, truth), pictures.agreement(grey, truth, pred))
        ):
            axes[row, i].imshow(shown[window], interpolation="nearest")
            axes[row, i].set_xticks([])
            axes[row, i].set_yticks([])
        area = int(np.count_nonzero(truth.any(axis=-1)))
        axes[0, i].set_title(
            f"{'worst' if i < len(chosen) // 2 else 'best'}: {name}\nDice {dice:.2f} · {area} px of truth", fontsize=8
        )
    for row, label in enumerate(("image", "ground truth", "prediction")):
        axes[row, 0].set_ylabel(label, fontsize=9)
    for ax in axes.ravel():
        figures.letter_axes(ax, cfg.derive.plane, fontsize=8)
    fig.suptitle("test slices with hippocampus, zoomed on it; px: its size in the slice", fontsize=10)
    figures.agreement_legend(fig)
    return fig
