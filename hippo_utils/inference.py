"""Inference that writes files: whole volumes (NIfTI labels on the input's own grid, QC
figures, volumetry and run records) and folders of 2D images (as the original did).

The label volume has the input's affine and shape and the source label values
(:meth:`hippo_utils.labels.Labels.to_source`: a merged left/right hippocampus class is
split by hemisphere). The predictions themselves are :mod:`hippo_utils.predict`'s.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from hippo_utils import plots
from hippo_utils._version import __version__
from hippo_utils.config import Config
from hippo_utils.fsutil import atomic_write_bytes, sha256_file
from hippo_utils.labels import Labels
from hippo_utils.metrics import volume_metrics
from hippo_utils.model_dir import load_model_config, load_model_dir, read_provenance
from hippo_utils.png import IMAGE_SUFFIXES, png_bytes, read_rgb
from hippo_utils.postprocess import keep_largest
from hippo_utils.predict import Ensemble, predict_batches, segment_volume
from hippo_utils.preprocess import classes_from_probs, image_geometry, model_batch, model_slices, normalize_intensity
from hippo_utils.tables import write_json, write_table
from hippo_utils.volumes import Volume, is_volume_file, load_labels, load_volume, save_nifti, strip_volume_suffix
from hippo_utils.volumetry import volumetry

logger = logging.getLogger(__name__)


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
    volume = load_volume(source)
    labels_of = Labels.from_config(cfg)
    name = strip_volume_suffix(volume.path.name) if volume.path else "volume"
    out_dir = Path(out_dir)
    classes = keep_largest(segment_volume(model, cfg, volume, progress=progress),
                           cfg.infer.keep_largest_components)
    labels = labels_of.to_source(classes, volume)
    labels_path = save_nifti(labels, volume.affine, out_dir / f"{name}_labels.nii.gz", volume.header)
    result = VolumeResult(name, volume.path, labels_path, out_dir / f"{name}_qc.png",
                          volumetry(labels, volume, cfg))
    if qc:
        norm = normalize_intensity(volume, cfg.derive.intensity_percentiles)
        fig = plots.three_planes(volume, labels=labels, data=norm, title=f"{name}: predicted hippocampus")
        plots.save_figure(fig, result.qc_path, dpi=80)
    if truth is not None:
        gt = load_labels(truth, like=volume)
        labels_of.to_classes(gt, str(truth))  # refuses label values outside the map
        for value in labels_of.output_values():
            for k, v in volume_metrics(gt == value, labels == value, volume.spacing).items():
                result.metrics[f"label{value}_{k}"] = round(v, 4)
        for k, v in volume_metrics(gt > 0, labels > 0, volume.spacing).items():
            result.metrics[f"hippocampus_{k}"] = round(v, 4)
    return result


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

    for item in overrides:
        if not item.strip().startswith("infer."):
            raise ValueError(f"--set {item}: only [infer] settings can change at inference; the model was "
                             "trained with the rest of its config")
    dirs = [model_dir] if isinstance(model_dir, (str, os.PathLike)) else list(model_dir)
    members = []
    for d in dirs:
        model, cfg = load_model_dir(d)
        if overrides:
            cfg = load_model_config(d, overrides)
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
    dirs = [Path(d).resolve() for d in model_dirs]
    record = {
        "hippo_utils": __version__, "model_dir": str(dirs[0]),
        "model_provenance": read_provenance(dirs[0]),
        **({"ensemble": [{"model_dir": str(d), "model_provenance": read_provenance(d)} for d in dirs]}
           if len(dirs) > 1 else {}),
        "inputs": {name: {"path": path, "sha256": sha256_file(path) if Path(path).is_file() else None}
                   for name, path in inputs.items()},
    }
    return write_json(out_dir / "run.json", record)


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
    images_dir = Path(images_dir or cfg.infer.images_dir)
    output_dir = Path(output_dir or cfg.infer.output_dir)
    if not images_dir.is_dir():
        raise FileNotFoundError(f"[infer] images_dir not found: {images_dir}")
    paths = sorted(p for p in images_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise ValueError(f"{images_dir}: no .png or .jpg images to segment")
    masks_dir = cfg.infer.masks_dir or images_dir.parent / "masks"
    merged_dir = cfg.infer.merged_dir or output_dir / "merged"
    colours = Labels.from_config(cfg).colours
    # A 2.5D model (context_slices) reads its neighbour channels from RGB images such as the
    # derived ones; a grey image then stands for its own neighbours.
    context = cfg.derive.context_slices
    arrays = [np.asarray(Image.open(p).convert("RGB" if context else "L"), np.float32) / 255.0 for p in paths]
    greys = [a[..., 1] if context else a for a in arrays]  # the slice itself, for display
    geoms = [image_geometry(g.shape, cfg.image_size) for g in greys]
    inputs = model_batch(np.concatenate([model_slices(a[None], geom) for geom, a in zip(geoms, arrays, strict=True)]),
                         cfg.model.image_channels)
    probs = predict_batches(model, inputs, cfg.infer.batch_size, progress, desc=images_dir.name,
                            flip=cfg.infer.flip_tta)
    for path, grey, geom, prob in zip(paths, greys, geoms, probs, strict=True):
        pred = colours[classes_from_probs(geom, prob)]
        grey8 = np.rint(grey * 255).astype(np.uint8)
        atomic_write_bytes(output_dir / f"{path.stem}.png", png_bytes(pred))
        atomic_write_bytes(output_dir / "overlays" / f"{path.stem}.png", png_bytes(plots.overlay(grey8, pred)))
        truth_path = next((masks_dir / f"{path.stem}{s}" for s in IMAGE_SUFFIXES
                           if (masks_dir / f"{path.stem}{s}").exists()), None)
        if truth_path is not None:
            truth = Image.fromarray(read_rgb(truth_path))
            truth = np.asarray(truth.resize(grey8.shape[::-1], Image.Resampling.NEAREST))
            strip = np.concatenate([np.repeat(grey8[..., None], 3, axis=2), plots.overlay(grey8, truth),
                                    plots.agreement(grey8, truth, pred)], axis=1)
            atomic_write_bytes(merged_dir / f"{path.stem}.png", png_bytes(strip))
    return FolderResult(output_dir, [p.stem for p in paths], merged_dir if masks_dir.is_dir() else None)
