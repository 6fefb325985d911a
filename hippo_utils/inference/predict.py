"""Prediction: class probabilities of a model (or an :class:`Ensemble`) for a batch of model
images, and for every slice of a volume back on the volume's own grid, with the
volume-level step that works on probabilities: smoothing across slices ([infer]
slice_smoothing).

A volume goes through the very geometry of derivation (:mod:`hippo_utils.data.preprocess`):
orient, normalise, resample and pad each slice to the model size, predict in batches,
then resize each class probability back (bilinear) and take the argmax on the source grid.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hippo_utils.core.config import Config
from hippo_utils.data.derive import crop_box
from hippo_utils.data.preprocess import (
    SliceGeometry,
    classes_from_probs,
    model_batch,
    model_slices,
    normalize_intensity,
    slice_geometry,
)
from hippo_utils.data.volumes import Volume


def predict_batches(
    model, inputs: np.ndarray, batch_size: int, progress: bool = False, desc: str = "predicting", flip: bool = False
) -> np.ndarray:
    """Class probabilities for (N, H, W, C) inputs, in batches.

    Uses the model's compiled ``predict_on_batch`` (faster than an eager call on CPU). The
    last, smaller batch is not padded: its shape, the same for volumes of one size, is
    traced only once (benchmarks/speed.py measures both).
    With ``flip`` ([infer] flip_tta), each batch is also predicted mirrored (columns
    reversed) and the two probability maps are averaged. Any callable taking a batch
    also works (tests use one).
    """
    from tqdm.auto import tqdm

    run = getattr(model, "predict_on_batch", None) or (lambda b: model(b, training=False))
    out = []
    for start in tqdm(range(0, len(inputs), batch_size), desc=desc, unit="batch", disable=not progress):
        batch = inputs[start : start + batch_size]
        probs = np.asarray(run(batch))
        if flip:
            probs = (probs + np.asarray(run(np.ascontiguousarray(batch[:, :, ::-1])))[:, :, ::-1]) / 2
        out.append(probs)
    return np.concatenate(out) if out else np.zeros((0,), np.float32)


@dataclass(frozen=True)
class Ensemble:
    """Trained models whose class probabilities are averaged on each volume's own grid.

    For example one model per slicing plane ([derive] plane), or per seed. Each member
    slices, sizes, normalises and flips ([infer] flip_tta) as its own config says; the
    first member's config decides the rest (labels, [infer] post-processing). Pass an
    Ensemble as the model of :func:`segment_volume` and of volume inference
    (``infer_volume``, ``infer_volumes``), with ``cfg`` = ``ensemble.cfg``; folder inference
    and evaluation take single models.

    Raises:
        ValueError: no members, or members that disagree on the classes.
    """

    members: tuple[tuple[object, Config], ...]
    names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.members:
            raise ValueError("an ensemble needs at least one model")
        first = self.members[0][1]
        for i, (_, cfg) in enumerate(self.members[1:], 1):
            name = self.names[i] if i < len(self.names) else f"member {i}"
            for what, a, b in (
                ("[model] num_classes", first.model.num_classes, cfg.model.num_classes),
                ("[derive] label_map", first.derive.label_map, cfg.derive.label_map),
                ("[mask] rgb_map", first.mask.rgb_map, cfg.mask.rgb_map),
            ):
                if a != b:
                    raise ValueError(
                        f"{name}: its {what} {b!r} differs from the first model's {a!r}; "
                        "only models that predict the same classes can be fused"
                    )

    @property
    def cfg(self) -> Config:
        return self.members[0][1]

    def probabilities(self, volume: Volume, batch_size: int | None = None, progress: bool = False) -> np.ndarray:
        """Mean class probabilities (X, Y, Z, C) of the members on ``volume``'s grid."""
        total = None
        for model, cfg in self.members:
            probs = volume_probabilities(model, cfg, volume, batch_size, progress)
            total = probs if total is None else np.add(total, probs, out=total)
        return total / len(self.members)


@dataclass
class PreparedVolume:
    """A volume made ready for one model: its slice geometry and the model's input batch."""

    volume: Volume
    geom: SliceGeometry
    inputs: np.ndarray  # float32 (N, H, W, C), 0..255
    normalised: np.ndarray  # the volume scaled to 0..1 ([derive] intensity_percentiles), its own axes


def prepare_volume(cfg: Config, volume: Volume) -> PreparedVolume:
    """Orient and normalise ``volume``'s slices along ``cfg``'s plane and build the model input."""
    d = cfg.derive
    normalised = normalize_intensity(volume, d.intensity_percentiles)
    geom = slice_geometry(volume, d.plane, cfg.image_size, crop_mm=crop_box(cfg), normalised=normalised)
    inputs = model_batch(
        model_slices(geom.orient(normalised), geom, d.context_slices, d.context_step), cfg.model.image_channels
    )
    return PreparedVolume(volume, geom, inputs, normalised)


def slice_probabilities(
    model, cfg: Config, prepared: PreparedVolume, batch_size: int | None = None, progress: bool = False
) -> np.ndarray:
    """Model-size class probabilities (N, H, W, C) of each prepared slice ([infer] flip_tta and
    slice_smoothing applied)."""
    volume = prepared.volume
    probs = predict_batches(
        model,
        prepared.inputs,
        batch_size or cfg.infer.batch_size,
        progress,
        desc=volume.path.name if volume.path else "volume",
        flip=cfg.infer.flip_tta,
    )
    return smooth_across_slices(probs) if cfg.infer.slice_smoothing else probs


def classes_on_grid(geom: SliceGeometry, probs: np.ndarray) -> np.ndarray:
    """Model-size probabilities of every slice -> class indices (uint8) on the volume's grid."""
    return geom.unorient(np.stack([classes_from_probs(geom, p) for p in probs]))


def grid_prediction(
    geom: SliceGeometry, probs: np.ndarray, near_foreground: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Model-size probabilities of every slice -> class indices (uint8) and class
    probabilities (X, Y, Z, C, float32), both on the volume's grid (the probabilities as a
    view of the slices in display orientation, not copied once more into the grid's order).

    With ``near_foreground``, only the slices within one slice of one where a class other
    than the background wins at some model pixel are resized back; the others are left as
    certain background. That changes nothing for the argmax (:func:`classes_from_probs`'
    shortcut), nor for what reads one voxel around the predicted labels (partial-volume
    volumetry), and skips most of a head.
    """
    wanted = np.ones(len(probs), bool)
    if near_foreground:
        found = probs.argmax(-1).any(axis=(1, 2))
        wanted = found.copy()
        wanted[1:] |= found[:-1]
        wanted[:-1] |= found[1:]
    # channels first, so that the skipped slices' certain background is one contiguous write
    stack = np.zeros((probs.shape[-1], len(probs), *geom.in_shape), np.float32)
    stack[0, ~wanted] = 1
    classes = np.zeros(stack.shape[1:], np.uint8)
    for i in np.flatnonzero(wanted):
        back = geom.from_model(probs[i])
        stack[:, i] = np.moveaxis(back, -1, 0)
        classes[i] = back.argmax(-1)
    return geom.unorient(classes), geom.unorient(np.moveaxis(stack, 0, -1), copy=False)


def smooth_across_slices(probs: np.ndarray) -> np.ndarray:
    """Average each slice's class probabilities with its two neighbours' ([infer] slice_smoothing).

    ``probs`` is (N, H, W, C), the slices in order along the slicing axis, all on the same
    model-size grid, so this is a [1/4, 1/2, 1/4] filter along that axis; it commutes with
    the (linear) resize back to the source grid. The first and last slices stand in for
    their missing neighbour. A 2D model sees each slice alone (or with one neighbour each
    side, with context_slices): this makes an isolated uncertain slice follow its
    neighbours (what it gains on MSD: benchmarks/RESULTS.md).
    """
    if len(probs) < 2:
        return probs
    padded = np.concatenate([probs[:1], probs, probs[-1:]])
    return 0.25 * padded[:-2] + 0.5 * padded[1:-1] + 0.25 * padded[2:]


def volume_probabilities(
    model, cfg: Config, volume: Volume, batch_size: int | None = None, progress: bool = False
) -> np.ndarray:
    """Class probabilities (X, Y, Z, C), float32, on ``volume``'s own grid and axis order."""
    prepared = prepare_volume(cfg, volume)
    probs = grid_prediction(prepared.geom, slice_probabilities(model, cfg, prepared, batch_size, progress))[1]
    return np.ascontiguousarray(probs)


def segment_volume(
    model, cfg: Config, volume: Volume, batch_size: int | None = None, progress: bool = False
) -> np.ndarray:
    """Predicted class indices (uint8) on ``volume``'s own grid and axis order.

    ``model`` may be an :class:`Ensemble`: its members' probabilities are averaged.
    """
    if isinstance(model, Ensemble):
        return ensemble_classes(model, volume, model.probabilities(volume, batch_size, progress))
    prepared = prepare_volume(cfg, volume)
    return classes_on_grid(prepared.geom, slice_probabilities(model, cfg, prepared, batch_size, progress))


def ensemble_classes(ensemble: Ensemble, volume: Volume, probs: np.ndarray) -> np.ndarray:
    """The argmax of an ensemble's probabilities on the volume's grid."""
    return np.argmax(probs, axis=-1).astype(np.uint8)
