"""Post-processing of predicted label volumes: keeping the largest connected components,
and splitting a bilateral mask into its left and right hippocampus."""

from __future__ import annotations

import numpy as np

from hippo_utils.data.volumes import Volume


def keep_largest(classes: np.ndarray, n: int) -> np.ndarray:
    """Keep the ``n`` largest connected components (26-connected) of each class."""
    from scipy import ndimage

    if n <= 0:
        return classes
    box = bounding_box(classes)
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


def bounding_box(mask: np.ndarray) -> tuple[slice, ...] | None:
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
    box = bounding_box(mask)
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
