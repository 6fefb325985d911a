"""Reading and writing MRI volumes (Analyze 7.5 and NIfTI) with clear errors.

Orientation: a volume's array axes are mapped to anatomy through its affine
(``nibabel.aff2axcodes``). Analyze 7.5 headers carry no orientation; nibabel gives
them its documented default, an x-flipped (radiological, "LAS") affine, and so does
this package. For the HFH data this makes array axis 1 the anterior-posterior axis,
so coronal slices run along axis 1, as in the Kaggle files.
"""

from __future__ import annotations

import contextlib
import gzip
import logging
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

from hippo_utils.core.files import atomic_path, sha256_file

logger = logging.getLogger(__name__)

VOLUME_SUFFIXES = (".nii.gz", ".nii", ".img", ".hdr")
# The voxel sizes of any MRI scan, mm: a header outside them is broken (and would make pictures
# and volumes of absurd sizes)
VOXEL_MM = (0.01, 50.0)


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
    # True when the file had no usable voxel size and load_volume(assume_spacing=...) set it
    assumed_spacing: bool = False

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel size in mm along each array axis (column norms of the affine)."""
        return tuple(float(v) for v in np.sqrt((self.affine[:3, :3] ** 2).sum(axis=0)))

    @property
    def voxel_mm3(self) -> float:
        """Volume of one voxel in mm^3: |det| of the affine's 3x3 part, which is the product
        of :attr:`spacing` when the axes are perpendicular, and less when they are sheared."""
        return float(abs(np.linalg.det(self.affine[:3, :3])))

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


def volume_sha256(path: str | os.PathLike[str]) -> str:
    """sha256 of a volume's bytes: the file's, or for an Analyze pair its .hdr then its .img
    (the header holds the voxel size)."""
    import hashlib

    path = Path(path)
    if path.suffix.lower() not in (".img", ".hdr"):
        return sha256_file(path)
    h = hashlib.sha256()
    for part in (path.with_suffix(".hdr"), path.with_suffix(".img")):
        h.update(bytes.fromhex(sha256_file(part)))
    return h.hexdigest()


def is_volume_file(path: Path) -> bool:
    """True for ``.nii``, ``.nii.gz`` and Analyze ``.img`` (the ``.hdr`` twin is not counted)."""
    name = path.name.lower()
    return not path.name.startswith(".") and (
        name.endswith(".nii") or name.endswith(".nii.gz") or name.endswith(".img")
    )


@contextlib.contextmanager
def _nibabel_quiet():
    """nibabel's header notices (below errors) left out, for this module reports them itself."""
    logger = nib.imageglobals.logger
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


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
    errors = (nib.filebasedimages.ImageFileError, EOFError, OSError, zlib.error, gzip.BadGzipFile, ValueError)
    try:
        # nibabel repairs some headers (a zero pixdim becomes 1) with a log line of its own;
        # this module checks those fields itself and says what it found, in one line
        with _nibabel_quiet():
            img = nib.load(str(path))
    except errors as exc:
        raise ValueError(
            f"{path}: cannot read this file as an Analyze or NIfTI volume ({type(exc).__name__}: {exc})"
        ) from None
    _check_claims(img, path)  # before any voxel is read or memory allocated
    _check_dtype(img, path)
    try:  # force the read now so that truncated or corrupt data fails here, with the name
        img.dataobj[(0,) * len(img.shape)] if img.shape else None
    except errors as exc:
        raise ValueError(
            f"{path}: cannot read this file as an Analyze or NIfTI volume ({type(exc).__name__}: {exc})"
        ) from None
    return img


def _gib(nbytes: float) -> str:
    return (
        f"{nbytes / 2**30:.1f} GiB"
        if nbytes >= 2**28
        else f"{nbytes / 2**20:.1f} MiB"
        if nbytes >= 2**20
        else f"{int(nbytes)} bytes"
    )


def available_memory() -> int | None:
    """Bytes of memory this machine can still give (MemAvailable), or None when unknown."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _stored_bytes(filename: str, needed: int) -> int:
    """Bytes the data file holds, counted up to ``needed`` (a .gz file is decompressed as a
    stream, and only as far as needed; its trailer answers first when it can)."""
    if not filename.lower().endswith(".gz"):
        return os.path.getsize(filename)
    with open(filename, "rb") as fh:
        fh.seek(-4, os.SEEK_END)
        trailer = int.from_bytes(fh.read(4), "little")  # uncompressed size mod 2**32
    if trailer == needed % 2**32:  # a truncated file's last bytes are anything: only a match counts
        return needed
    count = 0
    try:
        with gzip.open(filename, "rb") as fh:
            while count < needed and (block := fh.read(1 << 16)):  # small: a truncated end loses little
                count += len(block)
    except (OSError, EOFError, zlib.error):
        pass  # a truncated stream holds what it held so far
    return count


def _check_claims(img, path: Path) -> None:
    """The header's shape, data type and offset against the file's size and the free memory,
    before the data are read: a 452-byte file cannot hold 5000^3 voxels."""
    header = img.header
    shape = tuple(int(s) for s in img.shape)
    dtype = header.get_data_dtype()
    count = int(np.prod(shape, dtype=np.float64)) if shape else 0
    nbytes = count * dtype.itemsize
    offset = int(getattr(img.dataobj, "offset", 0))
    data_file = img.file_map["image"].filename
    claim = f"the header claims {'x'.join(map(str, shape))} voxels of {dtype} ({_gib(nbytes)} from byte {offset})"
    held = _stored_bytes(data_file, offset + nbytes)
    if held < offset + nbytes:
        raise ValueError(
            f"{path}: {claim}, but {Path(data_file).name} holds {_gib(max(held - offset, 0))} "
            "of data: the header or the file is wrong (truncated download?)"
        )
    needed = nbytes + count * 4  # the stored data and its float32 copy
    free = available_memory()
    if free is not None and needed > free:
        raise ValueError(f"{path}: {claim}; loading it needs {_gib(needed)} of memory and {_gib(free)} is free")


def _as_float32(img, path: Path) -> np.ndarray:
    """The voxels as float32 without losing their contrast: values far from zero with small
    differences (float64 around 1e6, int32 around 2**25), which float32's 24-bit mantissa
    would merge, are first shifted by their minimum in float64 (intensity normalisation takes
    no notice of an offset)."""
    dtype = img.get_data_dtype()
    wide = dtype.itemsize >= 4 and dtype.kind in "iu" or dtype.itemsize >= 8 and dtype.kind == "f"
    inter = getattr(img.dataobj, "inter", 0.0)  # scl_inter: an offset added to every voxel
    offset = inter is not None and np.isfinite(float(inter)) and float(inter) != 0.0
    if not (wide or offset):
        return np.asarray(img.dataobj, dtype=np.float32)
    data = np.asarray(img.dataobj, dtype=np.float64)
    finite = data[np.isfinite(data)]
    if finite.size:
        lo, hi = float(finite.min()), float(finite.max())
        if hi > lo and max(abs(lo), abs(hi)) * 2.0**-24 > (hi - lo) * 1e-4:
            logger.info("%s: values %g..%g shifted by %g so that float32 keeps their differences", path, lo, hi, lo)
            data -= lo
    return data.astype(np.float32)


def _check_dtype(img, path: Path) -> None:
    """Refuse voxels that a float32 grey volume would misread: colour (RGB) voxels, complex
    values (whose imaginary part a conversion drops), anything not a number."""
    dtype = img.get_data_dtype()
    if dtype.fields is not None or dtype.kind not in "biuf":
        what = (
            "colour (RGB) voxels"
            if dtype.fields is not None
            else "complex voxels (an MR phase/magnitude pair?)"
            if dtype.kind == "c"
            else "voxels that are not numbers"
        )
        raise ValueError(
            f"{path}: {what}, data type {dtype}; a grey-scale volume of integers or floats is "
            "needed. Convert it first (the magnitude, or one channel)"
        )


def _voxel_affine(img, path: Path, assume_spacing) -> tuple[np.ndarray, bool]:
    """The file's voxel-to-mm affine, or with ``assume_spacing`` where it has no usable voxel
    size, and whether it was assumed.

    Raises:
        ValueError: no usable voxel size and none to assume, naming the header fields.
    """
    affine = np.asarray(img.affine, dtype=np.float64)
    problem = voxel_size_problem(img, path)
    if problem is None:
        return affine, False
    if assume_spacing is None:
        raise ValueError(
            f"{path}: {problem}, so its volumes in mm³ would be wrong. Fix the header, or "
            "pass --assume-voxel-size X,Y,Z (mm) to take that size (the results are then "
            "marked as assumed)"
        )
    return _assumed_affine(affine, assume_spacing), True


def check_volume_file(path: str | os.PathLike[str], assume_spacing: tuple[float, float, float] | None = None) -> Volume:
    """Check a volume file as :func:`load_volume` would, from its header alone (no voxel is
    loaded but the first): a batch refuses bad inputs before it writes anything.

    Returns:
        A :class:`Volume` of the file's shape and affine whose data is a zero-sized stand-in
        (:func:`load_labels` can check a label file against it).

    Raises:
        FileNotFoundError, ValueError: as :func:`load_volume`.
    """
    path = Path(path)
    img = _load_image(path)
    shape = _shape_3d(tuple(int(s) for s in img.shape), path)
    affine, assumed = _voxel_affine(img, path, assume_spacing)
    return Volume(np.broadcast_to(np.zeros((), np.float32), shape), affine, path, None, assumed)


def _raw_header(img, path: Path):
    """The header as stored, before nibabel's repairs (it sets a zero pixdim to 1)."""
    klass = type(img.header)
    header_file = (img.file_map.get("header") or img.file_map["image"]).filename
    with nib.openers.ImageOpener(header_file) as fh:
        return klass.from_fileobj(fh, check=False)


def voxel_size_problem(img, path: Path) -> str | None:
    """Why the file gives no usable voxel size (zero, NaN or a non-invertible affine), naming
    the header fields; None when it does."""
    raw = _raw_header(img, path)
    pixdim = tuple(float(v) for v in raw["pixdim"][1:4])
    fields = f"pixdim[1:4] = ({', '.join(f'{v:g}' for v in pixdim)})"
    codes = (int(raw["qform_code"]), int(raw["sform_code"])) if "qform_code" in raw else (0, 0)
    if "qform_code" in raw:
        fields += f", qform_code = {codes[0]}, sform_code = {codes[1]}"
    affine = np.asarray(img.affine, np.float64)
    if not np.all(np.isfinite(affine)) or abs(np.linalg.det(affine[:3, :3])) < 1e-9:
        return f"{fields}: the voxel-to-mm affine is not invertible"
    if codes[1] == 0 and not all(np.isfinite(v) and v != 0 for v in pixdim):  # qform and base affine use pixdim
        return f"{fields}: no voxel size"
    spacing = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
    if not np.all((spacing >= VOXEL_MM[0]) & (spacing <= VOXEL_MM[1])):
        return (
            f"{fields}: voxels of {' x '.join(f'{v:g}' for v in spacing)} mm are no scan's "
            f"({VOXEL_MM[0]:g} to {VOXEL_MM[1]:g} mm)"
        )
    return None


def _assumed_affine(affine: np.ndarray, spacing: tuple[float, float, float]) -> np.ndarray:
    """``affine`` with its axes scaled to ``spacing`` mm, their directions kept (nibabel's
    default directions where an axis has none), so that left stays left."""
    affine = np.array(affine, np.float64)
    out = np.eye(4)
    default = np.diag([-1.0, 1.0, 1.0])  # nibabel's default for a header without orientation: LAS
    for i in range(3):
        col = affine[:3, i]
        norm = np.linalg.norm(col) if np.all(np.isfinite(col)) else 0.0
        out[:3, i] = (col / norm if norm > 0 else default[:, i]) * float(spacing[i])
    out[:3, 3] = affine[:3, 3] if np.all(np.isfinite(affine[:3, 3])) else 0.0
    return out


def _shape_3d(shape: tuple[int, ...], path: Path | str) -> tuple[int, int, int]:
    """The 3D shape of a volume of ``shape`` (singleton axes past the third dropped)."""
    if len(shape) > 3:
        if all(s == 1 for s in shape[3:]):
            shape = shape[:3]
        else:
            raise ValueError(
                f"{path}: a 3D volume is needed, but this one has shape {shape} with a "
                f"4th axis of {shape[3]} (a time series or several channels); extract one "
                "3D volume first"
            )
    if len(shape) != 3 or min(shape) < 2:
        raise ValueError(f"{path}: a 3D volume is needed, but this one has shape {shape} (a 2D image?)")
    return shape


def _as_3d(data: np.ndarray, path: Path | str) -> np.ndarray:
    return data.reshape(_shape_3d(data.shape, path))


def load_volume(
    source: str | os.PathLike[str] | Volume | np.ndarray,
    spacing: tuple[float, float, float] | None = None,
    check_finite: bool = True,
    assume_spacing: tuple[float, float, float] | None = None,
) -> Volume:
    """Load a 3D volume from a file, or wrap an in-memory array.

    Args:
        source: a ``.nii``/``.nii.gz``/``.img``/``.hdr`` path, a :class:`Volume` (returned
            as is), or an array (with ``spacing`` in mm, default 1 mm isotropic).
        spacing: voxel size for an array source.
        check_finite: refuse volumes with NaN or infinite voxels.
        assume_spacing: for a file without a usable voxel size, use this one (mm) instead
            of refusing it; the volume is marked ``assumed_spacing``.

    Returns:
        A :class:`Volume` whose data is float32 and 3D (singleton axes past the third
        are squeezed, as in the 4D Kaggle Analyze files).

    Raises:
        FileNotFoundError: the file, or the ``.img`` of a ``.hdr``, is missing.
        ValueError: unreadable file, a header that claims more than the file holds or the
            memory can take, not 3D, no usable voxel size (without ``assume_spacing``), or
            non-finite voxels; the message names the file.
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
            data = _as_float32(img, path)
        except (EOFError, OSError, zlib.error, ValueError) as exc:
            raise ValueError(f"{path}: the voxel data is truncated or corrupt ({type(exc).__name__}: {exc})") from None
        data = _as_3d(data, path)
        header = nib.Nifti1Header()
        header.set_data_shape(data.shape)
        if isinstance(img, (nib.Nifti1Image, nib.Nifti2Image)):
            header = img.header.copy()
        affine, assumed = _voxel_affine(img, path, assume_spacing)
        if assumed:
            header.set_qform(affine, code=1)
            header.set_sform(affine, code=1)
        vol = Volume(data, affine, path, header, assumed)
    if check_finite:
        bad = int(np.count_nonzero(~np.isfinite(vol.data)))
        if bad:
            raise ValueError(
                f"{vol.path or 'array'}: {bad} voxels are NaN or infinite; "
                "clean the volume (e.g. replace them with 0) first"
            )
    return vol


def load_labels(
    source: str | os.PathLike[str] | np.ndarray, like: Volume | None = None, atol: float = 1e-3
) -> np.ndarray:
    """Load an integer label volume, checked against its image when ``like`` is given (the
    voxel size ``like`` assumed, if it did, is assumed for the labels too).

    Float label files holding integers (some MSD files) are rounded, not truncated.

    Raises:
        ValueError: non-integer or negative labels, or a shape/affine that differs from
            ``like``; the message names both files.
    """
    assumed = like.spacing if like is not None and like.assumed_spacing else None
    vol = load_volume(source, assume_spacing=assumed)
    name = vol.path or "label array"
    rounded = np.rint(vol.data)
    if np.abs(vol.data - rounded).max(initial=0) > 1e-3:
        raise ValueError(f"{name}: label values must be integers; found non-integer values")
    if rounded.min(initial=0) < 0 or rounded.max(initial=0) > 255:
        raise ValueError(f"{name}: label values must lie in 0..255, found {rounded.min():g}..{rounded.max():g}")
    labels = rounded.astype(np.uint8)
    if like is not None:
        if labels.shape != like.shape:
            raise ValueError(
                f"{name}: label shape {labels.shape} differs from image {like.path or 'volume'} shape {like.shape}"
            )
        if not isinstance(source, np.ndarray) and not np.allclose(vol.affine, like.affine, atol=atol):
            raise ValueError(
                f"{name}: label affine differs from the image {like.path or 'volume'}; they are not on the "
                f"same grid (image {np.round(like.affine, 3).tolist()}, labels {np.round(vol.affine, 3).tolist()})"
            )
    return labels


def save_nifti(
    data: np.ndarray,
    affine: np.ndarray,
    path: str | os.PathLike[str],
    header: nib.Nifti1Header | None = None,
    input: str | None = None,
) -> Path:
    """Write ``data`` as NIfTI-1 atomically, keeping the affine (sform and qform) exactly;
    ``input``: the file it was made from, for the folder's record."""
    path = Path(path)
    hdr = header.copy() if header is not None else None
    img = nib.Nifti1Image(np.asarray(data), affine, header=hdr)
    img.set_data_dtype(np.asarray(data).dtype)
    img.header.set_sform(affine, code=1)
    img.header.set_qform(affine, code=1)
    img.header["scl_slope"], img.header["scl_inter"] = 1.0, 0.0
    with atomic_path(path, input) as tmp:
        nib.save(img, str(tmp))
    return path
