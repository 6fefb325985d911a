"""Everything about labels, in one object built from the config (as nnU-Net's LabelManager):
source label values to model classes and back, mask colours to classes and back, the
display palette, and which source labels mean the left and right hippocampus."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from hippo_utils.data.components import bounding_box, split_hemispheres
from hippo_utils.data.volumes import Volume

if TYPE_CHECKING:
    from hippo_utils.core.config import Config

RGB = tuple[int, int, int]

# Label values in volume overlays: 1 red, 2 yellow, 3 cyan, 4 magenta (0 is transparent).
LABEL_COLOURS = ("#000000", "#ff2020", "#ffd21f", "#20d0ff", "#ff40ff")
# The mask colours of the original system: black background, red hippocampus.
DEFAULT_RGB_MAP: dict[RGB, int] = {(0, 0, 0): 0, (255, 0, 0): 1}


def colour_keys(colours: np.ndarray) -> np.ndarray:
    """(..., 3) RGB colours -> one int per colour (``r << 16 | g << 8 | b``), to look them up."""
    c = np.asarray(colours, np.int32)
    return (c[..., 0] << 16) | (c[..., 1] << 8) | c[..., 2]


def map_labels(labels: np.ndarray, label_map: dict[int, int], name: str) -> np.ndarray:
    """Source label values -> class indices; unknown values are an error naming the file."""
    unknown_mark = 255  # a value no class has: one look-up, and a max, find the unknown values
    lut = np.full(256, unknown_mark, np.uint8)
    lut[0] = 0
    for src, cls in label_map.items():
        lut[src] = cls
    if labels.dtype == np.uint8 and unknown_mark not in label_map.values():
        classes = lut[labels]
        if classes.max(initial=0) != unknown_mark:
            return classes
    present = set(np.unique(labels).tolist()) - {0}
    unknown = sorted(present - set(label_map))
    if unknown:
        raise ValueError(
            f"{name}: label values {unknown} are not in [derive] label_map "
            f"{label_map}; map them (e.g. {{{unknown[0]}: 1}}) or fix the file"
        )
    return lut[labels]


def mask_to_classes(mask: np.ndarray, rgb_map: dict[RGB, int], name: str, exact: bool = True) -> np.ndarray:
    """A mask image (grey or RGB) -> class indices through ``rgb_map``.

    Args:
        exact: every colour must be in ``rgb_map`` (lossless masks). Otherwise (JPEG or
            interpolated masks) each pixel takes the nearest ``rgb_map`` colour, and a
            grey mask with a two-class map is binarised at half intensity.

    Raises:
        ValueError: with ``exact``, a colour that is not in ``rgb_map``, naming the file.
    """
    rgb = mask[..., :3] if mask.ndim == 3 else np.repeat(mask[..., None], 3, axis=2)
    colours = np.array(list(rgb_map), np.int32)
    classes = np.array(list(rgb_map.values()), np.uint8)
    if exact:
        keys, ckeys = colour_keys(rgb.reshape(-1, 3)), colour_keys(colours)
        unknown = np.setdiff1d(np.unique(keys), ckeys)
        if unknown.size:
            bad = [(int(k >> 16) & 255, int(k >> 8) & 255, int(k) & 255) for k in unknown[:5]]
            raise ValueError(
                f"{name}: mask colours {bad} are not in [mask] rgb_map "
                f"{dict(rgb_map)}; add them to rgb_map or fix the mask"
            )
        order = np.argsort(ckeys)
        return classes[order][np.searchsorted(ckeys[order], keys)].reshape(rgb.shape[:2])
    is_grey = np.abs(rgb.astype(np.int16) - rgb[..., :1]).max() <= 16
    if is_grey and len(rgb_map) == 2:
        return (rgb[..., 0] > 127).astype(np.uint8) * int(classes[np.argmax(colours.sum(1))])
    off = _off_the_map(rgb, colours)
    if off is not None:
        raise ValueError(
            f"{name}: mask colour {off} is neither an [mask] rgb_map colour {dict(rgb_map)} nor a "
            "blend of two of them (JPEG noise); it would be read as a class it is not. Add it to "
            "rgb_map or fix the mask"
        )
    dist = ((rgb[..., None, :].astype(np.int32) - colours) ** 2).sum(-1)
    return classes[np.argmin(dist, axis=-1)]


def _off_the_map(rgb: np.ndarray, colours: np.ndarray, tolerance: float = 60.0) -> tuple[int, int, int] | None:
    """The colour of ``rgb`` farthest from every map colour and every blend of two (the line
    between them, where JPEG and resizing put edge pixels) when it is over ``tolerance``; else None."""
    found = np.unique(rgb.reshape(-1, 3), axis=0).astype(np.float64)
    best = np.full(len(found), np.inf)
    c = colours.astype(np.float64)
    for i in range(len(c)):
        for j in range(i, len(c)):
            d = c[j] - c[i]
            t = np.clip((found - c[i]) @ d / (d @ d), 0, 1) if d.any() else np.zeros(len(found))
            best = np.minimum(best, np.linalg.norm(found - (c[i] + t[:, None] * d), axis=1))
    worst = int(np.argmax(best))
    return tuple(int(v) for v in found[worst]) if best[worst] > tolerance else None


def palette(rgb_map: dict[RGB, int] | None = None, n: int = 256) -> np.ndarray:
    """(n, 3) uint8 colours per label value: ``rgb_map``'s colour of class v where it has one,
    else :data:`LABEL_COLOURS` (1 red, 2 yellow, 3 cyan, 4 magenta, repeating)."""
    pal = np.zeros((n, 3), np.uint8)
    defaults = [tuple(int(c[i : i + 2], 16) for i in (1, 3, 5)) for c in LABEL_COLOURS]
    for v in range(1, n):
        pal[v] = defaults[(v - 1) % (len(defaults) - 1) + 1]
    for colour, cls in (rgb_map or {}).items():
        if cls > 0:
            pal[cls] = colour
    return pal


@dataclass(frozen=True)
class Labels:
    """The labels of one configuration; every stage asks this object.

    Args:
        label_map: source label value -> class ([derive] label_map).
        rgb_map: mask colour -> class ([mask] rgb_map); class 0 is the background.
        left_right: the source values of the left and right hippocampus, when one class
            holds both ([infer] left_right_labels); None for one-sided data.
    """

    label_map: dict[int, int]
    rgb_map: dict[RGB, int]
    left_right: tuple[int, int] | None = None

    @classmethod
    def from_config(cls, cfg: Config) -> Labels:
        return cls(dict(cfg.derive.label_map), dict(cfg.mask.rgb_map), cfg.infer.left_right_labels)

    @property
    def num_classes(self) -> int:
        return len(self.rgb_map)

    # -- source label values <-> classes ------------------------------------------
    def to_classes(self, labels: np.ndarray, name: str) -> np.ndarray:
        """Source label values -> classes (:func:`map_labels`)."""
        return map_labels(labels, self.label_map, name)

    def sources_by_class(self) -> dict[int, list[int]]:
        """class -> the source values mapped to it, in increasing order."""
        by_class: dict[int, list[int]] = {}
        for src, cls in sorted(self.label_map.items()):
            by_class.setdefault(cls, []).append(src)
        return by_class

    def _splits(self, sources: list[int]) -> bool:
        """Whether a class of these source values is split back into left and right."""
        return self.left_right is not None and len(sources) > 1 and set(self.left_right) <= set(sources)

    def background_values(self) -> list[int]:
        """The source label values mapped to class 0 (read as background)."""
        return sorted(v for v, cls in self.label_map.items() if not cls)

    def output_values(self) -> list[int]:
        """The source label values that :meth:`to_source` can write (none for class 0: a
        source label mapped to the background is not predicted)."""
        values: list[int] = []
        for cls, sources in self.sources_by_class().items():
            if cls:
                values.extend(self.left_right if self._splits(sources) else sources[:1])
        return sorted(values)

    def to_source(self, classes: np.ndarray, volume: Volume) -> np.ndarray:
        """Classes -> source label values (uint8); a class that merged the left and right
        hippocampus is split by hemisphere (:func:`~hippo_utils.data.components.split_hemispheres`)."""
        labels = np.zeros(classes.shape, np.uint8)
        box = bounding_box(classes)
        if box is None:
            return labels
        inner, view = classes[box], labels[box]  # a head is mostly background: work in the classes' box
        for cls, sources in self.sources_by_class().items():
            if not cls:  # a source label mapped to the background: the background stays 0
                continue
            if self._splits(sources):
                left, right = split_hemispheres(classes == cls, volume)
                view[left[box]], view[right[box]] = self.left_right
            else:
                view[inner == cls] = sources[0]
        return labels

    # -- mask colours <-> classes ---------------------------------------------------
    @property
    def colours(self) -> np.ndarray:
        """(num_classes, 3) uint8: class -> its mask colour (index it with a class map)."""
        lut = np.zeros((self.num_classes, 3), np.uint8)
        for colour, cls in self.rgb_map.items():
            lut[cls] = colour
        return lut

    def mask_to_classes(self, mask: np.ndarray, name: str, exact: bool = True) -> np.ndarray:
        """A mask image -> classes (:func:`mask_to_classes`)."""
        return mask_to_classes(mask, self.rgb_map, name, exact)

    def colour_table(self) -> tuple[np.ndarray, np.ndarray]:
        """(colour keys, classes) as int32 arrays, for a lookup table (:func:`colour_keys`)."""
        return colour_keys(np.array(list(self.rgb_map))), np.array(list(self.rgb_map.values()), np.int32)

    def palette(self, n: int = 256) -> np.ndarray:
        """Display colours per label value (:func:`palette`)."""
        return palette(self.rgb_map, n)
