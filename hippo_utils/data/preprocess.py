"""From a volume to model-sized 2D slices, and back: the one geometry both derivation
and volume inference use.

Orientation (documented, explicit): for an anatomical plane the array axes are read
from the affine (``nibabel.aff2axcodes``). Slices are shown in radiological
convention, as the HFH slices of the original system were:

- coronal: rows run superior -> inferior, columns subject right -> left;
- axial: rows anterior -> posterior, columns right -> left;
- sagittal: rows superior -> inferior, columns anterior -> posterior.

``axis0``/``axis1``/``axis2`` slice along that array axis with no reorientation, for
crops whose affine does not describe anatomy.

In-plane resampling and resizing are one interpolation: a slice of H x W voxels of
``row_mm`` x ``col_mm`` is resized to (h, w) with h/w equal to the physical aspect
(square output pixels), scaled to fit the output size, and centred with zero padding.
Images use bilinear interpolation (anti-aliased when shrinking); label maps go through
the same filter, one indicator per label, and take the label with the largest share
(:func:`resize_labels`), so masks stay aligned with their images.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from PIL import Image

from hippo_utils.data.volumes import Volume

# For each plane: (slice axis letters, row direction, column direction).
_PLANES = {
    "coronal": ("AP", "I", "L"),
    "axial": ("SI", "P", "L"),
    "sagittal": ("LR", "I", "P"),
}
_OPPOSITE = {"L": "R", "R": "L", "A": "P", "P": "A", "S": "I", "I": "S"}


@dataclass(frozen=True)
class SliceGeometry:
    """How one volume's slices map to model images (the same for all its slices)."""

    plane: str
    axis: int  # source array axis that is sliced
    row_axis: int  # source array axis along image rows
    col_axis: int
    flip_rows: bool
    flip_cols: bool
    in_shape: tuple[int, int]  # (H, W) slice shape in source voxels
    pixel_mm: tuple[float, float]  # (row, col) voxel size in mm
    resized: tuple[int, int]  # (h, w) after resampling and scaling
    pad: tuple[int, int]  # (top, left) zero padding
    out_size: tuple[int, int]  # model image (height, width)
    # (top, left, height, width) of the window of each oriented slice the model sees, in
    # source voxels; it may reach past the slice (zeros there). None: the whole slice.
    crop: tuple[int, int, int, int] | None = None

    def as_row(self) -> dict[str, str | int]:
        """Flat manifest columns (``crop`` only when there is one, as manifests before it had none)."""
        d = asdict(self)
        if d["crop"] is None:
            del d["crop"]
        return {k: "x".join(f"{v:g}" for v in val) if isinstance(val, tuple) else val for k, val in d.items()}

    @classmethod
    def from_row(cls, row: dict[str, str]) -> SliceGeometry:
        """Inverse of :meth:`as_row`, for manifest rows read as strings."""

        def pair(key: str, typ: type) -> tuple:
            return tuple(typ(float(v)) for v in row[key].split("x"))

        return cls(
            plane=row["plane"],
            axis=int(row["axis"]),
            row_axis=int(row["row_axis"]),
            col_axis=int(row["col_axis"]),
            flip_rows=row["flip_rows"] in ("True", "1", True),
            flip_cols=row["flip_cols"] in ("True", "1", True),
            in_shape=pair("in_shape", int),
            pixel_mm=pair("pixel_mm", float),
            resized=pair("resized", int),
            pad=pair("pad", int),
            out_size=pair("out_size", int),
            crop=pair("crop", int) if row.get("crop") else None,
        )

    # -- whole volumes -------------------------------------------------------------
    def orient(self, data: np.ndarray) -> np.ndarray:
        """Source array -> (slices, H, W) in display orientation."""
        return display_stack(data, self.axis, self.row_axis, self.col_axis, self.flip_rows, self.flip_cols)

    def unorient(self, stack: np.ndarray, copy: bool = True) -> np.ndarray:
        """(slices, H, W[, C]) in display orientation -> source array axis order (without
        ``copy``, a view of ``stack``: free, where a contiguous copy of a large 4D stack is not)."""
        if self.flip_rows:
            stack = stack[:, ::-1]
        if self.flip_cols:
            stack = stack[:, :, ::-1]
        order = [self.axis, self.row_axis, self.col_axis]
        inverse = [order.index(i) for i in range(3)] + list(range(3, stack.ndim))
        view = np.transpose(stack, inverse)
        return np.ascontiguousarray(view) if copy else view

    # -- single slices ---------------------------------------------------------------
    def to_model(self, slice2d: np.ndarray, is_label: bool = False) -> np.ndarray:
        """One oriented (H, W) slice -> padded model-size image (float32 or uint8 labels)."""
        slice2d = self.window(slice2d)
        h, w = self.resized
        if is_label:
            small = resize_labels(slice2d, (h, w))
            out = np.zeros(self.out_size, np.uint8)
        else:
            small = _resize_float(slice2d, (h, w))
            out = np.zeros(self.out_size, np.float32)
        top, left = self.pad
        out[top : top + h, left : left + w] = small
        return out

    def from_model(self, image: np.ndarray, is_label: bool = False) -> np.ndarray:
        """Model-size (H', W'[, C]) output -> oriented (H, W[, C]) slice on the source grid.

        Channels (e.g. class probabilities) are resized one by one with bilinear
        interpolation, so that an argmax afterwards gives smooth boundaries; label maps
        go through :func:`resize_labels`.
        """
        top, left = self.pad
        h, w = self.resized
        part = image[top : top + h, left : left + w]
        shape = self.in_shape if self.crop is None else self.crop[2:]
        if is_label:
            return self.unwindow(resize_labels(part, shape))
        if part.ndim == 2:
            return self.unwindow(_resize_float(part, shape))
        back = np.stack([_resize_float(part[..., c], shape) for c in range(part.shape[-1])], axis=-1)
        return self.unwindow(back, background=True)

    # -- the crop window ---------------------------------------------------------------
    def window(self, slice2d: np.ndarray) -> np.ndarray:
        """The part of an oriented slice the model sees (zeros where the window leaves it)."""
        if self.crop is None:
            return slice2d
        top, left, h, w = self.crop
        out = np.zeros((h, w, *slice2d.shape[2:]), slice2d.dtype)
        rows, cols = _overlap(top, h, slice2d.shape[0]), _overlap(left, w, slice2d.shape[1])
        out[rows[0] - top : rows[1] - top, cols[0] - left : cols[1] - left] = slice2d[
            rows[0] : rows[1], cols[0] : cols[1]
        ]
        return out

    def unwindow(self, part: np.ndarray, background: bool = False) -> np.ndarray:
        """A window-size result -> the whole oriented slice; outside the window: class 0
        (with ``background``, class probabilities that are 1 for class 0), or zeros."""
        if self.crop is None:
            return part
        top, left, h, w = self.crop
        out = np.zeros((*self.in_shape, *part.shape[2:]), part.dtype)
        if background:
            out[..., 0] = 1
        rows, cols = _overlap(top, h, self.in_shape[0]), _overlap(left, w, self.in_shape[1])
        out[rows[0] : rows[1], cols[0] : cols[1]] = part[rows[0] - top : rows[1] - top, cols[0] - left : cols[1] - left]
        return out


def _overlap(start: int, length: int, size: int) -> tuple[int, int]:
    """The part of [start, start + length) inside [0, size)."""
    return max(start, 0), max(min(start + length, size), max(start, 0))


def _resize_float(
    image: np.ndarray, shape: tuple[int, int], resample: Image.Resampling = Image.Resampling.BILINEAR
) -> np.ndarray:
    """Resize one 2D channel to ``shape`` (H, W); bilinear is anti-aliased when shrinking."""
    return np.asarray(
        Image.fromarray(np.ascontiguousarray(image, np.float32), mode="F").resize((shape[1], shape[0]), resample)
    )


def resize_labels(labels: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Resize a 2D label map to ``shape`` (H, W), aligned with its image and area-true.

    Each label's indicator is resized with a box filter, which gives the share of every
    output pixel that the label covers, and the pixel takes the label with the largest
    share. The pixel grids are centre-aligned as for the images, so mask and image stay
    in register and a structure keeps its area on average. Nearest neighbour does not:
    shrinking by 2, it samples one corner voxel of each 2 x 2 block, a shift of half a
    source voxel in both directions between image and mask. The images' wider
    anti-aliasing filter would shrink small structures (a 5-voxel disc loses a fifth of
    its area).
    """
    labels = np.asarray(labels, np.uint8)
    if labels.shape == tuple(shape):
        return labels.copy()
    values = np.unique(labels)
    if values.size == 1:
        return np.full(shape, values[0], np.uint8)
    shares = np.stack([_resize_float(labels == v, shape, Image.Resampling.BOX) for v in values])
    # Exact ties (half of a 2 x 2 block) are common on edges; a checkerboard breaks them
    # for and against the first label in turn, so ties do not all shrink the structures.
    checker = (np.indices(shape).sum(axis=0) % 2) * np.float32(2e-4) - np.float32(1e-4)
    shares[1:] += checker
    return values[np.argmax(shares, axis=0)].astype(np.uint8)


def context_indices(index: int, n: int, context: int, step: int = 1) -> list[int]:
    """The slices that make slice ``index``'s 2.5D channels, in slice order: its ``context``
    neighbours ``step`` slices apart on either side, itself in the middle; beyond the first
    and last slices the edge slice repeats ([derive] context_slices, context_step)."""
    return [min(max(index + k * step, 0), n - 1) for k in range(-context, context + 1)]


def model_slices(
    slices01: np.ndarray, geom: SliceGeometry, context: int = 0, step: int = 1, indices: Sequence[int] | None = None
) -> np.ndarray:
    """The model's input images, 8-bit: the one function derivation (which stores them as
    PNG) and inference (which feeds them to the model through :func:`model_batch`) share.

    Args:
        slices01: oriented, normalised (0..1) slices: (N, H, W) of one volume in slice
            order, or (N, H, W, C) images that already have their channels.
        geom: the geometry that maps each slice to the model size (:meth:`SliceGeometry.to_model`).
        context, step: the 2.5D channels of (N, H, W) slices ([derive] context_slices and
            context_step; :func:`context_indices`); 0 gives one channel.
        indices: the slices wanted (derivation keeps a subset); default all.

    Returns:
        uint8 (len(indices), H', W', C), rounded to 8 bits as the derived PNGs are.
    """
    indices = range(len(slices01)) if indices is None else indices
    if slices01.ndim == 4:
        images = [
            np.stack([geom.to_model(s[..., k]) for k in range(s.shape[-1])], axis=-1) for s in slices01[list(indices)]
        ]
    else:
        resized: dict[int, np.ndarray] = {}  # a slice is the neighbour of others: resize it once

        def at(k: int) -> np.ndarray:
            if k not in resized:
                resized[k] = geom.to_model(slices01[k])
            return resized[k]

        images = [np.stack([at(k) for k in context_indices(i, len(slices01), context, step)], axis=-1) for i in indices]
    if not images:
        return np.zeros((0, *geom.out_size, 1), np.uint8)
    return np.rint(np.clip(np.stack(images), 0, 1) * 255).astype(np.uint8)


def model_batch(images8: np.ndarray, channels: int) -> np.ndarray:
    """8-bit model images (N, H, W, C) -> the float32 0..255 batch of a model with
    ``channels`` input channels (a grey image repeated, as decoding a grey PNG as RGB does)."""
    x = np.asarray(images8, np.float32)
    return np.repeat(x, channels, axis=-1) if x.shape[-1] == 1 and channels > 1 else x


def classes_from_probs(geom: SliceGeometry, probs: np.ndarray) -> np.ndarray:
    """Model-size class probabilities (H', W', C) -> class indices (H, W) on the source grid.

    The probabilities are resized back (bilinear) before the argmax, for smooth
    boundaries. Exact shortcut: bilinear values are convex combinations, so where the
    background wins at every model pixel it wins at every source pixel too; such slices
    (most of a volume) skip the resize.
    """
    if not probs.argmax(-1).any():
        return np.zeros(geom.in_shape, np.uint8)
    return np.argmax(geom.from_model(probs), axis=-1).astype(np.uint8)


def plane_axes(volume: Volume, plane: str) -> tuple[int, int, int, bool, bool]:
    """(slice axis, row axis, col axis, flip rows, flip cols) for ``plane``.

    Raises:
        ValueError: the affine does not let the plane be found (e.g. two axes that
            point the same way), or the plane name is unknown.
    """
    if plane.startswith("axis"):
        axis = int(plane[4:])
        rest = [a for a in range(3) if a != axis]
        return axis, rest[0], rest[1], False, False
    if plane not in _PLANES:
        raise ValueError(f"unknown plane {plane!r}; use coronal, axial, sagittal or axis0..axis2")
    codes = volume.axcodes
    slice_letters, row_dir, col_dir = _PLANES[plane]

    def axis_of(letters: str) -> int:
        hits = [i for i, c in enumerate(codes) if c in letters]
        if len(hits) != 1:
            raise ValueError(
                f"{volume.path or 'volume'}: cannot find the {letters} axis in its "
                f"orientation {''.join(codes)}; use plane = axis0/axis1/axis2"
            )
        return hits[0]

    axis = axis_of(slice_letters)
    row_axis = axis_of(row_dir + _OPPOSITE[row_dir])
    col_axis = axis_of(col_dir + _OPPOSITE[col_dir])
    return axis, row_axis, col_axis, codes[row_axis] != row_dir, codes[col_axis] != col_dir


def display_stack(
    data: np.ndarray, axis: int, row_axis: int, col_axis: int, flip_rows: bool, flip_cols: bool
) -> np.ndarray:
    """Source array -> (slices, H, W) in display orientation (a view), for the axes and flips
    that :func:`plane_axes` returns."""
    out = np.transpose(data, (axis, row_axis, col_axis))
    return out[:, :: -1 if flip_rows else 1, :: -1 if flip_cols else 1]


def display_directions(plane: str) -> dict[str, str] | None:
    """The anatomical direction at each edge of a slice shown in display orientation
    (radiological: the subject's right on the image's left): ``{"top": "S", "bottom": "I",
    "left": "R", "right": "L"}`` for coronal. None for ``axisN`` planes, whose directions
    the affine does not give."""
    if plane not in _PLANES:
        return None
    _, row_dir, col_dir = _PLANES[plane]
    return {"top": _OPPOSITE[row_dir], "bottom": row_dir, "left": _OPPOSITE[col_dir], "right": col_dir}


def slice_geometry(
    volume: Volume,
    plane: str,
    out_size: tuple[int, int],
    crop_mm: tuple[float, float, float, float] | None = None,
    normalised: np.ndarray | None = None,
) -> SliceGeometry:
    """The geometry that maps ``volume``'s slices along ``plane`` to ``out_size`` images.

    Args:
        crop_mm: (top, bottom, left, right) of a window, in mm from the head's centre
            (:func:`head_centre`) in display orientation, that the model sees instead of
            the whole slice ([derive] crop): the same anatomy at the scan's own resolution.
        normalised: the volume scaled to 0..1, when the caller has it (for the centre).

    Raises:
        ValueError: less than half of the window lies inside the scan's field of view (a
            scan cropped already, or not a whole head), naming the file.
    """
    axis, row_axis, col_axis, flip_rows, flip_cols = plane_axes(volume, plane)
    spacing = volume.spacing
    in_shape = (volume.shape[row_axis], volume.shape[col_axis])
    pixel_mm = (spacing[row_axis], spacing[col_axis])
    if crop_mm is None:
        return _fit(plane, axis, row_axis, col_axis, flip_rows, flip_cols, in_shape, pixel_mm, out_size)
    if normalised is None:
        normalised = normalize_intensity(volume)
    oriented = display_stack(normalised, axis, row_axis, col_axis, flip_rows, flip_cols)
    centre = head_centre(oriented)
    top, bottom, left, right = crop_mm
    r0, c0 = int(np.floor(centre[0] + top / pixel_mm[0])), int(np.floor(centre[1] + left / pixel_mm[1]))
    r1, c1 = int(np.ceil(centre[0] + bottom / pixel_mm[0])), int(np.ceil(centre[1] + right / pixel_mm[1]))
    crop = (r0, c0, r1 - r0, c1 - c0)
    inside = (
        np.subtract(*_overlap(r0, r1 - r0, in_shape[0])[::-1]) * np.subtract(*_overlap(c0, c1 - c0, in_shape[1])[::-1])
    ) / float((r1 - r0) * (c1 - c0))
    if inside < 0.5:
        raise ValueError(
            f"{volume.path or 'volume'}: only {inside:.0%} of the window the model was trained on "
            f"({bottom - top:.0f} x {right - left:.0f} mm around the head's centre) lies inside this scan's "
            f"{in_shape[0] * pixel_mm[0]:.0f} x {in_shape[1] * pixel_mm[1]:.0f} mm slices; the model needs "
            "whole-head scans like its training set (or a model trained without [derive] crop)"
        )
    geom = _fit(plane, axis, row_axis, col_axis, flip_rows, flip_cols, crop[2:], pixel_mm, out_size)
    return dataclasses.replace(geom, in_shape=in_shape, crop=crop)


def head_centre(oriented01: np.ndarray, threshold: float = 0.1) -> tuple[float, float]:
    """(row, col) of the centre of the head in display-oriented slices (N, H, W), scaled 0..1:
    the middle of the range of rows and of columns that hold tissue (above ``threshold``) in
    any slice; robust to a missing lobe or a shrunken hippocampus, which a mean is not."""
    tissue = oriented01 > threshold
    centre = []
    for axes, size in (((0, 2), oriented01.shape[1]), ((0, 1), oriented01.shape[2])):
        share = tissue.mean(axis=axes)  # rows (or columns) that stray bright voxels alone reach do not count
        held = np.nonzero(share > 0.05 * share.max())[0] if share.max() > 0 else np.array([0, size - 1])
        centre.append((held[0] + held[-1]) / 2)
    return centre[0], centre[1]


def label_box_mm(
    oriented_labels: np.ndarray, centre: tuple[float, float], pixel_mm: tuple[float, float]
) -> tuple[float, float, float, float] | None:
    """(top, bottom, left, right) in mm from ``centre`` of every labelled voxel of display-
    oriented label slices (N, H, W), voxel edges included; None without labels."""
    rows = np.nonzero(oriented_labels.any(axis=(0, 2)))[0]
    cols = np.nonzero(oriented_labels.any(axis=(0, 1)))[0]
    if not rows.size:
        return None
    return (
        (rows[0] - centre[0]) * pixel_mm[0],
        (rows[-1] + 1 - centre[0]) * pixel_mm[0],
        (cols[0] - centre[1]) * pixel_mm[1],
        (cols[-1] + 1 - centre[1]) * pixel_mm[1],
    )


def crop_window(
    boxes: Sequence[tuple[float, float, float, float]], margin_mm: float, out_size: tuple[int, int]
) -> tuple[float, float, float, float]:
    """The window ([derive] crop = "auto") that holds every box with ``margin_mm`` to spare,
    widened about its centre to the model image's aspect (square pixels, none wasted)."""
    b = np.asarray(boxes, np.float64)
    top, bottom = b[:, 0].min() - margin_mm, b[:, 1].max() + margin_mm
    left, right = b[:, 2].min() - margin_mm, b[:, 3].max() + margin_mm
    h, w = bottom - top, right - left
    mm_per_px = max(h / out_size[0], w / out_size[1])
    dh, dw = (out_size[0] * mm_per_px - h) / 2, (out_size[1] * mm_per_px - w) / 2
    return (
        round(float(top - dh), 2),
        round(float(bottom + dh), 2),
        round(float(left - dw), 2),
        round(float(right + dw), 2),
    )


def image_geometry(
    shape: tuple[int, int], out_size: tuple[int, int], pixel_mm: tuple[float, float] = (1.0, 1.0)
) -> SliceGeometry:
    """The geometry of a single 2D image (rows, cols) of ``pixel_mm`` pixels."""
    return _fit("image", 2, 0, 1, False, False, (int(shape[0]), int(shape[1])), pixel_mm, out_size)


def _fit(
    plane: str,
    axis: int,
    row_axis: int,
    col_axis: int,
    flip_rows: bool,
    flip_cols: bool,
    in_shape: tuple[int, int],
    pixel_mm: tuple[float, float],
    out_size: tuple[int, int],
) -> SliceGeometry:
    """Square output pixels, scaled to fit ``out_size``, centred with padding."""
    (H, W), (row_mm, col_mm) = in_shape, pixel_mm
    scale = min(out_size[0] / (H * row_mm), out_size[1] / (W * col_mm))  # px per mm
    h = max(1, min(out_size[0], round(H * row_mm * scale)))
    w = max(1, min(out_size[1], round(W * col_mm * scale)))
    pad = ((out_size[0] - h) // 2, (out_size[1] - w) // 2)
    return SliceGeometry(
        plane,
        axis,
        row_axis,
        col_axis,
        flip_rows,
        flip_cols,
        (H, W),
        (float(row_mm), float(col_mm)),
        (h, w),
        pad,
        tuple(out_size),
    )


def normalize_intensity(
    volume: Volume | np.ndarray,
    percentiles: tuple[float, float] = (0.5, 99.5),
) -> np.ndarray:
    """Scale a volume to 0..1 by its own robust intensity range.

    The low and high percentiles are mapped to 0 and 1 and values outside are clipped,
    so that files stored as uint8 0..255 and float32 up to 1e6 end up alike. The
    percentiles are taken over every 3rd voxel along the last axis (deterministic, and the
    same whatever the array's memory order), which is enough for millions of voxels.

    Raises:
        ValueError: the volume is constant (no contrast to normalise).
    """
    data = volume.data if isinstance(volume, Volume) else np.asarray(volume, np.float32)
    name = getattr(volume, "path", None) or "volume"
    sample = data[..., ::3] if data.size > 30000 else data  # a view: no copy of the whole volume
    lo, hi = np.percentile(sample, percentiles)
    if not hi > lo:
        lo, hi = float(data.min()), float(data.max())
        if not hi > lo:
            raise ValueError(f"{name}: the volume is constant ({lo:g}); nothing to segment")
    out = (data - np.float32(lo)) / np.float32(hi - lo)
    return np.clip(out, 0.0, 1.0, out=out).astype(np.float32, copy=False)
