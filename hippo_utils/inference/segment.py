"""Inference that writes files: whole volumes (NIfTI labels on the input's own grid, QC
pictures, volumetry and run records) and folders of 2D images (as the original did).

A batch of volumes runs as a pipeline (loading and writing beside prediction), into a locked
output folder, with an output name per input and table rows keyed by input path and sha256
that later batches add to.

The label volume has the input's affine and shape and the source label values
(:meth:`hippo_utils.data.labels.Labels.to_source`: a merged left/right hippocampus class is
split by hemisphere). The predictions themselves are :mod:`hippo_utils.inference.predict`'s.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from hippo_utils._version import __version__
from hippo_utils.core.config import Config
from hippo_utils.core.files import atomic_write_bytes
from hippo_utils.core.locks import folder_lock, folder_locks
from hippo_utils.core.ownership import check_may_write, check_outputs_apart, recorded_input, result_files
from hippo_utils.core.png import HIGH_DEPTH_MODES, IMAGE_SUFFIXES, open_image, png_bytes, read_grey_values, read_rgb
from hippo_utils.core.tables import merge_rows, read_rows, write_json, write_table
from hippo_utils.data.components import keep_largest
from hippo_utils.data.labels import Labels
from hippo_utils.data.layouts import find_label_file
from hippo_utils.data.preprocess import (
    classes_from_probs,
    image_geometry,
    model_batch,
    model_slices,
    normalize_intensity,
)
from hippo_utils.data.volumes import (
    Volume,
    check_volume_file,
    is_volume_file,
    load_labels,
    load_volume,
    save_nifti,
    strip_volume_suffix,
    volume_sha256,
)
from hippo_utils.display import pictures
from hippo_utils.inference.predict import (
    Ensemble,
    PreparedVolume,
    ensemble_classes,
    grid_prediction,
    predict_batches,
    prepare_volume,
    slice_probabilities,
)
from hippo_utils.inference.volumetry import plausibility_flags, volumetry
from hippo_utils.model.folder import load_model_config, load_model_dir, read_provenance
from hippo_utils.model.metrics import labelled_volume_metrics

logger = logging.getLogger(__name__)

# A volume's results in an output folder: NAME_labels.nii.gz and NAME_qc.png
LABELS_SUFFIX, QC_SUFFIX = "_labels.nii.gz", "_qc.png"


@dataclass
class VolumeResult:
    name: str
    source: Path | None
    labels_path: Path
    qc_path: Path
    volumetry: dict[str, float]
    metrics: dict[str, float] = field(default_factory=dict)
    assumed_voxel_size: bool = False  # the volumes rest on --assume-voxel-size


def infer_volume(
    model,
    cfg: Config,
    source: str | os.PathLike[str] | Volume,
    out_dir: str | os.PathLike[str],
    truth: str | os.PathLike[str] | None = None,
    progress: bool = False,
    qc: bool = True,
    name: str | None = None,
    assume_voxel_size: tuple[float, float, float] | None = None,
) -> VolumeResult:
    """Segment one volume; write ``NAME_labels.nii.gz`` (input affine and shape) and
    ``NAME_qc.png``; compare with ``truth`` labels when given.

    Args:
        name: the output names' stem (default: the input's file name without suffix).
        assume_voxel_size: the voxel size (mm) of an input whose header has none; its
            volumes are then marked as assumed (the ``qc`` flags).

    Raises:
        FileNotFoundError, ValueError: unreadable input, or truth on another grid.
    """
    volume = load_volume(source, assume_spacing=assume_voxel_size)
    prepared = _prepare(model, cfg, volume)
    probs = _probabilities(model, cfg, prepared, progress)
    return _write_prediction(model, cfg, prepared, probs, Path(out_dir), name, truth, qc)


def _prepare(model, cfg: Config, volume: Volume) -> Volume | PreparedVolume:
    """What :func:`_probabilities` takes: the volume itself for an ensemble (each member
    prepares it its own way), else the volume prepared for the model."""
    return volume if isinstance(model, Ensemble) else prepare_volume(cfg, volume)


def _probabilities(model, cfg: Config, prepared: Volume | PreparedVolume, progress: bool = False) -> np.ndarray:
    """An ensemble's probabilities of a loaded volume (on its grid), or one model's of a
    prepared volume (model-size slices)."""
    if isinstance(model, Ensemble):
        return model.probabilities(prepared, progress=progress)
    return slice_probabilities(model, cfg, prepared, progress=progress)


def _write_prediction(
    model,
    cfg: Config,
    prepared: Volume | PreparedVolume,
    probs: np.ndarray,
    out_dir: Path,
    name: str | None,
    truth: str | os.PathLike[str] | None,
    qc: bool,
) -> VolumeResult:
    """Classes and volumetry from :func:`_probabilities`' output, then the volume's files."""
    if isinstance(model, Ensemble):  # the members' probabilities are on the volume's grid already
        return _write_volume(cfg, prepared, ensemble_classes(model, prepared, probs), out_dir, name, truth, qc, probs)
    classes, on_grid = grid_prediction(prepared.geom, probs, near_foreground=True)
    return _write_volume(
        cfg, prepared.volume, classes, out_dir, name, truth, qc, on_grid, normalised=prepared.normalised
    )


def output_labels(cfg: Config, classes: np.ndarray, volume: Volume, labels_of: Labels | None = None) -> np.ndarray:
    """The label map written for a volume's predicted classes: the largest components kept
    ([infer] keep_largest_components), classes back to the source's label values (left and
    right split by hemisphere where the config says so). What volumetry measures."""
    labels_of = labels_of or Labels.from_config(cfg)
    return labels_of.to_source(keep_largest(classes, cfg.infer.keep_largest_components), volume)


def _write_volume(
    cfg: Config,
    volume: Volume,
    classes: np.ndarray,
    out_dir: Path,
    name: str | None,
    truth: str | os.PathLike[str] | None,
    qc: bool,
    probabilities: np.ndarray | None = None,
    normalised: np.ndarray | None = None,
) -> VolumeResult:
    """Post-process a volume's predicted classes and write its results (the last stage).

    Args:
        probabilities: the class probabilities (X, Y, Z, C) on the volume's grid (at least
            within one voxel of the predicted classes), for partial-volume volumetry; None
            counts voxels.
        normalised: the volume scaled for display, when the caller has it already.
    """
    labels_of = Labels.from_config(cfg)
    name = name or (strip_volume_suffix(volume.path.name) if volume.path else "volume")
    gt = None
    if truth is not None:  # refused before anything of this volume is written
        gt = load_labels(truth, like=volume)
        labels_of.to_classes(gt, str(truth))  # refuses label values outside the map
        gt = np.where(np.isin(gt, labels_of.background_values()), 0, gt).astype(gt.dtype)  # as the model saw it
    source = str(volume.path.resolve()) if volume.path else None
    labels = output_labels(cfg, classes, volume, labels_of)
    labels_path = save_nifti(labels, volume.affine, out_dir / f"{name}{LABELS_SUFFIX}", volume.header, input=source)
    row = volumetry(labels, volume, cfg, probabilities)
    row["qc"] = plausibility_flags(row, volume.assumed_spacing)
    result = VolumeResult(
        name, volume.path, labels_path, out_dir / f"{name}{QC_SUFFIX}", row, assumed_voxel_size=volume.assumed_spacing
    )
    if qc:
        if normalised is None:
            normalised = normalize_intensity(volume, cfg.derive.intensity_percentiles)
        picture = pictures.qc_snapshot(
            volume,
            labels,
            normalised,
            title=f"{name}: predicted hippocampus",
            anatomical=not cfg.derive.plane.startswith("axis"),
        )
        atomic_write_bytes(result.qc_path, png_bytes(picture, compress_level=1), input=source)
    if gt is not None:
        result.metrics.update(
            labelled_volume_metrics(gt, labels, volume.spacing, labels_of.output_values(), "label", volume.voxel_mm3)
        )
    return result


def _yield_to_the_model() -> None:
    """Run the calling (background) thread at a lower priority, where the system allows it:
    the model's threads then keep the cores, and loading and writing fill their gaps."""
    import threading

    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
    except (AttributeError, OSError):  # not on this system, or not allowed: run as before
        pass


def _segment_batch(
    model,
    cfg: Config,
    files: Sequence[Path],
    out_dir: Path,
    names: dict[Path, str],
    truths: dict[Path, Path | None],
    assume_voxel_size,
    progress: bool,
    record,
) -> tuple[list[VolumeResult], Exception | None]:
    """Segment ``files`` in a pipeline that keeps the model busy: one background thread
    writes the last volume's results and then loads and prepares the next volume while the
    model predicts this one. At most two volumes are held at a time (the one predicted,
    and the one written or loaded). Each volume is handed to ``record`` as soon as its files
    are written (in the same thread, so in input order), so that a run stopped any way
    (an error, Ctrl-C, SIGTERM, a full disk) has recorded every volume it finished. Returns
    the results of the volumes done, in order, and the first error, which the caller raises.
    """
    from concurrent.futures import ThreadPoolExecutor

    from tqdm.auto import tqdm

    def load(path: Path):
        return _prepare(model, cfg, load_volume(path, assume_spacing=assume_voxel_size))

    def finish(path: Path, prepared, probs: np.ndarray) -> VolumeResult:
        result = _write_prediction(model, cfg, prepared, probs, out_dir, names[path], truths[path], qc=True)
        record(result)
        return result

    done, error, loading = [], None, None
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="hippo-io", initializer=_yield_to_the_model) as worker:
        try:
            loading = worker.submit(load, files[0]) if files else None
            for i, path in enumerate(tqdm(files, desc="volumes", unit="volume", disable=not progress)):
                if any(f.done() and f.exception() is not None for f in done):
                    break  # a volume could not be written (a full disk?): the next ones would fail alike
                prepared = loading.result()
                if i + 1 < len(files):  # queued after the last volume's writing: two volumes at most
                    loading = worker.submit(load, files[i + 1])
                probs = _probabilities(model, cfg, prepared)
                done.append(worker.submit(finish, path, prepared, probs))
                del prepared, probs
        except Exception as exc:  # noqa: BLE001 (raised by the caller, once the finished volumes are recorded)
            error = exc  # loading or predicting volume len(done): later than any write that failed
        except BaseException:  # Ctrl-C, SIGTERM: the volume being written is finished and recorded, no more
            if loading is not None:
                loading.cancel()
            raise
        results, first_failure = [], None
        for path, future in zip(files, done, strict=False):
            try:
                results.append(future.result())
            except Exception as exc:  # noqa: BLE001 (the same)
                if first_failure is not None:  # the first is raised; the others are told here
                    logger.warning("%s: %s", path, exc)
                first_failure = first_failure or exc
    return results, first_failure or error  # the earliest failure, in input order


def output_names(
    files: Sequence[Path], taken: dict[str, str] | None = None, reserved: Iterable[str] = ()
) -> dict[Path, str]:
    """A distinct output name for each input, that shows which input it is.

    The name is the file's stem; where inputs share a stem (``a/scan.nii`` and
    ``b/scan.nii.gz``), or the stem already names another input's results in the output
    folder (``taken``: input path -> name), all of them get as many parent folders in front
    as it takes to tell them apart (``a_scan``, ``b_scan``). An input in ``taken`` keeps its name;
    ``reserved`` names (results of no known input) go to no new input.
    """
    taken = dict(taken or {})
    names: dict[Path, str] = {}
    groups: dict[str, list[Path]] = {}
    for f in files:
        if str(f.resolve()) in taken:
            names[f] = taken[str(f.resolve())]
        else:
            groups.setdefault(strip_volume_suffix(f.name), []).append(f)
    used = set(taken.values()) | set(names.values()) | (set(reserved) - set(names.values()))
    for stem, group in groups.items():
        parents = {f: [p.name for p in f.resolve().parents if p.name] for f in group}
        for k in range(0 if len(group) == 1 else 1, 1 + max(len(p) for p in parents.values())):
            chosen = {f: "_".join([*reversed(parents[f][:k]), stem]) for f in group}
            if len(set(chosen.values())) == len(group) and not used & set(chosen.values()):
                break
        else:  # the same names all the way up: tell them apart by the paths' hashes
            chosen = {f: f"{stem}_{hashlib.sha256(str(f.resolve()).encode()).hexdigest()[:8]}" for f in group}
        names.update(chosen)
        used |= set(chosen.values())
    return {f: names[f] for f in files}


def _truths(files: Sequence[Path], labels_dir: Path | None) -> dict[Path, Path | None]:
    """Each input's label file in ``labels_dir`` (by the input's file name), or None without one.

    Raises:
        FileNotFoundError: an input without a label file.
        ValueError: two inputs that would be scored against the same label file.
    """
    truths = {
        path: find_label_file(labels_dir, strip_volume_suffix(path.name)) if labels_dir else None for path in files
    }
    seen: dict[Path, Path] = {}
    for path, truth in truths.items():
        if truth is not None and truth in seen:
            raise ValueError(
                f"--labels: {seen[truth]} and {path} would both be scored against {truth}; "
                "score inputs that share a file name in separate runs"
            )
        if truth is not None:
            seen[truth] = path
    return truths


def infer_volumes(
    model_dir: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    inputs: Sequence[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    labels_dir: str | os.PathLike[str] | None = None,
    progress: bool = True,
    overrides: Sequence[str] = (),
    assume_voxel_size: tuple[float, float, float] | None = None,
) -> list[VolumeResult]:
    """Segment many volumes with the model in ``model_dir``; write one summary table.

    ``inputs`` may name files or folders (every volume inside is taken). Writes, in
    ``out_dir``: ``NAME_labels.nii.gz`` and ``NAME_qc.png`` per input (:func:`output_names`:
    distinct even when file names repeat), ``volumetry.csv`` (and ``.json``) with a ``qc``
    column, ``run.json``, and with ``labels_dir`` also ``metrics.csv`` with per-subject Dice,
    HD95 and volume difference, with mean and standard deviation. Every row names its input
    path and sha256. A second run into the same ``out_dir`` adds its rows, or replaces the
    rows of the same inputs; the rows of other inputs stay. ``out_dir`` is locked while
    the run writes it (:func:`~hippo_utils.core.locks.folder_lock`).

    ``overrides`` (``infer.key=value``) change [infer] settings of the saved config,
    e.g. ``infer.flip_tta=True``; the rest is what the model was trained with.
    Several model folders make an :class:`Ensemble` (e.g. one model per plane): their
    probabilities are averaged; overrides apply to each.

    Raises:
        FolderLocked: another process is writing ``out_dir``.
        ValueError: ``out_dir`` holds results of another model, is a file, or is (or holds)
            an input, the labels or a model folder; a bad input or label file (all are
            checked before anything is written).
        NotOurs: a file at one of the output paths that the tool did not write (refused
            before the batch starts; nothing of the user's is replaced).
    """
    for item in overrides:
        if not item.strip().startswith("infer."):
            raise ValueError(
                f"--set {item}: only [infer] settings can change at inference; the model was "
                "trained with the rest of its config"
            )
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"--out {out_dir} is a file; give a folder (it is made when missing)")
    dirs = [Path(model_dir)] if isinstance(model_dir, (str, os.PathLike)) else [Path(d) for d in model_dir]
    labels_dir = Path(labels_dir) if labels_dir else None
    check_outputs_apart(
        [("--out", out_dir)],
        [*(("the input", Path(i)) for i in inputs), ("--labels", labels_dir), *(("the model folder", d) for d in dirs)],
    )
    files = _volume_files(inputs)
    with folder_lock(out_dir, "infer-volume"):
        for table in _TABLES + (_METRIC_TABLES if labels_dir is not None else ()):  # before they are read
            check_may_write(out_dir / table)
        _check_same_models(out_dir, dirs)
        members = []
        for d in dirs:
            model, cfg = load_model_dir(d)
            if overrides:
                cfg = load_model_config(d, overrides)
            members.append((model, cfg))
        if len(members) > 1:
            model = Ensemble(tuple(members), tuple(map(str, dirs)))
            cfg = model.cfg
        truths = _truths(files, labels_dir)
        _check_inputs(cfg, files, truths, assume_voxel_size)  # before anything is written
        old_rows = _partial_volume_rows(out_dir / "volumetry.json")
        names = output_names(
            files,
            {**_recorded_results(out_dir), **{r["input"]: r["subject"] for r in old_rows}},
            reserved=_results_on_disk(out_dir),
        )
        for name in names.values():  # nothing of the user's is replaced; refused before the batch starts
            for suffix in (LABELS_SUFFIX, QC_SUFFIX):
                check_may_write(out_dir / f"{name}{suffix}")
        book = _Records(out_dir, dirs, old_rows, labels_dir is not None)
        out_dir.mkdir(parents=True, exist_ok=True)
        results, error = _segment_batch(
            model, cfg, files, out_dir, names, truths, assume_voxel_size, progress, book.add
        )
        if error is not None:
            raise error
    return results


def _partial_volume_rows(table: Path) -> list[dict]:
    """The rows of an output folder's volumetry table (:func:`read_rows`), refused when they
    hold counted volumes (a table from before partial volumes: it has no ``label_N_voxels``
    columns), which new rows would sit beside as if they measured the same."""
    rows = read_rows(table, "input")
    counted = [r["subject"] for r in rows if not any(k.endswith("_voxels") for k in r)]
    if counted:
        raise ValueError(
            f"{table}: its volumes of {', '.join(counted[:3])}{' ...' if len(counted) > 3 else ''} are counted "
            "voxels (written before volumetry gave partial-volume estimates), which new rows would not compare "
            "with. Use another --out folder, or move volumetry.csv and volumetry.json away to measure them again"
        )
    return rows


def _results_on_disk(out_dir: Path) -> set[str]:
    """Output names whose label volume is in ``out_dir``."""
    if not out_dir.is_dir():
        return set()
    return {p.name[: -len(LABELS_SUFFIX)] for p in out_dir.glob(f"*{LABELS_SUFFIX}")}


def _recorded_results(out_dir: Path) -> dict[str, str]:
    """Input path -> output name, for the label volumes in ``out_dir`` whose record names their
    input (also those of a run stopped before its tables were written)."""
    found = {}
    for name in sorted(_results_on_disk(out_dir)):
        source = recorded_input(out_dir / f"{name}{LABELS_SUFFIX}")
        if source is not None:
            found.setdefault(source, name)
    return found


def _check_inputs(cfg: Config, files: Sequence[Path], truths: dict[Path, Path | None], assume_voxel_size) -> None:
    """Every input's header, and every label file against it and the label map, before the
    batch writes anything: a bad file late in a batch stops it before it starts."""
    labels_of = Labels.from_config(cfg)
    for path in files:
        like = check_volume_file(path, assume_voxel_size)
        if truths[path] is not None:
            labels_of.to_classes(load_labels(truths[path], like=like), str(truths[path]))


_TABLES = ("volumetry.csv", "volumetry.json", "run.json")
_METRIC_TABLES = ("metrics.csv", "metrics.json")


class _Records:
    """The tables and run record of a batch, brought up to date after every finished volume."""

    def __init__(self, out_dir: Path, dirs: Sequence[Path], old_rows: list[dict], with_metrics: bool):
        self.out_dir, self.dirs = out_dir, dirs
        self.rows, self.ids = list(old_rows), {}
        self.metric_rows = read_rows(out_dir / "metrics.json", "input") if with_metrics else None

    def add(self, result: VolumeResult) -> None:
        ident = {"input": str(result.source.resolve()), "sha256": volume_sha256(result.source)}
        self.ids[result.name] = ident
        self.rows = merge_rows(self.rows, [{"subject": result.name, **ident, **result.volumetry}], "input")
        write_table(self.rows, self.out_dir / "volumetry.csv")
        if self.metric_rows is not None:
            self.metric_rows = merge_rows(
                self.metric_rows, [{"subject": result.name, **ident, **result.metrics}], "input"
            )
            write_table(self.metric_rows, self.out_dir / "metrics.csv", with_summary=True)
        write_run_record(self.out_dir, self.dirs, self.ids)


def _volume_files(inputs: Sequence[str | os.PathLike[str]]) -> list[Path]:
    """The volume files that ``inputs`` name (files, or folders of them), each once; the
    tool's own results are not inputs (a folder's are skipped, a file of them is refused)."""
    files: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            ours = result_files(item)
            found = sorted(p for p in item.iterdir() if is_volume_file(p) and p.name not in ours)
            if not found:
                held = f" (only the {len(ours)} results hippo_utils wrote there)" if ours else ""
                raise ValueError(f"{item}: no .nii, .nii.gz or .img volumes in this folder{held}")
            files.extend(found)
        elif item.exists():
            if recorded_input(item) is not None:
                raise ValueError(f"{item} is a result hippo_utils wrote, not a scan; give the scans it was made from")
            files.append(item)
        else:
            raise FileNotFoundError(f"input not found: {item}")
    unique = {f.resolve(): f for f in reversed(files)}  # a file named twice is segmented once
    return [f for f in files if unique.get(f.resolve()) is f]


def _check_same_models(out_dir: Path, dirs: Sequence[Path]) -> None:
    """Refuse to add results of one model to a folder that holds another's."""
    run = out_dir / "run.json"
    if not run.is_file():
        return
    record = json.loads(run.read_text())
    before = [e["model_dir"] for e in record.get("ensemble", [])] or [record.get("model_dir")]
    now = [str(d.resolve()) for d in dirs]
    if before != now:
        raise ValueError(
            f"--out {out_dir} holds the results of {', '.join(map(str, before))}; those of "
            f"{', '.join(now)} would mix with them. Choose another --out"
        )


def write_run_record(out_dir: Path, model_dirs: Sequence[str | os.PathLike[str]], inputs: dict[str, dict]) -> Path:
    """``run.json`` beside the predictions: the package version, the model folder(s) and
    what produced each (its provenance.json), and the inputs by output name with their path
    and sha256 (added to those of earlier runs into the same folder)."""
    run = out_dir / "run.json"
    earlier = json.loads(run.read_text()).get("inputs", {}) if run.is_file() else {}
    dirs = [Path(d).resolve() for d in model_dirs]
    record = {
        "hippo_utils": __version__,
        "model_dir": str(dirs[0]),
        "model_provenance": read_provenance(dirs[0]),
        **(
            {"ensemble": [{"model_dir": str(d), "model_provenance": read_provenance(d)} for d in dirs]}
            if len(dirs) > 1
            else {}
        ),
        "inputs": {**earlier, **{name: {"path": i["input"], "sha256": i["sha256"]} for name, i in inputs.items()}},
    }
    return write_json(run, record)


# ------------------------------------------------------------------------ folders
@dataclass
class FolderResult:
    output_dir: Path
    names: list[str]
    merged_dir: Path | None


def infer_folder(
    model,
    cfg: Config,
    images_dir: str | os.PathLike[str] | None = None,
    output_dir: str | os.PathLike[str] | None = None,
    progress: bool = True,
) -> FolderResult:
    """Predict every image of a folder ([infer] images_dir), in batches.

    Writes, at each input's own size: the predicted mask coloured by ``rgb_map`` as
    ``output_dir/NAME.png`` (as the original did), an overlay on the input in
    ``output_dir/overlays/``, and, where a ground-truth mask exists, an
    image | ground truth | prediction strip in ``merged_dir``.
    """
    images_dir = Path(images_dir or cfg.infer.images_dir)
    output_dir = Path(output_dir or cfg.infer.output_dir)
    masks_dir = cfg.infer.masks_dir or images_dir.parent / "masks"
    merged_dir = cfg.infer.merged_dir or output_dir / "merged"
    check_outputs_apart(
        [("[infer] output_dir", output_dir), ("[infer] merged_dir", merged_dir)],
        [("[infer] images_dir", images_dir), ("[infer] masks_dir", masks_dir)],
    )
    with folder_locks([(output_dir, "infer"), (merged_dir, "infer")]):
        return _infer_folder(model, cfg, images_dir, output_dir, masks_dir, merged_dir, progress)


def _folder_image(path: Path, cfg: Config) -> tuple[np.ndarray, np.ndarray]:
    """An image of a folder as the model takes it, 0..1, and the grey picture the masks are drawn on.

    As training decodes it (:func:`hippo_utils.data.dataset.make_dataset`): a three-channel model
    gets the file's three channels in ``[image] color_order`` (a 2.5D model's neighbours among
    them, a grey image standing for its own neighbours), a one-channel model its grey.
    """
    image = open_image(path)
    if image.mode in HIGH_DEPTH_MODES:  # 16-bit or float grey: scaled as derivation scales its sources
        grey = normalize_intensity(read_grey_values(path), cfg.derive.intensity_percentiles).astype(np.float32)
        return (np.repeat(grey[..., None], 3, axis=2) if cfg.model.image_channels == 3 else grey), grey
    if cfg.model.image_channels != 3:
        grey = np.asarray(image.convert("L"), np.float32) / 255.0
        return grey, grey
    rgb = np.asarray(image.convert("RGB"), np.float32) / 255.0
    # a 2.5D image's centre channel is the slice itself
    grey = rgb[..., 1] if cfg.derive.context_slices else np.asarray(image.convert("L"), np.float32) / 255.0
    return (rgb[..., ::-1] if cfg.image.color_order == "BGR" else rgb), grey


def _infer_folder(
    model, cfg: Config, images_dir: Path, output_dir: Path, masks_dir: Path, merged_dir: Path, progress: bool
) -> FolderResult:
    """The body of :func:`infer_folder`, run while it holds the output folders' locks."""
    if not images_dir.is_dir():
        raise FileNotFoundError(f"[infer] images_dir not found: {images_dir}")
    ours = result_files(images_dir)
    paths = sorted(
        p
        for p in images_dir.iterdir()
        if p.suffix.lower() in IMAGE_SUFFIXES and p.name not in ours and not p.name.startswith(".")
    )
    if not paths:
        raise ValueError(f"{images_dir}: no .png or .jpg images to segment")
    by_stem: dict[str, Path] = {}
    for path in paths:  # results are named by the stem; case apart, as on macOS and Windows
        other = by_stem.setdefault(path.stem.lower(), path)
        if other is not path:
            raise ValueError(
                f"{images_dir}: {other.name} and {path.name} would both be written as {path.stem}.png; rename one"
            )
    for path in paths:  # nothing of the user's is replaced; refused before any is written
        check_may_write(output_dir / f"{path.stem}.png")
        check_may_write(output_dir / "overlays" / f"{path.stem}.png")
        check_may_write(merged_dir / f"{path.stem}.png")
    colours = Labels.from_config(cfg).colours
    arrays, greys = zip(*(_folder_image(p, cfg) for p in paths), strict=True)
    geoms = [image_geometry(g.shape, cfg.image_size) for g in greys]
    inputs = model_batch(
        np.concatenate([model_slices(a[None], geom) for geom, a in zip(geoms, arrays, strict=True)]),
        cfg.model.image_channels,
    )
    probs = predict_batches(
        model, inputs, cfg.infer.batch_size, progress, desc=images_dir.name, flip=cfg.infer.flip_tta
    )
    for path, grey, geom, prob in zip(paths, greys, geoms, probs, strict=True):
        pred = colours[classes_from_probs(geom, prob)]
        grey8 = np.rint(grey * 255).astype(np.uint8)
        source = str(path.resolve())
        atomic_write_bytes(output_dir / f"{path.stem}.png", png_bytes(pred), input=source)
        atomic_write_bytes(
            output_dir / "overlays" / f"{path.stem}.png", png_bytes(pictures.overlay(grey8, pred)), input=source
        )
        truth_path = next(
            (masks_dir / f"{path.stem}{s}" for s in IMAGE_SUFFIXES if (masks_dir / f"{path.stem}{s}").exists()), None
        )
        if truth_path is not None:
            truth = Image.fromarray(read_rgb(truth_path))
            truth = np.asarray(truth.resize(grey8.shape[::-1], Image.Resampling.NEAREST))
            strip = np.concatenate(
                [
                    np.repeat(grey8[..., None], 3, axis=2),
                    pictures.overlay(grey8, truth),
                    pictures.agreement(grey8, truth, pred),
                ],
                axis=1,
            )
            atomic_write_bytes(merged_dir / f"{path.stem}.png", png_bytes(strip), input=source)
    return FolderResult(output_dir, [p.stem for p in paths], merged_dir if masks_dir.is_dir() else None)
