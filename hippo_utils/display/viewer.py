"""An interactive slice viewer for notebooks: a volume with optional ground-truth and
predicted labels, or the image/mask pairs of a derived 2D dataset.

Drawing is NumPy and PIL into an ``ipywidgets.Image`` (PNG bytes), with no matplotlib
figure per event, so it keeps up with a dragged slider; nothing is used that breaks
on Colab (no ipympl, no custom widget manager, no thread). Slices are shown in the
display orientation of :mod:`hippo_utils.data.preprocess` (radiological) and resampled to
the physical aspect, so anisotropic voxels look right.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

from hippo_utils.core.png import png_bytes, read_grey, read_rgb
from hippo_utils.data.dataset import pair_files
from hippo_utils.data.labels import DEFAULT_RGB_MAP, mask_to_classes, palette
from hippo_utils.data.preprocess import SliceGeometry, display_directions, normalize_intensity, slice_geometry
from hippo_utils.data.volumes import Volume, load_labels, load_volume
from hippo_utils.display.pictures import AGREEMENT_CAPTION, agreement, mark_directions
from hippo_utils.model.metrics import dice_score

MODES = ("overlay", "side by side", "contour", "agreement")
PLANES = ("coronal", "axial", "sagittal")
_WORLD_AXIS = {"coronal": 1, "axial": 2, "sagittal": 0}


class SliceViewer:
    """Browse a volume slice by slice, with labels and predictions.

    Args:
        volume: a path (Analyze or NIfTI) or an array, or a :class:`Volume`.
        label: ground-truth labels (path or array on the same grid), optional.
        prediction: predicted labels (path or array on the same grid), optional.
        spacing: voxel size in mm for an array volume (ignored for files).
        rgb_map: the config's ``[mask] rgb_map``; label v takes the colour of class v.
        plane: the plane to start in: coronal, axial, sagittal (or axis0..axis2).
        title: shown above the controls.

    The viewer shows itself when it is the last expression of a cell.
    """

    def __init__(
        self,
        volume,
        label=None,
        prediction=None,
        spacing=None,
        rgb_map=None,
        plane: str = "coronal",
        title: str = "",
        display_size: int = 420,
    ):
        self.volume: Volume = load_volume(volume, spacing=spacing)
        self.label = None if label is None else load_labels(label, like=self.volume)
        self.prediction = None if prediction is None else load_labels(prediction, like=self.volume)
        self.palette = palette(rgb_map)
        self.display_size = display_size
        self._pages = False
        self._norm = normalize_intensity(self.volume)
        self._cache: dict[str, tuple] = {}
        self._build(plane, title)

    # -------------------------------------------------------------- alternative input
    @classmethod
    def from_dataset(
        cls, dataset_dir: str | os.PathLike[str], split: str = "test", rgb_map=None, title: str = ""
    ) -> SliceViewer:
        """Page through the image/mask pairs of a derived 2D dataset split."""
        root = Path(dataset_dir)
        pairs = pair_files(root / split / "images", root / split / "masks")
        images = np.stack([read_grey(p[0]).astype(np.float32) for p in pairs])
        rgb = rgb_map or DEFAULT_RGB_MAP
        masks = np.stack([mask_to_classes(read_rgb(p[1]), rgb, str(p[1]), exact=False) for p in pairs])
        self = cls.__new__(cls)
        self.volume = Volume(images, np.eye(4))
        self.label, self.prediction = masks, None
        self.palette = palette(rgb)
        self.display_size = 420
        self._pages = True
        self._names = [p[0].stem for p in pairs]
        self._norm = images / 255.0
        self._cache = {}
        self._build("axis0", title or f"{root.name}/{split}: {len(pairs)} slices")
        return self

    # ---------------------------------------------------------------------- geometry
    def _oriented(self, plane: str) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None, SliceGeometry]:
        """(image, label, prediction) stacks in display orientation, and the plane's geometry
        (fitted to the display size: its ``resized`` is the slice at its physical aspect)."""
        if plane not in self._cache:
            geom = slice_geometry(self.volume, plane, (self.display_size, self.display_size))

            def orient(a):
                return None if a is None else geom.orient(a)

            self._cache[plane] = (orient(self._norm), orient(self.label), orient(self.prediction), geom)
        return self._cache[plane]

    def display_shape(self, plane: str | None = None) -> tuple[int, int]:
        """(height, width) in screen pixels: the slice at its physical aspect ratio."""
        return self._oriented(plane or self.plane.value)[3].resized

    def best_slice(self, plane: str | None = None) -> int:
        """The slice with the most hippocampus (ground truth, else prediction)."""
        img, lab, pred, _ = self._oriented(plane or self.plane.value)
        ref = lab if lab is not None else pred
        if ref is None or not ref.any():
            return img.shape[0] // 2
        return int(np.argmax((ref > 0).reshape(ref.shape[0], -1).sum(axis=1)))

    # ------------------------------------------------------------------------- drawing
    def render(self) -> np.ndarray:
        """The current view as an RGB uint8 array (what the widget shows)."""
        plane, idx = self.plane.value, self.slider.value
        img, lab, pred, _ = self._oriented(plane)
        lo, hi = self.window.value
        grey = np.clip((img[idx] - lo) / max(hi - lo, 1e-6), 0, 1)
        base = np.repeat((grey * 255).astype(np.uint8)[..., None], 3, axis=2)
        alpha = self.opacity.value
        show_gt = lab is not None and self.show_label.value
        show_pred = pred is not None and self.show_prediction.value
        mode = self.mode.value

        def fill(rgb, labels):
            out = rgb.astype(np.float32)
            on = labels > 0
            out[on] = (1 - alpha) * out[on] + alpha * self.palette[labels[on]]
            return out.astype(np.uint8)

        def contour(rgb, labels, colour=None):
            out = rgb.copy()
            for v in np.unique(labels[labels > 0]):
                m = labels == v
                edge = m & ~ndimage.binary_erosion(m)
                out[edge] = self.palette[v] if colour is None else colour
            return out

        if mode == "agreement" and show_gt and show_pred:  # TP green, FP red, FN blue (pictures.AGREEMENT_COLOURS)
            shown, panels = agreement(base, lab[idx], pred[idx], alpha=alpha), 1
        elif mode == "side by side" and (show_gt or show_pred):
            left = fill(base, lab[idx]) if show_gt else base
            right = fill(base, pred[idx]) if show_pred else base
            gap = np.full((base.shape[0], 3, 3), 255, np.uint8)
            shown = np.concatenate([left, gap, right], axis=1)
            panels = 2
        else:
            shown = base
            if mode == "contour":
                if show_gt:
                    shown = contour(shown, lab[idx])
                if show_pred:
                    shown = contour(shown, pred[idx], colour=(0, 255, 255))
            else:
                if show_gt:
                    shown = fill(shown, lab[idx])
                if show_pred:
                    shown = contour(shown, pred[idx], colour=(0, 255, 255)) if show_gt else fill(shown, pred[idx])
            panels = 1
        h, w = self.display_shape(plane)
        out = np.asarray(
            Image.fromarray(shown).resize((w * panels + (3 if panels == 2 else 0), h), Image.Resampling.NEAREST)
        )
        directions = None if self._pages else display_directions(plane)
        if directions and self.show_directions.value:  # R/L, A/P, S/I at the edges of each panel
            out = (
                np.concatenate(
                    [
                        mark_directions(out[:, :w], directions),
                        out[:, w : w + 3],
                        mark_directions(out[:, w + 3 :], directions),
                    ],
                    axis=1,
                )
                if panels == 2
                else mark_directions(out, directions)
            )
        return out

    def info(self) -> str:
        """Slice index, position in mm and the slice's Dice, as HTML."""
        plane, idx = self.plane.value, self.slider.value
        img, lab, pred, geom = self._oriented(plane)
        axis = geom.axis
        n = img.shape[0]
        counted = f"slice {idx} (0–{n - 1}, as the slider counts)"
        if self._pages:
            return f"<b>{self._names[idx]}</b><br>{counted}"
        centre = np.array([(s - 1) / 2 for s in self.volume.shape], float)
        centre[axis] = idx
        world = self.volume.affine[:3, :3] @ centre + self.volume.affine[:3, 3]
        w_axis = _WORLD_AXIS.get(plane, axis)
        text = f"<b>{plane}</b> {counted}<br>position {world[w_axis]:+.1f} mm ({'xyz'[w_axis]}, scanner space)"
        if lab is not None and pred is not None:
            text += f"<br>slice Dice {dice_score(lab[idx] > 0, pred[idx] > 0):.3f}"
            if self.mode.value == "agreement":
                text += f"<br><small>{AGREEMENT_CAPTION}</small>"
        return text

    def _update(self, *_):
        self.image.value = png_bytes(self.render(), compress_level=1)
        self.status.value = self.info()

    def _on_plane(self, change):
        img = self._oriented(change["new"])[0]
        with self.slider.hold_trait_notifications():
            self.slider.max = img.shape[0] - 1
            self.slider.value = self.best_slice(change["new"])
        self._update()

    # -------------------------------------------------------------------------- widgets
    def _build(self, plane: str, title: str) -> None:
        import ipywidgets as w

        style = {"description_width": "70px"}
        planes = list(PLANES) if not plane.startswith("axis") else [plane]
        self.plane = w.Dropdown(
            options=planes,
            value=plane,
            description="plane",
            style=style,
            disabled=len(planes) == 1,
            layout=w.Layout(width="200px"),
        )
        n = self._oriented(plane)[0].shape[0]
        self.slider = w.IntSlider(
            min=0,
            max=n - 1,
            value=0,
            description="slice",
            style=style,
            continuous_update=True,
            layout=w.Layout(width="420px"),
        )
        self.slider.value = self.best_slice(plane)
        self.opacity = w.FloatSlider(min=0, max=1, step=0.05, value=0.5, description="opacity", style=style)
        self.window = w.FloatRangeSlider(min=0, max=1, step=0.01, value=(0.0, 1.0), description="window", style=style)
        self.show_label = w.Checkbox(
            value=self.label is not None, description="ground truth", disabled=self.label is None, indent=False
        )
        self.show_prediction = w.Checkbox(
            value=self.prediction is not None, description="prediction", disabled=self.prediction is None, indent=False
        )
        self.mode = w.ToggleButtons(
            options=MODES,
            value="overlay",
            style={"button_width": "110px"},
            tooltips=[
                "labels filled",
                "ground truth | prediction",
                "outlines",
                "green both, red prediction only, blue missed",
            ],
        )
        self.show_directions = w.Checkbox(value=True, description="R/L, A/P, S/I", indent=False)
        self.image = w.Image(format="png")
        self.status = w.HTML()
        for control in (
            self.slider,
            self.opacity,
            self.window,
            self.show_label,
            self.show_prediction,
            self.mode,
            self.show_directions,
        ):
            control.observe(self._update, names="value")
        self.plane.observe(self._on_plane, names="value")
        self.title = title
        header = w.HTML(f"<b>{title}</b>") if title else w.HTML()
        self.widget = w.VBox(
            [
                header,
                w.HBox([self.plane, self.mode]),
                self.slider,
                w.HBox([self.opacity, self.window]),
                w.HBox([self.show_label, self.show_prediction, self.show_directions]),
                w.HBox([self.image, self.status]),
            ]
        )
        self.widget.add_class("hippo-slice-viewer")
        self._update()

    def _repr_mimebundle_(self, include=None, exclude=None, **kwargs):
        # Built here, not by the VBox: ipywidgets 7 widgets have no _repr_mimebundle_. The
        # PNG of the first view is what a page without a kernel (make docs, GitHub) shows.
        from hippo_utils.display.widgets import widget_bundle

        return widget_bundle(self.widget, self.snapshot())

    def snapshot(self) -> bytes:
        """The current view as a PNG, under the title and the slice's position and Dice."""
        from hippo_utils.display.widgets import captioned

        return captioned(png_bytes(self.render()), "<br>".join(filter(None, [self.title, self.info()])))

    def time_updates(self, moves: int = 50) -> float:
        """Median milliseconds per slider move (render and PNG encoding, as in the notebook)."""
        times = []
        n = self.slider.max + 1
        for i in range(moves):
            t = time.perf_counter()
            self.slider.value = (self.slider.value + 1 + i) % n
            times.append(time.perf_counter() - t)
        return 1000 * float(np.median(times))
