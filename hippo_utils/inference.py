"""Inference: on image folders (as the original), and on whole volumes, back on the
input's own grid, with hippocampal volumetry.

Volume inference uses the very geometry of derivation (:mod:`hippo_utils.preprocess`):
orient, normalise, resample and pad each slice to the model size, predict in batches,
then resize each class probability back (bilinear), take the argmax on the source grid
and undo the orientation. The label volume is written as NIfTI with the input's affine
and shape, with the source label values (classes mapped back through [derive]
label_map; a merged left/right hippocampus class is split by hemisphere).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from hippo_utils.config import Config
from hippo_utils.fsutil import atomic_write_bytes, atomic_write_text
from hippo_utils.preprocess import classes_from_probs, image_geometry, normalize_intensity, slice_geometry, with_context
from hippo_utils.volumes import Volume, load_labels, load_volume, save_nifti, strip_volume_suffix

logger = logging.getLogger(__name__)


def model_input(slices01: np.ndarray, cfg: Config) -> np.ndarray:
    """Model-size 0..1 slices -> the 0..255 float (N, H, W, C) input the model was trained on.

    ``slices01`` is (N, H, W) grey slices, in slice order for a volume (with [derive]
    context_slices the neighbours become channels, as in derivation), or (N, H, W, C)
    inputs that already have their channels. Rounded to 8 bits exactly as the derived
    PNGs were, so inference sees what training saw.
    """
    c = cfg.derive.context_slices
    if slices01.ndim == 3:
        slices01 = with_context(slices01, c, cfg.derive.context_step) if c else slices01[..., None]
    x = np.rint(np.clip(slices01, 0, 1) * 255).astype(np.float32)
    channels = cfg.model.image_channels
    return np.repeat(x, channels, axis=-1) if x.shape[-1] == 1 and channels > 1 else x


def predict_batches(model, inputs: np.ndarray, batch_size: int, progress: bool = False,
                    desc: str = "predicting", flip: bool = False) -> np.ndarray:
    """Class probabilities for (N, H, W, C) inputs, in batches.

    Uses the model's compiled ``predict_on_batch`` (about 40% faster than an eager call
    on CPU). The last, smaller batch is not padded: padding cost 12% more compute per
    volume, while its shape, the same for volumes of one size, is traced only once.
    With ``flip`` ([infer] flip_tta), each batch is also predicted mirrored (columns
    reversed) and the two probability maps are averaged. Any callable taking a batch
    also works (tests use one).
    """
    from tqdm.auto import tqdm

    run = getattr(model, "predict_on_batch", None) or (lambda b: model(b, training=False))
    out = []
    for start in tqdm(range(0, len(inputs), batch_size), desc=desc, unit="batch", disable=not progress):
        batch = inputs[start:start + batch_size]
        probs = np.asarray(run(batch))
        if flip:
            probs = (probs + np.asarray(run(np.ascontiguousarray(batch[:, :, ::-1])))[:, :, ::-1]) / 2
        out.append(probs)
    return np.concatenate(out) if out else np.zeros((0,), np.float32)


# ------------------------------------------------------------------------- volumes
@dataclass(frozen=True)
class Ensemble:
    """Trained models whose class probabilities are averaged on each volume's own grid.

    For example one model per slicing plane ([derive] plane), or per seed. Each member
    slices, sizes, normalises and flips ([infer] flip_tta) as its own config says; the
    first member's config decides the rest (labels, [infer] post-processing). Pass an
    Ensemble wherever a model goes in :func:`segment_volume` and :func:`infer_volume`,
    with ``cfg`` = ``ensemble.cfg``.

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
            for what, a, b in (("[model] num_classes", first.model.num_classes, cfg.model.num_classes),
                               ("[derive] label_map", first.derive.label_map, cfg.derive.label_map),
                               ("[mask] rgb_map", first.mask.rgb_map, cfg.mask.rgb_map)):
                if a != b:
                    raise ValueError(f"{name}: its {what} {b!r} differs from the first model's {a!r}; "
                                     "only models that predict the same classes can be fused")

    @property
    def cfg(self) -> Config:
        return self.members[0][1]

    def probabilities(self, volume: Volume, batch_size: int | None = None,
                      progress: bool = False) -> np.ndarray:
        """Mean class probabilities (X, Y, Z, C) of the members on ``volume``'s grid."""
        total = None
        for model, cfg in self.members:
            probs = volume_probabilities(model, cfg, volume, batch_size, progress)
            total = probs if total is None else np.add(total, probs, out=total)
        return total / len(self.members)


def _slice_probabilities(model, cfg: Config, volume: Volume, batch_size: int | None,
                         progress: bool):
    """The slice geometry and model-size class probabilities of each slice along ``cfg``'s plane."""
    geom = slice_geometry(volume, cfg.derive.plane, cfg.image_size)
    norm = geom.orient(normalize_intensity(volume, cfg.derive.intensity_percentiles))
    inputs = np.stack([geom.to_model(s) for s in norm])
    probs = predict_batches(model, model_input(inputs, cfg),
                            batch_size or cfg.infer.batch_size, progress, desc=volume.path.name
                            if volume.path else "volume", flip=cfg.infer.flip_tta)
    return geom, smooth_across_slices(probs) if cfg.infer.slice_smoothing else probs


def smooth_across_slices(probs: np.ndarray) -> np.ndarray:
    """Average each slice's class probabilities with its two neighbours' ([infer] slice_smoothing).

    ``probs`` is (N, H, W, C), the slices in order along the slicing axis, all on the same
    model-size grid, so this is a [1/4, 1/2, 1/4] filter along that axis; it commutes with
    the (linear) resize back to the source grid. The first and last slices stand in for
    their missing neighbour. A 2D model sees each slice alone (or with one neighbour each
    side, with context_slices): this makes an isolated uncertain slice follow its
    neighbours. On the 31 held-out MSD test subjects it added 0.2 points of 3D Dice
    (benchmarks/RESULTS.md).
    """
    if len(probs) < 2:
        return probs
    padded = np.concatenate([probs[:1], probs, probs[-1:]])
    return 0.25 * padded[:-2] + 0.5 * padded[1:-1] + 0.25 * padded[2:]


def volume_probabilities(model, cfg: Config, volume: Volume, batch_size: int | None = None,
                         progress: bool = False) -> np.ndarray:
    """Class probabilities (X, Y, Z, C), float32, on ``volume``'s own grid and axis order."""
    geom, probs = _slice_probabilities(model, cfg, volume, batch_size, progress)
    return geom.unorient(np.stack([geom.from_model(p) for p in probs]).astype(np.float32))


def segment_volume(model, cfg: Config, volume: Volume, batch_size: int | None = None,
                   progress: bool = False) -> np.ndarray:
    """Predicted class indices (uint8) on ``volume``'s own grid and axis order.

    ``model`` may be an :class:`Ensemble`: its members' probabilities are averaged.
    """
    if isinstance(model, Ensemble):
        return np.argmax(model.probabilities(volume, batch_size, progress), axis=-1).astype(np.uint8)
    geom, probs = _slice_probabilities(model, cfg, volume, batch_size, progress)
    return geom.unorient(np.stack([classes_from_probs(geom, p) for p in probs]))


def keep_largest(classes: np.ndarray, n: int) -> np.ndarray:
    """Keep the ``n`` largest connected components (26-connected) of each class."""
    from scipy import ndimage

    if n <= 0:
        return classes
    box = _bounding_box(classes)
    if box is None:
        return classes
    out = classes.copy()
    inner, view = classes[box], out[box]  # labelling only the box around the foreground is exact and faster
    for c in np.unique(inner):
        if c == 0:
            continue
        comp, count = ndimage.label(inner == c, structure=np.ones((3, 3, 3)))
        if count <= n:
            continue
        sizes = np.bincount(comp.ravel())[1:]
        keep = np.argsort(sizes)[::-1][:n] + 1
        view[(comp > 0) & ~np.isin(comp, keep)] = 0
    return out


def _bounding_box(mask: np.ndarray) -> tuple[slice, ...] | None:
    """The smallest box holding every non-zero voxel, or None when there is none."""
    box = []
    for axis in range(mask.ndim):
        hit = np.flatnonzero(mask.any(axis=tuple(a for a in range(mask.ndim) if a != axis)))
        if hit.size == 0:
            return None
        box.append(slice(int(hit[0]), int(hit[-1]) + 1))
    return tuple(box)


def _lr_axis(volume: Volume) -> tuple[int, int]:
    """(array axis pointing left-right, +1 if a higher index is further left else -1)."""
    codes = volume.axcodes
    for axis, code in enumerate(codes):
        if code in "LR":
            return axis, 1 if code == "L" else -1
    raise ValueError(f"{volume.path or 'volume'}: no left-right axis in orientation {''.join(codes)}")


def split_hemispheres(mask: np.ndarray, volume: Volume) -> tuple[np.ndarray, np.ndarray]:
    """Split a bilateral hippocampus mask into (left, right) masks.

    The midline is taken halfway between the two largest connected components along the
    left-right axis; with a single component, at the centre of the head (voxels above
    the volume's 20th intensity percentile).
    """
    from scipy import ndimage

    axis, sign = _lr_axis(volume)
    box = _bounding_box(mask)
    if box is None:
        return mask.copy(), mask.copy()
    comp, count = ndimage.label(mask[box], structure=np.ones((3, 3, 3)))
    coords = np.arange(mask.shape[axis]).reshape([-1 if a == axis else 1 for a in range(3)])
    if count >= 2:
        sizes = np.bincount(comp.ravel())[1:]
        a, b = np.argsort(sizes)[::-1][:2] + 1
        centres = [np.nonzero(comp == k)[axis].mean() + box[axis].start for k in (a, b)]
        midline = float(np.mean(centres))
    else:
        head = volume.data > np.percentile(volume.data, 20)
        midline = float(np.nonzero(head)[axis].mean())
    left_side = (coords - midline) * sign > 0
    return mask & left_side, mask & ~left_side


def classes_to_labels(classes: np.ndarray, cfg: Config, volume: Volume) -> np.ndarray:
    """Model classes -> the source label values of [derive] label_map (uint8)."""
    by_class: dict[int, list[int]] = {}
    for src, cls in sorted(cfg.derive.label_map.items()):
        by_class.setdefault(cls, []).append(src)
    labels = np.zeros(classes.shape, np.uint8)
    lr = cfg.infer.left_right_labels
    for cls, sources in by_class.items():
        mask = classes == cls
        if lr is not None and len(sources) > 1 and set(lr) <= set(sources):
            left, right = split_hemispheres(mask, volume)
            labels[left], labels[right] = lr[0], lr[1]
        else:
            labels[mask] = sources[0]
    return labels


def volumetry(labels: np.ndarray, volume: Volume, cfg: Config) -> dict[str, float]:
    """Volume in mm^3 per label and in total; left, right and asymmetry index when the
    config names the left/right labels. AI = (L - R) / ((L + R) / 2)."""
    voxel_mm3 = float(abs(np.linalg.det(volume.affine[:3, :3])))
    counts = np.bincount(labels.ravel(), minlength=256)
    row: dict[str, float] = {f"label_{v}_mm3": round(float(counts[v]) * voxel_mm3, 2)
                             for v in sorted(set(cfg.derive.label_map))}
    row["total_mm3"] = round(float(counts[1:].sum()) * voxel_mm3, 2)
    lr = cfg.infer.left_right_labels
    if lr is not None:
        left, right = float(counts[lr[0]]) * voxel_mm3, float(counts[lr[1]]) * voxel_mm3
        row["left_mm3"], row["right_mm3"] = round(left, 2), round(right, 2)
        row["asymmetry_index"] = round((left - right) / ((left + right) / 2), 4) if left + right else float("nan")
    return row


@dataclass
class VolumeResult:
    name: str
    source: Path | None
    labels_path: Path
    qc_path: Path
    volumetry: dict[str, float]
    metrics: dict[str, float] = field(default_factory=dict)


def infer_volume(model, cfg: Config, source: str | os.PathLike[str] | Volume, out_dir: str | os.PathLike[str],
                 truth: str | os.PathLike[str] | None = None, progress: bool = False,
                 qc: bool = True) -> VolumeResult:
    """Segment one volume; write ``NAME_labels.nii.gz`` (input affine and shape) and
    ``NAME_qc.png``; compare with ``truth`` labels when given.

    Raises:
        FileNotFoundError, ValueError: unreadable input, or truth on another grid.
    """
    from hippo_utils import plots
    from hippo_utils.metrics import volume_metrics

    volume = load_volume(source)
    name = strip_volume_suffix(volume.path.name) if volume.path else "volume"
    out_dir = Path(out_dir)
    classes = keep_largest(segment_volume(model, cfg, volume, progress=progress),
                           cfg.infer.keep_largest_components)
    labels = classes_to_labels(classes, cfg, volume)
    labels_path = save_nifti(labels, volume.affine, out_dir / f"{name}_labels.nii.gz", volume.header)
    result = VolumeResult(name, volume.path, labels_path, out_dir / f"{name}_qc.png",
                          volumetry(labels, volume, cfg))
    if qc:
        norm = normalize_intensity(volume, cfg.derive.intensity_percentiles)
        fig = plots.three_planes(volume, labels=labels, data=norm, title=f"{name}: predicted hippocampus")
        plots.save_figure(fig, result.qc_path, dpi=80)
    if truth is not None:
        from hippo_utils.derive import map_labels

        gt = load_labels(truth, like=volume)
        map_labels(gt, cfg.derive.label_map, str(truth))  # refuses label values outside the map
        for value in output_labels(cfg):
            for k, v in volume_metrics(gt == value, labels == value, volume.spacing).items():
                result.metrics[f"label{value}_{k}"] = round(v, 4)
        for k, v in volume_metrics(gt > 0, labels > 0, volume.spacing).items():
            result.metrics[f"hippocampus_{k}"] = round(v, 4)
    return result


def output_labels(cfg: Config) -> list[int]:
    """The source label values that :func:`classes_to_labels` can write."""
    by_class: dict[int, list[int]] = {}
    for src, cls in sorted(cfg.derive.label_map.items()):
        by_class.setdefault(cls, []).append(src)
    lr = cfg.infer.left_right_labels
    values = []
    for sources in by_class.values():
        split = lr is not None and len(sources) > 1 and set(lr) <= set(sources)
        values.extend(lr if split else sources[:1])
    return sorted(values)


def write_table(rows: Sequence[dict], csv_path: Path, with_summary: bool = False) -> None:
    """Rows to CSV (and JSON beside it), atomically; optional mean and std rows."""
    if not rows:
        return
    cols = list(dict.fromkeys(k for r in rows for k in r))
    table = [dict(r) for r in rows]
    if with_summary:
        numeric = [c for c in cols if all(isinstance(r.get(c), (int, float)) for r in rows)]
        for stat, fn in (("mean", np.nanmean), ("std", np.nanstd)):
            table.append({cols[0]: stat, **{c: round(float(fn([r[c] for r in rows])), 4) for c in numeric}})
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
    writer.writeheader()
    writer.writerows(table)
    atomic_write_text(csv_path, buf.getvalue())
    atomic_write_text(csv_path.with_suffix(".json"), json.dumps(table, indent=1, default=float) + "\n")


def find_truth(labels_dir: Path | None, name: str) -> Path | None:
    """The label file for subject ``name`` in ``labels_dir`` (same name, or HFH's
    ``NAME_Hipp_Labels``), or None."""
    if labels_dir is None:
        return None
    for stem in (name, f"{name}_Hipp_Labels"):
        for suffix in (".nii.gz", ".nii", ".img", ".hdr"):
            if (labels_dir / f"{stem}{suffix}").exists():
                return labels_dir / f"{stem}{suffix}"
    raise FileNotFoundError(f"--labels {labels_dir}: no label file for {name} "
                            f"(looked for {name}.nii.gz, {name}_Hipp_Labels.img, ...)")


def infer_volumes(model_dir: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
                  inputs: Sequence[str | os.PathLike[str]], out_dir: str | os.PathLike[str],
                  labels_dir: str | os.PathLike[str] | None = None,
                  progress: bool = True, overrides: Sequence[str] = ()) -> list[VolumeResult]:
    """Segment many volumes with the model in ``model_dir``; write one summary table.

    ``inputs`` may name files or folders (every volume inside is taken). Writes, in
    ``out_dir``: ``NAME_labels.nii.gz`` and ``NAME_qc.png`` per input, ``volumetry.csv``
    (and ``.json``), ``run.json``, and with ``labels_dir`` also ``metrics.csv`` with
    per-subject Dice, HD95 and volume difference, with mean and standard deviation.
    ``overrides`` (``infer.key=value``) change [infer] settings of the saved config,
    e.g. ``infer.flip_tta=True``; the rest is what the model was trained with.
    Several model folders make an :class:`Ensemble` (e.g. one model per plane): their
    probabilities are averaged; overrides apply to each.
    """
    from tqdm.auto import tqdm

    from hippo_utils.config import load_config
    from hippo_utils.trainer import CONFIG_NAME, load_trained
    from hippo_utils.volumes import is_volume_file

    for item in overrides:
        if not item.strip().startswith("infer."):
            raise ValueError(f"--set {item}: only [infer] settings can change at inference; the model was "
                             "trained with the rest of its config")
    dirs = [model_dir] if isinstance(model_dir, (str, os.PathLike)) else list(model_dir)
    members = []
    for d in dirs:
        model, cfg = load_trained(d)
        if overrides:
            cfg = load_config(Path(d) / CONFIG_NAME, list(overrides))
        members.append((model, cfg))
    if len(members) > 1:
        model = Ensemble(tuple(members), tuple(map(str, dirs)))
        cfg = model.cfg
    files: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            found = sorted(p for p in item.iterdir() if is_volume_file(p))
            if not found:
                raise ValueError(f"{item}: no .nii, .nii.gz or .img volumes in this folder")
            files.extend(found)
        elif item.exists():
            files.append(item)
        else:
            raise FileNotFoundError(f"input not found: {item}")
    labels_dir = Path(labels_dir) if labels_dir else None
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    results = []
    for path in tqdm(files, desc="volumes", unit="volume", disable=not progress):
        truth = find_truth(labels_dir, strip_volume_suffix(path.name))
        results.append(infer_volume(model, cfg, path, out_dir, truth))
    write_table([{"subject": r.name, **r.volumetry} for r in results], out_dir / "volumetry.csv")
    if labels_dir is not None:
        write_table([{"subject": r.name, **r.metrics} for r in results], out_dir / "metrics.csv",
                    with_summary=True)
    write_run_record(out_dir, dirs, {r.name: str(r.source) for r in results})
    return results


def write_run_record(out_dir: Path, model_dirs: Sequence[str | os.PathLike[str]], inputs: dict[str, str]) -> Path:
    """``run.json`` beside the predictions: the package version, the model folder(s) and
    what produced each (its provenance.json), and the inputs with their sha256."""
    from hippo_utils import __version__
    from hippo_utils.fsutil import sha256_file

    def provenance(d: Path):
        prov = d / "provenance.json"
        return json.loads(prov.read_text()) if prov.is_file() else None

    dirs = [Path(d).resolve() for d in model_dirs]
    record = {
        "hippo_utils": __version__, "model_dir": str(dirs[0]),
        "model_provenance": provenance(dirs[0]),
        **({"ensemble": [{"model_dir": str(d), "model_provenance": provenance(d)} for d in dirs]}
           if len(dirs) > 1 else {}),
        "inputs": {name: {"path": path, "sha256": sha256_file(path) if Path(path).is_file() else None}
                   for name, path in inputs.items()},
    }
    path = out_dir / "run.json"
    atomic_write_text(path, json.dumps(record, indent=1) + "\n")
    return path


# ------------------------------------------------------------------------ folders
@dataclass
class FolderResult:
    output_dir: Path
    names: list[str]
    merged_dir: Path | None


def infer_folder(model, cfg: Config, images_dir: str | os.PathLike[str] | None = None,
                 output_dir: str | os.PathLike[str] | None = None, progress: bool = True) -> FolderResult:
    """Predict every image of a folder ([infer] images_dir), in batches.

    Writes, at each input's own size: the predicted mask coloured by ``rgb_map`` as
    ``output_dir/NAME.png`` (as the original did), an overlay on the input in
    ``output_dir/overlays/``, and, where a ground-truth mask exists, an
    image | ground truth | prediction strip in ``merged_dir``.
    """
    from hippo_utils import plots
    from hippo_utils.dataset import IMAGE_SUFFIXES

    images_dir = Path(images_dir or cfg.infer.images_dir)
    output_dir = Path(output_dir or cfg.infer.output_dir)
    if not images_dir.is_dir():
        raise FileNotFoundError(f"[infer] images_dir not found: {images_dir}")
    paths = sorted(p for p in images_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise ValueError(f"{images_dir}: no .png or .jpg images to segment")
    masks_dir = cfg.infer.masks_dir or images_dir.parent / "masks"
    merged_dir = cfg.infer.merged_dir or output_dir / "merged"
    lut = cfg.class_colours()
    # A 2.5D model (context_slices) reads its neighbour channels from RGB images such as the
    # derived ones; a grey image then stands for its own neighbours.
    context = cfg.derive.context_slices
    arrays = [np.asarray(Image.open(p).convert("RGB" if context else "L"), np.float32) / 255.0 for p in paths]
    greys = [a[..., 1] if context else a for a in arrays]  # the slice itself, for display
    geoms = [image_geometry(g.shape, cfg.image_size) for g in greys]
    inputs = model_input(np.stack([
        np.stack([geom.to_model(a[..., k]) for k in range(3)], axis=-1) if context else geom.to_model(a)
        for geom, a in zip(geoms, arrays, strict=True)]), cfg)
    probs = predict_batches(model, inputs, cfg.infer.batch_size, progress, desc=images_dir.name,
                            flip=cfg.infer.flip_tta)
    for path, grey, geom, prob in zip(paths, greys, geoms, probs, strict=True):
        pred = lut[classes_from_probs(geom, prob)]
        grey8 = np.rint(grey * 255).astype(np.uint8)
        atomic_write_bytes(output_dir / f"{path.stem}.png", plots.png_bytes(pred))
        atomic_write_bytes(output_dir / "overlays" / f"{path.stem}.png", plots.png_bytes(plots.overlay(grey8, pred)))
        truth_path = next((masks_dir / f"{path.stem}{s}" for s in IMAGE_SUFFIXES
                           if (masks_dir / f"{path.stem}{s}").exists()), None)
        if truth_path is not None:
            truth = Image.open(truth_path).convert("RGB")
            truth = np.asarray(truth.resize(grey8.shape[::-1], Image.Resampling.NEAREST))
            strip = np.concatenate([np.repeat(grey8[..., None], 3, axis=2), plots.overlay(grey8, truth),
                                    plots.agreement(grey8, truth, pred)], axis=1)
            atomic_write_bytes(merged_dir / f"{path.stem}.png", plots.png_bytes(strip))
    return FolderResult(output_dir, [p.stem for p in paths], merged_dir if masks_dir.is_dir() else None)
