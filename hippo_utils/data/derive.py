"""Deriving the 2D image/mask training set from labelled MRI volumes.

Output (the layout the trainer reads)::

    OUT/{train,valid,test}/{images,masks}/SUBJECT_SLICE.png
    OUT/mini_test/{images,masks}/...      a few test slices for training previews
    OUT/manifest.csv                      one row per slice: subject, split, geometry...
    OUT/dataset.json                      settings, fingerprint, sources and checksums
    OUT/statistics.png, OUT/samples.png   images per split; sample images and masks

Each volume is cropped to the window around the hippocampi ([derive] crop, learned from
the training split's labels), resampled to the model's size and cut into slices along
[derive] plane, one slice or three neighbouring ones per image ([derive] context_slices).
Subjects are split, not slices (``split_by = "slice"`` exists only for notebook 01's
lesson on leakage). Every labelled slice is kept, plus a share of label-free slices that
contain tissue. The whole folder is built under a temporary name and renamed into
place, so an interrupted run leaves no partial dataset, and a re-run with the same
settings and sources changes nothing.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hippo_utils._version import __version__
from hippo_utils.core.config import Config
from hippo_utils.core.files import atomic_dir, check_replaceable, sha256_file
from hippo_utils.core.locks import folder_lock
from hippo_utils.core.png import png_bytes, read_grey, read_grey_values, read_rgb
from hippo_utils.core.tables import write_csv, write_json
from hippo_utils.data.labels import Labels
from hippo_utils.data.layouts import SourceSet, Subject, find_subjects, slice_subject
from hippo_utils.data.preprocess import (
    crop_window,
    display_stack,
    head_centre,
    image_geometry,
    label_box_mm,
    model_slices,
    normalize_intensity,
    plane_axes,
    slice_geometry,
)
from hippo_utils.data.volumes import load_labels, load_volume

logger = logging.getLogger(__name__)

SPLITS = ("train", "valid", "test")
DATASET_KIND = "derived-dataset"  # its record (hippo_utils.core.ownership): only such a folder is replaced
MANIFEST_COLUMNS = (
    "subject",
    "split",
    "slice_index",
    "image",
    "mask",
    "source",
    "label_source",
    "has_label",
    "label_pixels",
    "spacing",
    "source_shape",
    "plane",
    "axis",
    "row_axis",
    "col_axis",
    "flip_rows",
    "flip_cols",
    "in_shape",
    "pixel_mm",
    "resized",
    "pad",
    "out_size",
    "crop",
)


@dataclass(frozen=True)
class DeriveResult:
    """What :func:`derive_dataset` did."""

    output_dir: Path
    layout: str
    counts: dict[str, int]  # slices per split
    subjects: dict[str, list[str]]  # subject names per split
    skipped: bool  # True when an identical dataset was already there


def split_subjects(names: list[str], fractions: tuple[float, float, float], seed: int) -> dict[str, list[str]]:
    """Assign whole subjects to train/valid/test, reproducibly from ``seed``.

    The names are sorted first, so the split does not depend on listing order. Every
    split with a non-zero fraction gets at least one subject when there are enough.
    """
    order = sorted(names)
    perm = [order[i] for i in np.random.default_rng(seed).permutation(len(order))]
    n = len(perm)
    counts = [int(round(f * n)) for f in fractions]
    for i in (1, 2):  # valid and test get one subject each if asked for and possible
        if fractions[i] > 0 and counts[i] == 0 and n - sum(counts) + counts[0] > 1:
            counts[i] = 1
    counts[0] = n - counts[1] - counts[2]
    if counts[0] < 1:
        raise ValueError(f"[derive] split {fractions} leaves no training subject out of {n}")
    out, start = {}, 0
    for split, c in zip(SPLITS, counts, strict=True):
        out[split] = sorted(perm[start : start + c])
        start += c
    return out


def _source_key(path: Path, source_dir: Path) -> str:
    """``path`` inside ``source_dir``, as the key of its checksum."""
    try:
        return path.resolve().relative_to(Path(source_dir).resolve()).as_posix()
    except ValueError:
        return str(path)


def fingerprint(cfg: Config, sources: SourceSet, checksums: dict[str, str]) -> str:
    """Hash of everything that determines the derived files."""
    d = cfg.derive
    settings = {
        "layout": sources.layout,
        "plane": d.plane,
        "image_size": list(cfg.image_size),
        "split": list(d.split),
        "split_by": d.split_by,
        "seed": d.seed,
        "empty_slice_ratio": d.empty_slice_ratio,
        "label_map": sorted(d.label_map.items()),
        "percentiles": list(d.intensity_percentiles),
        "mini_test_size": d.mini_test_size,
        "rgb_map": sorted(cfg.mask.rgb_map.items()),
        "sources": sorted(checksums.items()),
        # How masks are resized (preprocess.resize_labels); nearest-neighbour datasets are stale.
        "label_resize": "filtered",
    }
    if d.context_slices:  # only when set, so datasets derived before the key existed stay valid
        settings["context_slices"] = d.context_slices
    if d.context_step != 1:
        settings["context_step"] = d.context_step
    if d.crop != "none" or d.crop_box_mm is not None:
        settings["crop"] = [d.crop, d.crop_margin_mm, d.crop_box_mm]
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def _select_slices(
    classes: np.ndarray, tissue: np.ndarray, ratio: float, rng: np.random.Generator
) -> tuple[list[int], list[int]]:
    """Indices of labelled slices, and of label-free slices with tissue to keep."""
    area = classes.reshape(classes.shape[0], -1).astype(bool).sum(axis=1)
    labelled = np.nonzero(area > 0)[0]
    candidates = np.nonzero((area == 0) & tissue)[0]
    k = min(len(candidates), int(round(ratio * len(labelled))))
    empty = np.sort(rng.choice(candidates, size=k, replace=False)) if k else np.array([], int)
    return labelled.tolist(), empty.tolist()


def _slice_splitter(cfg: Config, name: str) -> Callable[[int], str]:
    """For ``split_by = "slice"``: a split drawn for each slice of subject ``name`` on its own."""
    rng = np.random.default_rng([cfg.derive.seed, zlib.crc32(name.encode()), 1])
    return lambda _index: SPLITS[int(rng.choice(len(SPLITS), p=cfg.derive.split))]


def _write_pair(out: Path, split: str, stem: str, image8: np.ndarray, classes: np.ndarray, labels: Labels) -> dict:
    """Write one model-size image (uint8, H x W x C) and its mask (classes, coloured by
    [mask] rgb_map); their manifest columns."""
    img_rel, mask_rel = f"{split}/images/{stem}.png", f"{split}/masks/{stem}.png"
    (out / img_rel).write_bytes(png_bytes(image8[..., 0] if image8.shape[-1] == 1 else image8))
    (out / mask_rel).write_bytes(png_bytes(labels.colours[classes]))
    return {
        "split": split,
        "image": img_rel,
        "mask": mask_rel,
        "has_label": int(classes.any()),
        "label_pixels": int(np.count_nonzero(classes)),
    }


def _derive_subject(
    subject: Subject,
    split: Callable[[int], str],
    cfg: Config,
    out: Path,
    labels: Labels,
    box: tuple[float, float, float, float] | None = None,
) -> list[dict]:
    d = cfg.derive
    volume = load_volume(subject.image)
    classes_src = labels.to_classes(load_labels(subject.label, like=volume), str(subject.label))
    normalised = normalize_intensity(volume, d.intensity_percentiles)
    geom = slice_geometry(volume, d.plane, cfg.image_size, crop_mm=box, normalised=normalised)
    norm = geom.orient(normalised)
    classes = geom.orient(classes_src)
    tissue = (norm > 0.1).reshape(norm.shape[0], -1).mean(axis=1) > 0.05
    rng = np.random.default_rng([d.seed, zlib.crc32(subject.name.encode())])
    keep_labelled, keep_empty = _select_slices(classes, tissue, d.empty_slice_ratio, rng)
    kept = sorted(keep_labelled + keep_empty)
    images = model_slices(norm, geom, d.context_slices, d.context_step, indices=kept)
    rows = []
    for idx, image8 in zip(kept, images, strict=True):
        mask_cls = geom.to_model(classes[idx], is_label=True)
        rows.append(
            {
                "subject": subject.name,
                "slice_index": idx,
                "source": str(subject.image),
                "label_source": str(subject.label),
                **_write_pair(out, split(idx), f"{subject.name}_{idx:03d}", image8, mask_cls, labels),
                "spacing": "x".join(f"{s:g}" for s in volume.spacing),
                "source_shape": "x".join(str(s) for s in volume.shape),
                **geom.as_row(),
            }
        )
    return rows


def _derive_slice_pair(
    subject: Subject, split: Callable[[int], str], cfg: Config, out: Path, labels: Labels, box: None = None
) -> list[dict]:
    """One 2D image/mask pair of the ``slices`` layout -> a model-size pair."""
    image = read_grey_values(subject.image)  # a 16-bit slice keeps its precision
    mask = read_rgb(subject.label)
    if mask.shape[:2] != image.shape:
        raise ValueError(
            f"{subject.label}: mask size {mask.shape[1]}x{mask.shape[0]} differs from "
            f"its image {subject.image.name} ({image.shape[1]}x{image.shape[0]})"
        )
    # External masks are often JPEG or resized: each pixel takes the nearest rgb_map colour.
    classes = labels.mask_to_classes(mask, str(subject.label), exact=False)
    geom = image_geometry(image.shape, cfg.image_size)
    norm = normalize_intensity(image, cfg.derive.intensity_percentiles)
    cls = geom.to_model(classes, is_label=True)
    return [
        {
            "subject": slice_subject(subject.name),
            "slice_index": 0,
            "source": str(subject.image),
            "label_source": str(subject.label),
            **_write_pair(out, split(0), subject.name, model_slices(norm[None], geom)[0], cls, labels),
            "spacing": "1x1x1",
            "source_shape": f"{image.shape[0]}x{image.shape[1]}",
            **geom.as_row(),
        }
    ]


def learn_crop(cfg: Config, subjects: Sequence[Subject], labels: Labels) -> tuple[float, float, float, float]:
    """[derive] crop = "auto": the window, in mm from each head's centre, that holds every
    labelled voxel of ``subjects`` (the training split) with [derive] crop_margin_mm to spare.

    Raises:
        ValueError: none of them has a label.
    """
    d = cfg.derive
    boxes = []
    for subject in subjects:
        volume = load_volume(subject.image)
        classes = labels.to_classes(load_labels(subject.label, like=volume), str(subject.label))
        axes = plane_axes(volume, d.plane)
        centre = head_centre(display_stack(normalize_intensity(volume, d.intensity_percentiles), *axes))
        box = label_box_mm(display_stack(classes, *axes), centre, (volume.spacing[axes[1]], volume.spacing[axes[2]]))
        if box is not None:
            boxes.append(box)
    if not boxes:
        raise ValueError(
            f'{cfg.path}: [derive] crop = "auto" learns its window from the training subjects\' '
            'labels, and none of them has one; set crop = "none"'
        )
    window = crop_window(boxes, d.crop_margin_mm, cfg.image_size)
    logger.info(
        "crop window %s mm from the head's centre (top, bottom, left, right), from %d training subjects",
        window,
        len(boxes),
    )
    return window


def crop_box(cfg: Config) -> tuple[float, float, float, float] | None:
    """The window the model sees ([derive] crop): ``crop_box_mm`` when set (a model folder's
    config has it), else the one derivation learned (its dataset.json), None for whole slices.

    Raises:
        FileNotFoundError, ValueError: ``crop = "auto"`` and no derived dataset records a window.
    """
    d = cfg.derive
    if d.crop_box_mm is not None or d.crop == "none":
        return d.crop_box_mm
    box = read_dataset_meta(d.output_dir).get("crop_box_mm")
    if box is None:
        raise ValueError(
            f"{d.output_dir / 'dataset.json'}: no crop window recorded, but [derive] crop = "
            '"auto"; derive the dataset again'
        )
    return tuple(float(v) for v in box)


def _choose_mini_test(rows: list[dict], n: int) -> list[dict]:
    """Up to ``n`` labelled test slices, spread over subjects, largest label area first."""
    pool = [r for r in rows if r["split"] == "test" and r["has_label"]] or [
        r for r in rows if r["split"] == "valid" and r["has_label"]
    ]
    by_subject: dict[str, list[dict]] = {}
    for r in sorted(pool, key=lambda r: (-r["label_pixels"], r["image"])):
        by_subject.setdefault(r["subject"], []).append(r)
    chosen: list[dict] = []
    while len(chosen) < n and any(by_subject.values()):
        for name in sorted(by_subject):
            if by_subject[name] and len(chosen) < n:
                chosen.append(by_subject[name].pop(0))
    return sorted(chosen, key=lambda r: r["image"])


def read_manifest(dataset_dir: str | Path) -> list[dict[str, str]]:
    """The rows of ``dataset_dir/manifest.csv`` as dicts of strings."""
    path = Path(dataset_dir) / "manifest.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found; derive the dataset first (python -m hippo_utils derive CONFIG)")
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def split_volumes(dataset_dir: str | Path, split: str = "test") -> dict[str, tuple[str, str]]:
    """The source volumes of one split of a derived dataset: subject -> (image, labels),
    in subject order; empty for a dataset derived from 2D slices."""
    found: dict[str, tuple[str, str]] = {}
    for r in read_manifest(dataset_dir):
        if r["split"] == split and r["plane"] != "image":
            found.setdefault(r["subject"], (r["source"], r["label_source"]))
    return dict(sorted(found.items()))


def read_dataset_meta(dataset_dir: str | Path) -> dict:
    """A derived dataset's ``dataset.json`` (settings, fingerprint, sources and checksums).

    Raises:
        FileNotFoundError: none there; derive the dataset first.
    """
    path = Path(dataset_dir) / "dataset.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found; derive the dataset first")
    return json.loads(path.read_text())


def dataset_plane(dataset_dir: str | Path) -> str | None:
    """The plane a derived dataset was cut along (its dataset.json), None when unknown."""
    try:
        return read_dataset_meta(dataset_dir).get("plane")
    except (OSError, ValueError):
        return None


def source_of(dataset_dir: str | Path) -> Path:
    """The source folder a derived dataset was made from (recorded in its dataset.json)."""
    return Path(read_dataset_meta(dataset_dir)["source_dir"])


def derive_dataset(cfg: Config, force: bool = False, progress: bool = True) -> DeriveResult:
    """Derive the 2D dataset described by ``cfg.derive``.

    Args:
        cfg: the configuration; [derive] source_dir and output_dir are used.
        force: replace an existing dataset made with other settings or sources (only
            once the new one is complete). Without it such a dataset is never touched, and even
            with it only a dataset this tool made that holds nothing else is replaced: never
            the source, the current or home folder, a folder holding them or a model.
        progress: show a progress bar over subjects.

    Returns:
        A :class:`DeriveResult`; ``skipped`` is True when an identical dataset exists.

    Raises:
        FileNotFoundError, ValueError: bad source folder or files, with the name.
        FileExistsError: a dataset with different settings exists and ``force`` is off, or
            ``output_dir`` cannot be replaced (:class:`~hippo_utils.core.ownership.NotOurs`).
    """
    d = cfg.derive
    if d.source_dir is None:
        raise ValueError(f"{cfg.path}: [derive] source_dir is not set; point it at the volumes")
    sources = find_subjects(d.source_dir, d.layout, d.skip_unpaired)
    if (d.crop != "none" or d.crop_box_mm is not None) and sources.slices:
        raise ValueError(
            f"{cfg.path}: [derive] crop needs volumes (it is placed from the head's centre), but "
            f'{d.source_dir} holds 2D slices (layout "slices"); set crop = "none"'
        )
    if d.context_slices and sources.slices:
        raise ValueError(
            f"{cfg.path}: [derive] context_slices = {d.context_slices} needs volumes, but "
            f'{d.source_dir} holds 2D slices (layout "slices"); set context_slices = 0'
        )
    checksums = {}  # by the path inside source_dir: MSD's image and label files share their names
    for s in sources.labelled:
        for f in (s.image, s.label):
            for part in (f, f.with_suffix(".hdr")) if f.suffix.lower() == ".img" else (f,):
                checksums[_source_key(part, d.source_dir)] = sha256_file(part)
    fp = fingerprint(cfg, sources, checksums)
    with folder_lock(d.output_dir, "derive"):
        return _derive_into(cfg, sources, checksums, fp, force, progress)


def _derive_into(
    cfg: Config, sources: SourceSet, checksums: dict[str, str], fp: str, force: bool, progress: bool
) -> DeriveResult:
    """The body of :func:`derive_dataset`, run while it holds the output folder's lock."""
    d = cfg.derive
    out = d.output_dir
    meta_path = out / "dataset.json"
    inputs = [("the source folder ([derive] source_dir)", d.source_dir), ("the config file", cfg.path)]
    if out.exists():
        try:
            old = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
        except ValueError:
            old = {}
        if old.get("fingerprint") == fp:
            logger.info("%s is up to date (fingerprint %s); nothing to do", out, fp)
            return DeriveResult(out, sources.layout, old["counts"], old["subjects"], True)
        # --force never overrides this: only a dataset this tool made, holding nothing else, is replaced
        check_replaceable(out, DATASET_KIND, inputs, "[derive] output_dir")
        if not force and any(out.iterdir()):
            raise FileExistsError(
                f"{out} already exists and was made with other settings or sources. Choose another "
                "[derive] output_dir, or re-run with --force to replace it (the old one is kept until "
                "the new one is complete)"
            )

    subject_of = {s.name: (slice_subject(s.name) if sources.slices else s.name) for s in sources.labelled}
    split = split_subjects(sorted(set(subject_of.values())), d.split, d.seed)
    split_of = {name: sp for sp, names in split.items() for name in names}
    derive_one = _derive_slice_pair if sources.slices else _derive_subject
    labels = Labels.from_config(cfg)
    box = d.crop_box_mm
    if d.crop == "auto" and box is None:  # from the training subjects alone: nothing of the test set leaks in
        box = learn_crop(cfg, [s for s in sources.labelled if split_of[subject_of[s.name]] == "train"], labels)
    rows: list[dict] = []
    from tqdm.auto import tqdm

    with atomic_dir(out, DATASET_KIND, replace=True, inputs=inputs, what="[derive] output_dir") as tmp:
        for sp in (*SPLITS, "mini_test"):
            (tmp / sp / "images").mkdir(parents=True)
            (tmp / sp / "masks").mkdir(parents=True)
        for subject in tqdm(sources.labelled, desc="deriving slices", unit="subject", disable=not progress):
            # The split of each slice (by its index): the subject's, or drawn slice by slice.
            split_for = (
                _slice_splitter(cfg, subject.name)
                if d.split_by == "slice"
                else lambda _index, sp=split_of[subject_of[subject.name]]: sp
            )
            rows.extend(derive_one(subject, split_for, cfg, tmp, labels, box))
        if d.split_by == "slice":
            logger.warning(
                '[derive] split_by = "slice": test slices have neighbours in training; '
                "the test scores will be inflated (for teaching only)"
            )
            split = {sp: sorted({r["subject"] for r in rows if r["split"] == sp}) for sp in SPLITS}
        for r in _choose_mini_test(rows, d.mini_test_size):
            for key in ("image", "mask"):
                name = Path(r[key]).name
                (tmp / "mini_test" / f"{key}s" / name).write_bytes((tmp / r[key]).read_bytes())
        write_csv(rows, tmp / "manifest.csv", MANIFEST_COLUMNS)
        counts = {sp: sum(r["split"] == sp for r in rows) for sp in SPLITS}
        meta = {
            "fingerprint": fp,
            "hippo_utils_version": __version__,
            "layout": sources.layout,
            "source_dir": str(d.source_dir),
            "config": str(cfg.path),
            "counts": counts,
            "subjects": split,
            "image_size": list(cfg.image_size),
            "plane": d.plane,
            "label_map": {str(k): v for k, v in d.label_map.items()},
            "rgb_map": [[list(c), v] for c, v in cfg.mask.rgb_map.items()],
            "sources_sha256": dict(sorted(checksums.items())),
            "crop_box_mm": list(box) if box is not None else None,
            "config_text": cfg.to_ini(),
        }
        write_json(tmp / "dataset.json", meta)
        from hippo_utils.display import figures

        figures.save_figure(figures.split_statistics(counts, split), tmp / "statistics.png")
        figures.save_figure(figures.sample_grid(sample_slices(tmp, rows)), tmp / "samples.png")
    logger.info("derived %s slices from %d subjects into %s", counts, len(sources.labelled), out)
    return DeriveResult(out, sources.layout, counts, split, False)


def split_summary(rows: list[dict[str, str]]) -> list[dict[str, int | str]]:
    """One row per split: subjects, slices, labelled and label-free slices."""
    table = []
    for sp in SPLITS:
        mine = [r for r in rows if r["split"] == sp]
        labelled = sum(str(r["has_label"]) == "1" for r in mine)
        table.append(
            {
                "split": sp,
                "subjects": len({r["subject"] for r in mine}),
                "slices": len(mine),
                "labelled": labelled,
                "label_free": len(mine) - labelled,
            }
        )
    return table


# ------------------------------------------------------------------- slices to look at
def sample_slices(dataset_dir: str | Path, rows: Sequence[dict], n: int = 6, split: str = "train"):
    """``n`` labelled slices of a split (of any split if it has none), evenly spread over
    the manifest ``rows``, for :func:`hippo_utils.display.figures.sample_grid`."""
    from hippo_utils.display.figures import Slice, SliceSamples

    root = Path(dataset_dir)
    pool = [r for r in rows if r["split"] == split and int(r["has_label"])]
    if not pool:
        pool = [r for r in rows if int(r["has_label"])]
    pick = [pool[i] for i in np.linspace(0, len(pool) - 1, min(n, len(pool))).astype(int)] if pool else []
    slices = [
        Slice(f"{r['subject']} #{r['slice_index']}", read_grey(root / r["image"]), read_rgb(root / r["mask"]))
        for r in pick
    ]
    return SliceSamples(slices, dataset_plane(root), split)


def leakage_example(dataset_dir: str | Path, rows: Sequence[dict]):
    """What a slice-level split would leak, for :func:`hippo_utils.display.figures.split_leakage`:
    the test slice with the most hippocampus whose two neighbours were derived, those
    neighbours, and the training slice of another head most like it (pixel correlation),
    all zoomed on one hippocampus of the test slice.

    Raises:
        ValueError: no such test slice, or no other training subject (a dataset split by
            slice, or cut from 2D slices).
    """
    from scipy import ndimage

    from hippo_utils.display.figures import LeakageExample, Slice
    from hippo_utils.display.pictures import zoom_box

    root = Path(dataset_dir)
    test = [r for r in rows if r["split"] == "test" and int(r["has_label"])]
    train = [r for r in rows if r["split"] == "train" and int(r["has_label"])]
    by_key = {(r["subject"], int(r["slice_index"])): r for r in rows}
    test = sorted(test, key=lambda r: -int(r["label_pixels"]))
    centre = next((r for r in test if all((r["subject"], int(r["slice_index"]) + d) in by_key for d in (-1, 1))), None)
    if centre is None or not any(r["subject"] != centre["subject"] for r in train):
        raise ValueError(
            f"{root}: needs a test slice with hippocampus whose two neighbours were derived, "
            "and a training subject besides (a dataset split by subject, from volumes)"
        )

    def load(r):
        return read_grey(root / r["image"]).astype(np.float32)

    parts, _ = ndimage.label(read_rgb(root / centre["mask"]).any(axis=-1))
    one_side = parts == 1 + np.argmax(np.bincount(parts.ravel())[1:])  # one hippocampus, not both
    box = zoom_box([one_side], one_side.shape, margin=1.0)
    ref = load(centre)[box]

    def corr(r) -> float:
        return float(np.corrcoef(ref.ravel(), load(r)[box].ravel())[0, 1])

    k = int(centre["slice_index"])
    neighbours = [by_key[(centre["subject"], k + d)] for d in (-1, 1)]
    other = max((r for r in train if r["subject"] != centre["subject"]), key=corr)
    shown = [
        (centre, "test slice"),
        (neighbours[0], "its neighbour"),
        (neighbours[1], "its neighbour"),
        (other, "most alike slice\nof another head"),
    ]
    slices = [
        Slice(
            f"{what}\n{r['subject']} #{r['slice_index']}" + ("" if r is centre else f", r = {corr(r):.2f}"),
            load(r)[box].astype(np.uint8),
        )
        for r, what in shown
    ]
    return LeakageExample(slices, dataset_plane(root))
