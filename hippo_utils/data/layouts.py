"""Finding subjects in the supported source layouts (:data:`LAYOUTS`), paired by name.

- ``hfh``: the Kaggle HFH set: ``Train/HFH_NNN.img`` with
  ``Train/Labels/HFH_NNN_Hipp_Labels.img``, unlabelled subjects in ``Test/``.
  The folder may sit one level down (as the Kaggle zip unpacks).
- ``msd``: the Medical Segmentation Decathlon: ``imagesTr/``, ``labelsTr/``,
  ``dataset.json``, unlabelled ``imagesTs/``. macOS ``._`` files are skipped.
- ``pairs``: ``images/NAME.nii.gz`` with ``labels/NAME.nii.gz``.
- ``slices``: 2D slices already cut, ``images/NAME.png|jpg`` with ``masks/NAME.png|jpg``
  (the seed format of the original system), possibly one level down (``test/images``).
  The subject is read from the name: ``HFH_NNN`` where present, else the part before
  the first ``_``.

Images and labels are always paired by subject name, never by listing order.

Each layout is one entry of :data:`LAYOUTS` (how to detect it, how to find its subjects,
2D or 3D); a new layout is one :func:`register_layout` call plus its test (a built-in one
here, with its line in this docstring and in the registry test's list of layouts);
``tests/test_layouts_registry.py`` adds one as a worked example.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from hippo_utils.core.ownership import result_files
from hippo_utils.core.png import IMAGE_SUFFIXES
from hippo_utils.data.volumes import VOLUME_SUFFIXES, is_volume_file, strip_volume_suffix

logger = logging.getLogger(__name__)

HFH_LABEL_SUFFIX = "_Hipp_Labels"


@dataclass(frozen=True)
class Subject:
    """One subject: its image file and, when labelled, its label file."""

    name: str
    image: Path
    label: Path | None = None


@dataclass(frozen=True)
class SourceSet:
    """The subjects found in a source folder."""

    layout: str
    root: Path
    labelled: tuple[Subject, ...]
    unlabelled: tuple[Subject, ...]

    @property
    def slices(self) -> bool:
        """2D slices already cut (the ``slices`` layout), not volumes."""
        return LAYOUTS[self.layout].slices


def _volumes_by_name(folder: Path, strip: str = "") -> dict[str, Path]:
    """Map subject name -> volume file in ``folder``, refusing duplicate names."""
    found: dict[str, Path] = {}
    ours = result_files(folder)  # results of an earlier run are not subjects
    for path in sorted(folder.iterdir()):
        if path.is_dir() or path.name in ours:
            continue
        if not is_volume_file(path):
            if not path.name.lower().endswith(".hdr") and not path.name.startswith("."):
                logger.debug("skipping non-volume file %s", path)
            continue
        name = strip_volume_suffix(path.name)
        if strip and name.endswith(strip):
            name = name[: -len(strip)]
        if name in found:
            raise ValueError(
                f"{folder}: duplicate subject ID {name!r}: {found[name].name} and "
                f"{path.name}; keep one file per subject"
            )
        found[name] = path
    return found


NNUNET_CHANNEL = re.compile(r"^(.+)_(\d{4})$")  # nnU-Net's images: NAME_0000.nii.gz beside labels NAME.nii.gz


def _strip_channel(images: dict[str, Path], labels: dict[str, Path], strict: bool = True) -> dict[str, Path]:
    """Images named the nnU-Net way (``NAME_0000``, one file per channel) under their subject's
    name, when every image carries such a suffix and the labels do not. Not ``strict`` (images
    without labels to pair with), several "channels" leave the names as they are.

    Raises:
        ValueError: a subject has more channels than ``_0000`` (this tool reads one T1w image).
    """
    split = {name: NNUNET_CHANNEL.match(name) for name in images}
    if not images or not all(split.values()) or set(images) & set(labels):
        return images
    channels: dict[str, dict[str, Path]] = {}
    for name, match in split.items():
        channels.setdefault(match[1], {})[match[2]] = images[name]
    if not all("0000" in found for found in channels.values()):
        return images  # names that merely end in four digits
    several = sorted(subject for subject, found in channels.items() if len(found) > 1)
    if several and not strict:
        return images
    if several:
        found = channels[several[0]]
        raise ValueError(
            f"{found['0000'].parent}: {several[0]} has the channels {', '.join(sorted(found))} "
            f"({len(several)} subjects have several): only single-channel images (NAME_0000, "
            "a T1w scan) are supported; keep the _0000 files only"
        )
    stripped = {subject: found["0000"] for subject, found in channels.items()}
    return stripped if not labels or set(stripped) & set(labels) else images


def _pair(images: dict[str, Path], labels: dict[str, Path], where: str, skip_unpaired: bool) -> list[Subject]:
    images = _strip_channel(images, labels)
    missing_label = sorted(set(images) - set(labels))
    missing_image = sorted(set(labels) - set(images))
    if (missing_label or missing_image) and not skip_unpaired:
        parts = []
        if missing_label:
            parts.append(f"images without a label: {', '.join(missing_label)}")
        if missing_image:
            parts.append(f"labels without an image: {', '.join(missing_image)}")
        raise ValueError(
            f"{where}: {'; '.join(parts)}. Images and labels are paired by name; "
            "fix the names, remove the strays, or set [derive] skip_unpaired = True"
        )
    for name in missing_label + missing_image:
        logger.warning("%s: skipping unpaired subject %s", where, name)
    return [Subject(n, images[n], labels[n]) for n in sorted(set(images) & set(labels))]


def _find_dir(root: Path, name: str) -> Path | None:
    """``root/name`` or ``root/*/name`` (case-insensitive), for zips that add a level."""
    for base in [root, *sorted(p for p in root.iterdir() if p.is_dir())]:
        for child in base.iterdir() if base.is_dir() else ():
            if child.is_dir() and child.name.lower() == name.lower():
                return child
    return None


def slice_subject(name: str) -> str:
    """Subject ID of a 2D slice file name: ``10045_HFH_003.jpg`` -> ``HFH_003``."""
    stem = Path(name).stem
    m = re.search(r"HFH_\d+", stem, flags=re.IGNORECASE)
    return m.group(0).upper() if m else stem.split("_")[0]


def _slice_dirs(root: Path) -> tuple[Path, Path] | None:
    """(images, masks) folders of a 2D slice set at ``root`` or one level down."""
    for base in [root, *sorted(p for p in root.iterdir() if p.is_dir())]:
        if (base / "images").is_dir() and (base / "masks").is_dir():
            files = [p for p in (base / "images").iterdir() if p.suffix.lower() in IMAGE_SUFFIXES]
            if files:
                return base / "images", base / "masks"
    return None


Found = tuple[list[Subject], dict[str, Path]]  # the labelled subjects, and unlabelled name -> image


@dataclass(frozen=True)
class Layout:
    """A source layout: ``detect(root)`` says whether a folder has it, ``find(root,
    skip_unpaired)`` finds its subjects, ``expects`` says what it looks like (for errors);
    ``slices``: the folder holds 2D slices already cut, not volumes; ``detect_rank``: where
    it is tried when the layout is ``auto`` (lowest first)."""

    name: str
    expects: str
    detect: Callable[[Path], bool]
    find: Callable[[Path, bool], Found]
    slices: bool = False
    detect_rank: int = 0


# Every supported layout, by [derive] layout name. The one place the names are written:
# the config check, detection, the errors and derivation all read it.
LAYOUTS: dict[str, Layout] = {}


def register_layout(layout: Layout) -> Layout:
    """Make ``[derive] layout = layout.name`` available (and detected by ``auto``)."""
    LAYOUTS[layout.name] = layout
    return layout


def _hfh_detect(root: Path) -> bool:
    train = _find_dir(root, "Train")
    return train is not None and _find_dir(train, "Labels") is not None


def _hfh_find(root: Path, skip_unpaired: bool) -> Found:
    train = _find_dir(root, "Train")
    labels_dir = _find_dir(train, "Labels") if train else None
    if train is None or labels_dir is None:
        raise ValueError(f"{root}: not the hfh layout: no Train/ folder with Train/Labels/ inside")
    labelled = _pair(_volumes_by_name(train), _volumes_by_name(labels_dir, HFH_LABEL_SUFFIX), str(train), skip_unpaired)
    test = _find_dir(train.parent, "Test")
    return labelled, (_volumes_by_name(test) if test is not None else {})


def _msd_find(root: Path, skip_unpaired: bool) -> Found:
    images, labels = _find_dir(root, "imagesTr"), _find_dir(root, "labelsTr")
    if images is None or labels is None:
        raise ValueError(f"{root}: not the msd layout: imagesTr/ and labelsTr/ are both needed")
    if not (images.parent / "dataset.json").exists():
        logger.info("%s: no dataset.json beside imagesTr/; pairing by file name", images.parent)
    labelled = _pair(_volumes_by_name(images), _volumes_by_name(labels), str(images.parent), skip_unpaired)
    tests = _find_dir(root, "imagesTs")
    return labelled, (_strip_channel(_volumes_by_name(tests), {}, strict=False) if tests is not None else {})


def _pairs_detect(root: Path) -> bool:
    return (root / "images").is_dir() and (root / "labels").is_dir()


def _pairs_find(root: Path, skip_unpaired: bool) -> Found:
    if not _pairs_detect(root):
        raise ValueError(f"{root}: not the pairs layout: images/ and labels/ are both needed")
    return _pair(_volumes_by_name(root / "images"), _volumes_by_name(root / "labels"), str(root), skip_unpaired), {}


def _slices_find(root: Path, skip_unpaired: bool) -> Found:
    dirs = _slice_dirs(root)
    if dirs is None:
        raise ValueError(f"{root}: not the slices layout: images/ and masks/ with 2D files needed")

    def by_name(folder: Path) -> dict[str, Path]:
        ours = result_files(folder)  # a derived dataset's or an inference's own pictures
        return {
            p.stem: p
            for p in sorted(folder.iterdir())
            if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".") and p.name not in ours
        }

    return _pair(by_name(dirs[0]), by_name(dirs[1]), str(dirs[0].parent), skip_unpaired), {}


register_layout(
    Layout("hfh", "Train/HFH_NNN.img with Train/Labels/HFH_NNN_Hipp_Labels.img", _hfh_detect, _hfh_find, detect_rank=3)
)
register_layout(
    Layout(
        "msd",
        "imagesTr/, labelsTr/, dataset.json",
        lambda root: _find_dir(root, "imagesTr") is not None,
        _msd_find,
        detect_rank=0,
    )
)
register_layout(
    Layout("pairs", "images/NAME.nii.gz with labels/NAME.nii.gz", _pairs_detect, _pairs_find, detect_rank=1)
)
register_layout(
    Layout(
        "slices",
        "images/ and masks/ with 2D .png/.jpg files of the same names",
        lambda root: _slice_dirs(root) is not None,
        _slices_find,
        slices=True,
        detect_rank=2,
    )
)


def detect_layout(root: Path) -> str:
    """Guess the layout of ``root``; raise a ValueError that lists what was looked for."""
    for layout in sorted(LAYOUTS.values(), key=lambda x: x.detect_rank):
        if layout.detect(root):
            return layout.name
    expected = [f"{x.name} ({x.expects})" for x in LAYOUTS.values()]
    raise ValueError(f"{root}: unrecognised layout. Expected one of: {', '.join(expected[:-1])} or {expected[-1]}")


def find_subjects(source_dir: str | os.PathLike[str], layout: str = "auto", skip_unpaired: bool = False) -> SourceSet:
    """Find and pair the subjects of a source folder.

    Args:
        source_dir: the folder holding the data set.
        layout: ``auto`` or one of :data:`LAYOUTS`.
        skip_unpaired: log and skip images without labels (and the reverse) instead of
            raising.

    Raises:
        FileNotFoundError: the folder is missing.
        ValueError: empty folder, unknown layout, duplicate IDs, unpaired files.
    """
    root = Path(source_dir)
    if not root.is_dir():
        hint = " (an environment variable in the path is not set)" if "$" in str(root) else ""
        raise FileNotFoundError(f"source folder not found: {root}{hint}")
    if not any(root.iterdir()):
        raise ValueError(f"{root}: the source folder is empty")
    if layout == "auto":
        layout = detect_layout(root)
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; use auto, {', '.join(LAYOUTS)}")
    labelled, unlabelled = LAYOUTS[layout].find(root, skip_unpaired)
    if not labelled:
        raise ValueError(f"{root}: no labelled subjects found in the {layout} layout")
    return SourceSet(layout, root, tuple(labelled), tuple(Subject(n, p) for n, p in sorted(unlabelled.items())))


def find_label_file(labels_dir: Path, name: str) -> Path:
    """The label file of subject ``name`` in ``labels_dir``: the same name, or HFH's
    ``NAME_Hipp_Labels``, in any volume format.

    Raises:
        FileNotFoundError: none, naming what was looked for.
    """
    for stem in (name, f"{name}{HFH_LABEL_SUFFIX}"):
        for suffix in VOLUME_SUFFIXES:
            if (labels_dir / f"{stem}{suffix}").exists():
                return labels_dir / f"{stem}{suffix}"
    raise FileNotFoundError(
        f"--labels {labels_dir}: no label file for {name} (looked for {name}.nii.gz, {name}{HFH_LABEL_SUFFIX}.img, ...)"
    )
