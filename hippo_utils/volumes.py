"""Reading and writing MRI volumes (Analyze 7.5 and NIfTI) with clear errors.

Orientation: a volume's array axes are mapped to anatomy through its affine
(``nibabel.aff2axcodes``). Analyze 7.5 headers carry no orientation; nibabel gives
them its documented default, an x-flipped (radiological, "LAS") affine, and so does
this package. For the HFH data this makes array axis 1 the anterior-posterior axis,
so coronal slices run along axis 1, as in the Kaggle files.
"""

from __future__ import annotations

import gzip
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

from hippo_utils.fsutil import atomic_path

VOLUME_SUFFIXES = (".nii.gz", ".nii", ".img", ".hdr")


@dataclass
class Volume:
    """A 3D scalar volume with its geometry.

    Attributes:
        data: float32 array of shape (X, Y, Z), in array-axis order.
        affine: 4x4 voxel-to-world (mm) matrix.
        path: the file it came from, or None for an in-memory volume.
        header: the nibabel header, reused when writing results on the same grid.
    """

    data: np.ndarray
    affine: np.ndarray
    path: Path | None = None
    header: nib.Nifti1Header | None = None

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel size in mm along each array axis (column norms of the affine)."""
        return tuple(float(v) for v in np.sqrt((self.affine[:3, :3] ** 2).sum(axis=0)))

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(int(s) for s in self.data.shape)

    @property
    def axcodes(self) -> tuple[str, str, str]:
        return tuple(nib.aff2axcodes(self.affine))


def strip_volume_suffix(name: str) -> str:
    """``"HFH_001.nii.gz"`` -> ``"HFH_001"``."""
    for suffix in VOLUME_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def is_volume_file(path: Path) -> bool:
    """True for ``.nii``, ``.nii.gz`` and Analyze ``.img`` (the ``.hdr`` twin is not counted)."""
    name = path.name.lower()
    return not path.name.startswith(".") and (
        name.endswith(".nii") or name.endswith(".nii.gz") or name.endswith(".img")
    )


def _load_image(path: Path) -> nib.spatialimages.SpatialImage:
    if not path.exists():
        raise FileNotFoundError(f"volume not found: {path}")
    lower = path.name.lower()
    if lower.endswith((".img", ".hdr")):
        twin = path.with_suffix(".hdr" if lower.endswith(".img") else ".img")
        if not twin.exists():
            raise FileNotFoundError(
                f"{path}: Analyze 7.5 volumes are a .hdr/.img pair, and {twin.name} is missing "
                f"beside it in {path.parent}"
            )
    try:
        img = nib.load(str(path))
        # Force the read now so that truncated or corrupt data fails here, with the name.
        img.dataobj[(0,) * len(img.shape)] if img.shape else None
        return img
    except (nib.filebasedimages.ImageFileError, EOFError, OSError, zlib.error,
            gzip.BadGzipFile, ValueError) as exc:
        raise ValueError(f"{path}: cannot read this file as an Analyze or NIfTI volume "
                         f"({type(exc).__name__}: {exc})") from None


def _as_3d(data: np.ndarray, path: Path | str) -> np.ndarray:
    if data.ndim > 3:
        extra = data.shape[3:]
        if all(s == 1 for s in extra):
            data = data.reshape(data.shape[:3])
        else:
            raise ValueError(
                f"{path}: a 3D volume is needed, but this one has shape {data.shape} with a "
                f"4th axis of {data.shape[3]} (a time series or several channels); extract one "
                "3D volume first"
            )
    if data.ndim != 3 or min(data.shape) < 2:
        raise ValueError(f"{path}: a 3D volume is needed, but this one has shape {data.shape} "
                         "(a 2D image?)")
    return data


def load_volume(source: str | os.PathLike[str] | Volume | np.ndarray,
                spacing: tuple[float, float, float] | None = None,
                check_finite: bool = True) -> Volume:
    """Load a 3D volume from a file, or wrap an in-memory array.

    Args:
        source: a ``.nii``/``.nii.gz``/``.img``/``.hdr`` path, a :class:`Volume` (returned
            as is), or an array (with ``spacing`` in mm, default 1 mm isotropic).
        spacing: voxel size for an array source.
        check_finite: refuse volumes with NaN or infinite voxels.

    Returns:
        A :class:`Volume` whose data is float32 and 3D (singleton axes past the third
        are squeezed, as in the 4D Kaggle Analyze files).

    Raises:
        FileNotFoundError: the file, or the ``.img`` of a ``.hdr``, is missing.
        ValueError: unreadable file, not 3D, or non-finite voxels; the message names the file.
    """
    if isinstance(source, Volume):
        return source
    if isinstance(source, np.ndarray):
        data = _as_3d(np.asarray(source, dtype=np.float32), "array")
        affine = np.diag([*(spacing or (1.0, 1.0, 1.0)), 1.0])
        vol = Volume(data, affine)
    else:
        path = Path(source)
        img = _load_image(path)
        try:
            data = np.asarray(img.dataobj, dtype=np.float32)
        except (EOFError, OSError, zlib.error, ValueError) as exc:
            raise ValueError(f"{path}: the voxel data is truncated or corrupt "
                             f"({type(exc).__name__}: {exc})") from None
        data = _as_3d(data, path)
        header = nib.Nifti1Header()
        header.set_data_shape(data.shape)
        if isinstance(img, (nib.Nifti1Image, nib.Nifti2Image)):
            header = img.header.copy()
        vol = Volume(data, np.asarray(img.affine, dtype=np.float64), path, header)
    if check_finite:
        bad = int(np.count_nonzero(~np.isfinite(vol.data)))
        if bad:
            raise ValueError(f"{vol.path or 'array'}: {bad} voxels are NaN or infinite; "
                             "clean the volume (e.g. replace them with 0) first")
    return vol


def load_labels(source: str | os.PathLike[str] | np.ndarray, like: Volume | None = None,
                atol: float = 1e-3) -> np.ndarray:
    """Load an integer label volume, checked against its image when ``like`` is given.

    Float label files holding integers (some MSD files) are rounded, not truncated.

    Raises:
        ValueError: non-integer or negative labels, or a shape/affine that differs from
            ``like``; the message names both files.
    """
    vol = load_volume(source)
    name = vol.path or "label array"
    rounded = np.rint(vol.data)
    if np.abs(vol.data - rounded).max(initial=0) > 1e-3:
        raise ValueError(f"{name}: label values must be integers; found non-integer values")
    if rounded.min(initial=0) < 0 or rounded.max(initial=0) > 255:
        raise ValueError(f"{name}: label values must lie in 0..255, found "
                         f"{rounded.min():g}..{rounded.max():g}")
    labels = rounded.astype(np.uint8)
    if like is not None:
        if labels.shape != like.shape:
            raise ValueError(f"{name}: label shape {labels.shape} differs from image "
                             f"{like.path or 'volume'} shape {like.shape}")
        if not isinstance(source, np.ndarray) and not np.allclose(vol.affine, like.affine, atol=atol):
            raise ValueError(
                f"{name}: label affine differs from the image {like.path or 'volume'}; they "
                f"are not on the same grid.\nimage affine:\n{like.affine}\nlabel affine:\n{vol.affine}"
            )
    return labels


def save_nifti(data: np.ndarray, affine: np.ndarray, path: str | os.PathLike[str],
               header: nib.Nifti1Header | None = None) -> Path:
    """Write ``data`` as NIfTI-1 atomically, keeping the affine (sform and qform) exactly."""
    path = Path(path)
    hdr = header.copy() if header is not None else None
    img = nib.Nifti1Image(np.asarray(data), affine, header=hdr)
    img.set_data_dtype(np.asarray(data).dtype)
    img.header.set_sform(affine, code=1)
    img.header.set_qform(affine, code=1)
    img.header["scl_slope"], img.header["scl_inter"] = 1.0, 0.0
    with atomic_path(path) as tmp:
        nib.save(img, str(tmp))
    return path
