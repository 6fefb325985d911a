"""Figures for the notebooks and the command line, drawn with matplotlib from data (arrays,
tables, the small records below), never from folders. The pictures redrawn often or made
for every volume of a batch are NumPy and PIL alone, in :mod:`hippo_utils.display.pictures`.

Figures are built with :class:`matplotlib.figure.Figure` directly, not pyplot, so that
nothing depends on a backend or global state; in a notebook a returned Figure shows
itself, and :func:`save_figure` writes it atomically.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib.colors
import matplotlib.figure
import matplotlib.ticker
import numpy as np

from hippo_utils.core.files import atomic_write_bytes
from hippo_utils.core.png import read_rgb
from hippo_utils.data.labels import LABEL_COLOURS
from hippo_utils.display.pictures import (
    AGREEMENT_COLOURS,
    _as_volume,
    _label_point,
    _planes,
    _resized_mask,
    agreement,
    display_note,
    overlay,
    zoom_box,
)


@dataclass(frozen=True)
class Slice:
    """A derived slice to draw: a title, the grey image (uint8) and its RGB mask (or None)."""

    title: str
    image: np.ndarray
    mask: np.ndarray | None = None


@dataclass(frozen=True)
class SliceSamples:
    """Slices of a derived dataset, the plane they were cut along, and what they are."""

    slices: Sequence[Slice]
    plane: str | None
    title: str


@dataclass(frozen=True)
class LeakageExample:
    """A test slice, its neighbours and the most alike slice of another head, zoomed alike."""

    slices: Sequence[Slice]
    plane: str | None


@dataclass(frozen=True)
class EpochPreviews:
    """The predictions saved after some epochs, per slice: ``images[c]`` (grey),
    ``predictions[c][r]`` (RGB, epoch ``epochs[r]``) and, when known, ``truths[c]`` (RGB)."""

    names: Sequence[str]
    epochs: Sequence[int]
    images: Sequence[np.ndarray]
    predictions: Sequence[Sequence[np.ndarray]]
    truths: Sequence[np.ndarray] | None
    plane: str | None


class Figure(matplotlib.figure.Figure):
    """A figure that shows itself in Jupyter without pyplot or a backend (``_repr_png_``)."""

    def _repr_png_(self) -> bytes:
        buf = io.BytesIO()
        self.savefig(buf, format="png", dpi=80, bbox_inches="tight")
        return buf.getvalue()


SPLIT_COLOURS = {"train": "#4C72B0", "valid": "#DD8452", "test": "#55A868"}
LABEL_CMAP = matplotlib.colors.ListedColormap(LABEL_COLOURS)


def save_figure(fig: Figure, path: str | os.PathLike[str], dpi: int = 100, tight: bool = True) -> Path:
    """``fig`` as a PNG, atomically. ``tight`` crops the margins, at the cost of drawing the
    figure twice."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight" if tight else None, metadata={"Software": None})
    atomic_write_bytes(path, buf.getvalue())
    return Path(path)


def split_statistics(counts: dict[str, int], subjects: dict[str, list[str]] | None = None) -> Figure:
    """Bar chart of images per split (as the original showed), with subject counts."""
    fig = Figure(figsize=(5, 3.2))
    ax = fig.subplots()
    names = list(counts)
    bars = ax.bar(names, [counts[n] for n in names], color=[SPLIT_COLOURS.get(n, "grey") for n in names])
    for bar, n in zip(bars, names, strict=True):
        label = f"{counts[n]}" + (f"\n{len(subjects[n])} subj." if subjects else "")
        ax.annotate(label, (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center", va="bottom", fontsize=9)
    ax.set_ylabel("images")
    ax.set_title("Derived slices per split (split by subject)")
    ax.margins(y=0.25)
    return fig


def agreement_legend(fig: Figure, **kwargs) -> None:
    """The TP/FP/FN colours as a legend below the figure."""
    from matplotlib.patches import Patch

    handles = [Patch(color=np.asarray(c) / 255, label=name) for name, c in AGREEMENT_COLOURS.items()]
    fig.legend(handles=handles, loc="lower center", ncol=3, fontsize=8, frameon=False, **kwargs)


def sample_grid(samples: SliceSamples) -> Figure:
    """Images (top) and their masks overlaid (bottom) of some labelled slices
    (:func:`hippo_utils.data.derive.sample_slices` picks them)."""
    pick = samples.slices
    aspect = pick[0].image.shape[0] / pick[0].image.shape[1] if pick else 1.0  # a crop may be wider than tall
    fig = Figure(figsize=(2.2 * max(len(pick), 1), 4.4 * aspect + 0.6))
    axes = fig.subplots(2, max(len(pick), 1), squeeze=False)
    for i, s in enumerate(pick):
        axes[0, i].imshow(s.image, cmap="gray", vmin=0, vmax=255)
        axes[0, i].set_title(s.title, fontsize=8)
        axes[1, i].imshow(overlay(s.image, s.mask))
    for ax in axes.ravel():
        ax.set_axis_off()
        letter_axes(ax, samples.plane, fontsize=8)
    fig.suptitle(f"{samples.title}: images (top) and masks (bottom)", fontsize=10)
    return fig


def _draw_slice(
    ax,
    vol,
    data: np.ndarray,
    plane: str,
    index: int,
    labels: np.ndarray | None,
    square_pixels: bool = False,
    contour: bool = False,
) -> None:
    """One slice in display orientation (radiological), ticks in the array's own indices,
    the physical aspect (unless ``square_pixels``) and R/L, A/P, S/I at the edges. Labels
    are filled in their colours, or outlined in red with ``contour``."""
    from hippo_utils.data.preprocess import display_stack, plane_axes

    axes = plane_axes(vol, plane)
    _, row_axis, col_axis, flip_r, flip_c = axes

    def oriented(a):
        return display_stack(a, *axes)[index]

    n_r, n_c = vol.shape[row_axis], vol.shape[col_axis]
    cols = (n_c - 0.5, -0.5) if flip_c else (-0.5, n_c - 0.5)
    rows = (-0.5, n_r - 0.5) if flip_r else (n_r - 0.5, -0.5)  # (bottom, top) of the shown image
    sp = vol.spacing
    aspect = 1.0 if square_pixels else sp[row_axis] / sp[col_axis]
    extent = (*cols, *rows)
    ax.imshow(oriented(data), cmap="gray", aspect=aspect, extent=extent, interpolation="nearest")
    if labels is not None and contour:
        ax.contour(oriented(labels) > 0, levels=[0.5], colors="red", linewidths=0.8, origin="upper", extent=extent)
    elif labels is not None:
        lab = oriented(labels)
        ax.imshow(
            np.ma.masked_where(lab == 0, lab),
            cmap=LABEL_CMAP,
            vmin=0,
            vmax=len(LABEL_COLOURS) - 1,
            alpha=0.55,
            aspect=aspect,
            extent=extent,
            interpolation="nearest",
        )
    ax.set_xlabel(f"array axis {col_axis}", fontsize=8)
    ax.set_ylabel(f"array axis {row_axis}", fontsize=8)
    ax.tick_params(labelsize=7)
    letter_axes(ax, plane)


def letter_axes(ax, plane: str | None, fontsize: int = 10) -> None:
    """R/L, A/P, S/I at the edges of an axes showing a slice of ``plane`` in display orientation
    (nothing for ``axisN`` planes or None)."""
    from matplotlib import patheffects

    from hippo_utils.data.preprocess import display_directions

    outline = [patheffects.withStroke(linewidth=2.5, foreground="black")]  # readable on bone and on air
    for edge, letter in ((display_directions(plane) if plane else None) or {}).items():
        x, y = {"top": (0.5, 0.95), "bottom": (0.5, 0.05), "left": (0.05, 0.5), "right": (0.95, 0.5)}[edge]
        ax.text(
            x,
            y,
            letter,
            transform=ax.transAxes,
            color="white",
            fontsize=fontsize,
            fontweight="bold",
            ha="center",
            va="center",
            path_effects=outline,
        )


def three_planes(
    volume,
    spacing: Sequence[float] | None = None,
    labels: np.ndarray | None = None,
    point: Sequence[int] | None = None,
    title: str = "",
    data: np.ndarray | None = None,
    anatomical: bool = True,
) -> Figure:
    """Sagittal, coronal and axial slices through ``point`` (default: the label centre), in
    the radiological display orientation with direction letters, the physical aspect for
    anisotropic voxels, and ticks in the array's own indices.

    Args:
        volume: a :class:`~hippo_utils.data.volumes.Volume` (its affine gives the directions), or
            an array with ``spacing``.
        data: intensities to show instead of the volume's (e.g. normalised ones).
        anatomical: off, the three array axes without direction letters (an affine that is not
            to be read as anatomy).
    """
    vol = _as_volume(volume, spacing)
    data = vol.data if data is None else data
    point = _label_point(vol, labels) if point is None else point
    fig = Figure(figsize=(13, 4.6))
    planes = _planes(vol, anatomical)
    for ax, (plane, axis) in zip(fig.subplots(1, 3), planes, strict=True):
        _draw_slice(ax, vol, data, plane, point[axis], labels)
        ax.set_title(f"{plane}: array axis {axis} = {point[axis]}", fontsize=9)
    if labels is not None:
        from matplotlib.patches import Patch

        present = [int(v) for v in np.unique(labels) if 0 < v < len(LABEL_COLOURS)]
        fig.legend(
            handles=[Patch(color=LABEL_COLOURS[v], label=f"label {v}") for v in present],
            loc="lower center",
            ncol=max(1, len(present)),
            fontsize=8,
            frameon=False,
        )
    fig.suptitle((f"{title}\n" if title else "") + display_note(planes), fontsize=10)
    fig.subplots_adjust(left=0.04, right=0.99, bottom=0.16, top=0.84, wspace=0.25)  # fits untrimmed, too
    return fig


def aspect_comparison(
    volume, spacing: Sequence[float] | None = None, axis: int = 0, index: int = 0, labels: np.ndarray | None = None
) -> Figure:
    """The same slice drawn with square pixels (wrong for anisotropic voxels) and with
    the physical aspect, to show why in-plane resampling matters."""
    vol = _as_volume(volume, spacing)
    plane = next(p for p, a in _planes(vol) if a == axis)
    rest = [a for a in range(3) if a != axis]
    fig = Figure(figsize=(11, 4.4))
    axes = fig.subplots(1, 2)
    sp = vol.spacing
    for ax, square, title in (
        (axes[0], True, "pixels drawn square (distorted)"),
        (axes[1], False, f"physical aspect ({' x '.join(f'{sp[a]:g}' for a in rest)} mm)"),
    ):
        _draw_slice(ax, vol, vol.data, plane, index, labels, square_pixels=square, contour=True)
        ax.set_title(f"{plane} slice {index}: {title}", fontsize=9)
    return fig


def intensity_histograms(volumes: dict[str, np.ndarray], normalised: dict[str, np.ndarray]) -> Figure:
    """Raw intensity histograms (different scanner scales) beside normalised ones."""
    fig = Figure(figsize=(11, 3.6))
    axes = fig.subplots(1, 2)
    for name, data in volumes.items():
        sample = data.ravel()[::7]
        axes[0].hist(sample[sample > 0], bins=100, histtype="step", label=name, density=True)
    for name, data in normalised.items():
        sample = data.ravel()[::7]
        axes[1].hist(sample[sample > 0], bins=100, histtype="step", label=name, density=True)
    axes[0].set_title("raw intensities (voxels > 0)")
    axes[1].set_title("after per-volume percentile normalisation")
    axes[0].set_xlabel("scanner units")
    axes[1].set_xlabel("0..1")
    for ax in axes:
        ax.set_yscale("log")
        ax.legend(fontsize=8)
    return fig


def history_plot(history: dict[str, list[float]], columns: Sequence[str], title: str = "") -> Figure:
    """Line plot of logged values per epoch (1-based on the x axis). Its margins are fixed, so
    that it saves without a "tight" second drawing (training writes it after every epoch)."""
    fig = Figure(figsize=(5.5, 3.4))
    fig.subplots_adjust(left=0.11, right=0.98, bottom=0.14, top=0.91)
    plot_history(fig.subplots(), history, columns, title)
    return fig


def plot_history(
    ax, history: dict[str, list[float]], columns: Sequence[str], title: str = "", small: bool = False
) -> None:
    """Draw ``columns`` of ``history`` per epoch on ``ax``: training solid, validation (``val_``)
    dashed, the epochs 1-based and whole. ``small``: the type of a panel of several plots."""
    for col in columns:
        values = history.get(col, [])
        ax.plot(
            range(1, len(values) + 1),
            values,
            marker="o",
            markersize=3,
            linestyle="--" if col.startswith("val_") else "-",
            label=col,
        )
    ax.set_xlabel("epoch", fontsize=8 if small else None)
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.set_title(title, fontsize=9 if small else None)
    ax.grid(alpha=0.3)
    if any(history.get(c) for c in columns):
        ax.legend(fontsize=7 if small else 8)


def figure_png(fig: Figure, dpi: int = 80) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    return buf.getvalue()


def architecture(m, specs: Sequence, title: str = "") -> Figure:
    """The FlexUNet of a [model] section drawn as a U from its levels
    (:func:`hippo_utils.model.flexunet.level_specs`): one box per level with its filters,
    kernel, dilation and feature-map size; skip connections across. No graphviz needed."""
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    L = len(specs)
    fig = Figure(figsize=(11, 0.75 * L + 1.6))
    ax = fig.subplots()
    ax.set_xlim(0, 10)
    ax.set_ylim(-L - 0.6, 1.2)
    ax.set_axis_off()
    width, height = 2.9, 0.6

    def box(x, y, text, colour):
        ax.add_patch(
            FancyBboxPatch(
                (x, y - height / 2),
                width,
                height,
                boxstyle="round,pad=0.03",
                facecolor=colour,
                edgecolor="#333333",
                linewidth=0.8,
            )
        )
        ax.text(x + width / 2, y, text, ha="center", va="center", fontsize=8)

    def arrow(xy0, xy1, style="-|>", colour="#333333", ls="-"):
        ax.add_patch(
            FancyArrowPatch(xy0, xy1, arrowstyle=style, mutation_scale=9, color=colour, linestyle=ls, linewidth=0.9)
        )

    for s in specs:
        y = -s.level
        label = (
            f"{'bridge' if s.level == L - 1 else f'enc{s.level}'}: {s.filters} filters, "
            f"{s.kernel}x{s.kernel}"
            + (f" d{s.dilation}" if s.dilation > 1 else "")
            + f"\n{s.size[0]}x{s.size[1]}, dropout {s.dropout:.2f}"
        )
        x = 3.55 if s.level == L - 1 else 0.3
        box(x, y, label, "#d6e4f0" if s.level < L - 1 else "#f3d9c6")
        if s.level < L - 1:
            box(
                6.8,
                y,
                f"dec{s.level}: up 2x2 -> {s.filters}, concat\n{s.filters} filters, "
                f"{s.kernel}x{s.kernel}, {s.size[0]}x{s.size[1]}",
                "#dcefd8",
            )
            arrow(
                (0.3 + width / 2, y - height / 2),
                (0.3 + width / 2 if s.level < L - 2 else 3.55, y - 1 + (height / 2 if s.level < L - 2 else 0)),
            )
            arrow((0.3 + width, y), (6.8, y), style="-|>", colour="#888888", ls="--")
            start = (6.8 + width / 2, y - 1 + height / 2) if s.level < L - 2 else (3.55 + width, y - 1)
            arrow(start, (6.8 + width / 2, y - height / 2))
    ax.text(8.25, 0.75, f"head: 1x1 conv -> {m.num_classes} classes, softmax", ha="center", fontsize=8)
    ax.text(
        1.75,
        0.75,
        f"input {m.image_height}x{m.image_width}x{m.image_channels}" + (" (/255)" if m.input_normalize else ""),
        ha="center",
        fontsize=8,
    )
    ax.text(
        5.0,
        -L - 0.35,
        "dashed: skip connections; down: 2x2 max-pool; up: 2x2 stride-2 transposed conv",
        ha="center",
        fontsize=7,
        color="#555555",
    )
    if title:
        ax.set_title(title, fontsize=10)
    return fig


def image_files(paths: Sequence[str | os.PathLike[str]], title: str = "", width: float = 9.0) -> Figure:
    """Image files (PNG, JPEG) shown one above the other, e.g. the strips and QC pictures
    that inference writes."""
    arrays = [read_rgb(p) for p in paths]
    w = max(a.shape[1] for a in arrays)
    arrays = [np.pad(a, ((0, 0), (0, w - a.shape[1]), (0, 0)), constant_values=255) for a in arrays]
    return image_figure(np.concatenate(arrays, axis=0), title, width)


def image_figure(array: np.ndarray, title: str = "", width: float = 9.0) -> Figure:
    """Show an RGB or grey array as a figure (keeps the notebooks free of plotting code)."""
    h, w = array.shape[:2]
    fig = Figure(figsize=(width, width * h / w + 0.4))
    ax = fig.subplots()
    ax.imshow(array, cmap="gray" if array.ndim == 2 else None, interpolation="nearest")
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=10)
    return fig


def epoch_previews(previews: EpochPreviews) -> Figure:
    """Saved epoch predictions (:func:`hippo_utils.model.folder.read_epoch_previews` reads
    them): one row per epoch (e.g. start, middle, end), one column per slice. With the
    slices' masks the first row is the ground truth, each prediction is coloured against it
    (TP/FP/FN) and every column is zoomed on its hippocampus."""
    with_truth = previews.truths is not None
    rows = (["ground truth"] if with_truth else []) + [f"epoch {e}" for e in previews.epochs]
    fig = Figure(figsize=(2.0 * len(previews.names), 2.0 * len(rows) + 0.5))
    axes = fig.subplots(len(rows), len(previews.names), squeeze=False)
    for c, name in enumerate(previews.names):
        img = previews.images[c]
        preds = [_resized_mask(p, img.shape) for p in previews.predictions[c]]
        truth = _resized_mask(previews.truths[c], img.shape) if with_truth else None
        box = zoom_box([truth, *preds] if truth is not None else preds, img.shape)
        panels = ([overlay(img, truth)] if truth is not None else []) + [
            agreement(img, truth, p) if truth is not None else overlay(img, p) for p in preds
        ]
        for r, panel in enumerate(panels):
            ax = axes[r, c]
            ax.imshow(panel[box], interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(name, fontsize=8)
            if c == 0:
                ax.set_ylabel(rows[r], fontsize=9)
        for r in range(len(panels)):
            letter_axes(axes[r, c], previews.plane, fontsize=8)
    if with_truth:
        agreement_legend(fig)
        fig.subplots_adjust(bottom=0.08)
    return fig


def split_leakage(example: LeakageExample) -> Figure:
    """Why a slice-level split leaks: a test slice, its two neighbours in the same head
    (which a slice split would put in training) and the most alike slice of another head,
    zoomed on the hippocampus, each with its pixel correlation to the test slice
    (:func:`hippo_utils.data.derive.leakage_example` finds them)."""
    fig = Figure(figsize=(10, 3.3))
    for ax, s in zip(fig.subplots(1, len(example.slices)), example.slices, strict=True):
        ax.imshow(s.image, cmap="gray", vmin=0, vmax=255)
        ax.set_title(s.title, fontsize=8)
        ax.set_axis_off()
        letter_axes(ax, example.plane, fontsize=8)
    fig.suptitle(
        "a slice split would put the neighbours in training: nearly the test slice itself "
        "(r: pixel correlation with the test slice)",
        fontsize=9,
    )
    return fig


def dice_per_subject(subjects: list[dict]) -> Figure:
    """Per-subject 3D Dice as points (one per subject, named when few) with the mean, one
    column per class and for the whole hippocampus: with a handful of subjects, a box plot
    would invent a distribution."""
    cols = [c for c in subjects[0] if c.endswith("_dice")]
    fig = Figure(figsize=(1.8 * len(cols) + 2.4, 3.6))
    ax = fig.subplots()
    for i, col in enumerate(cols):
        values = np.array([r[col] for r in subjects], float)
        x = i + np.linspace(-0.12, 0.12, len(values)) if len(values) > 1 else np.array([float(i)])
        ax.scatter(x, values, s=22, color="#4C72B0", zorder=3)
        ax.hlines(values.mean(), i - 0.25, i + 0.25, color="black", linewidth=1.5, zorder=2)
        ax.annotate(f"mean {values.mean():.3f}", (i + 0.27, values.mean()), va="center", fontsize=8)
        if len(values) <= 6:
            for xi, v, r in zip(x, values, subjects, strict=True):
                ax.annotate(
                    str(r.get("subject", "")),
                    (xi, v),
                    xytext=(4, 2),
                    textcoords="offset points",
                    fontsize=7,
                    color="#555555",
                )
    ax.set_xticks(range(len(cols)), [c.removesuffix("_dice") for c in cols])
    ax.set_xlim(-0.5, len(cols) - 0.2)
    ax.set_ylabel("3D Dice per subject")
    ax.set_title(f"test subjects (n = {len(subjects)}; line: mean)")
    ax.grid(axis="y", alpha=0.3)
    return fig
