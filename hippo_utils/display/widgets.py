"""Notebook widgets that also leave a picture: the live training panel, and the display
data that gives any ipywidget a static PNG beside it.

A rendered page (``make docs``, GitHub) has no kernel, so a widget alone shows nothing
there. :func:`widget_bundle` displays the widget with an ``image/png`` of what it shows:
a live front end draws the widget, a static renderer falls back to the picture.

Works with ipywidgets 7.7 (Colab) and 8.x: nothing here uses what 7.x lacks, and the
display data is built here rather than by ``Widget._repr_mimebundle_``, which 7.x lacks.
Imports no TensorFlow: the trainer hands events to the panel (``train(cfg, watch=panel)``).
"""

from __future__ import annotations

import base64
import html
import io

import numpy as np

from hippo_utils.core.png import png_bytes
from hippo_utils.display import figures, pictures

WIDGET_VIEW_MIMETYPE = "application/vnd.jupyter.widget-view+json"
# What the rows and columns of the panel's previews are (under the live widget and in its picture).
PREVIEW_CAPTION = (
    "columns: mini_test slices, zoomed on the hippocampus; rows: image, ground truth, prediction against the truth"
)
CURVES = (("loss", ("loss", "val_loss"), "loss"), ("dice", ("dice_fg", "val_dice_fg"), "foreground Dice"))


def widget_bundle(widget, png: bytes | None = None) -> dict[str, object]:
    """The display data of ``widget`` (ipywidgets 7 or 8), with ``png`` as its static picture.

    Use as ``IPython.display.display(widget_bundle(w, png), raw=True)``.
    """
    text = repr(widget)
    data: dict[str, object] = {
        "text/plain": text if len(text) <= 110 else text[:110] + "…",
        WIDGET_VIEW_MIMETYPE: {"version_major": 2, "version_minor": 0, "model_id": widget.model_id},
    }
    if png:
        data["image/png"] = base64.b64encode(png).decode("ascii")
    return data


def stacked(*pngs: bytes, gap: int = 8) -> bytes:
    """PNG images placed top to bottom on white, left-aligned, as one PNG (a page's column
    is narrow, so the pictures keep their size)."""
    from PIL import Image

    images = [Image.open(io.BytesIO(p)).convert("RGB") for p in pngs if p]
    if not images:
        return b""
    width = max(im.width for im in images)
    height = sum(im.height for im in images) + gap * (len(images) - 1)
    canvas = Image.new("RGB", (width, height), "white")
    y = 0
    for im in images:
        canvas.paste(im, (0, y))
        y += im.height + gap
    return png_bytes(np.asarray(canvas))


NO_GLYPH = str.maketrans({"–": "-", "—": "-"})  # dashes PIL's own font draws as a box


def captioned(png: bytes, text: str, size: int = 14) -> bytes:
    """``png`` with ``text`` above it: HTML tags dropped, a line per ``<br>``, long lines
    wrapped at `` · `` or spaces to the picture's width."""
    import re

    from PIL import Image, ImageDraw

    image = Image.open(io.BytesIO(png)).convert("RGB")
    font = pictures.pil_font(size)
    width = max(image.width - 8, 100)
    lines: list[str] = []
    for raw in re.split(r"<br\s*/?>", text.translate(NO_GLYPH)):
        words = re.sub(r"<[^>]+>", "", raw).split(" ")
        line = ""
        for word in words:
            trial = f"{line} {word}".strip()
            if line and font.getlength(trial) > width:
                lines.append(line.rstrip(" ·"))
                line = word.lstrip("·").strip()
            else:
                line = trial
        if line.strip():
            lines.append(line)
    height = (size + 6) * len(lines) + 6
    canvas = Image.new("RGB", (image.width, image.height + height), "white")
    draw = ImageDraw.Draw(canvas)
    for i, line in enumerate(lines):
        draw.text((4, 4 + i * (size + 6)), line, fill="black", font=font)
    canvas.paste(image, (0, height))
    return png_bytes(np.asarray(canvas))


def curves_png(history: dict[str, list[float]]) -> bytes:
    """Loss and foreground Dice per epoch, side by side (:func:`~hippo_utils.display.figures.plot_history`)."""
    fig = figures.Figure(figsize=(7, 3))
    for ax, (_, cols, title) in zip(fig.subplots(1, 2), CURVES, strict=True):
        figures.plot_history(ax, history, cols, title, small=True)
    return figures.figure_png(fig)


class LiveTrainingPanel:
    """Training, live in a notebook: the epoch's progress, the loss and Dice curves, and the
    ``mini_test`` previews (image, ground truth, prediction), updated in place.

    Hand it to the trainer: ``train(cfg, watch=LiveTrainingPanel())``. It displays itself
    when training begins and, when it ends, leaves a picture of its final state in the
    cell's output. It never clears the cell, starts no thread and needs no ipympl, so it
    works in JupyterLab, classic Jupyter and Colab.
    """

    def __init__(self, title: str = ""):
        import ipywidgets as w

        self.title = title
        self.total = 0
        self.status = w.HTML("<b>starting…</b>")
        self.notes = w.HTML("")
        self.bar = w.IntProgress(min=0, max=1, value=0, description="epoch", layout=w.Layout(width="60%"))
        self.previews = w.Image(format="png", layout=w.Layout(max_width="720px"))
        self.curves = w.Image(format="png", layout=w.Layout(max_width="560px"))
        caption = w.HTML(f"<small>{PREVIEW_CAPTION} ({pictures.AGREEMENT_CAPTION})</small>")
        self.box = w.VBox([self.status, self.notes, self.bar, w.HBox([w.VBox([self.previews, caption]), self.curves])])
        self._handle = None

    # The trainer's events (hippo_utils.training.trainer.train, argument ``watch``).
    def train_begin(self, total_epochs: int, steps: int, initial_epoch: int = 0) -> None:
        from IPython.display import display

        self.total = total_epochs
        self.bar.max = max(1, steps)
        self.status.value = f"{self.title} epoch {initial_epoch}/{total_epochs} done; training…".strip()
        self._handle = display(widget_bundle(self.box), raw=True, display_id=True)

    def notice(self, text: str, warning: str | None = None) -> None:
        """A line about the run (its precision and memory), and a warning to stand out, if any."""
        self.notes.value = f"<small>{html.escape(text, quote=False)}</small>" + (
            f"<br><b style='color:#b00'>{html.escape(warning, quote=False)}</b>" if warning else ""
        )

    def epoch_begin(self, epoch: int) -> None:
        self.bar.value = 0
        self.bar.description = f"epoch {epoch + 1}/{self.total}"

    def batch_end(self, batch: int) -> None:
        self.bar.value = min(batch + 1, self.bar.max)

    def epoch_end(self, epoch: int, logs: dict[str, float], history: dict[str, list[float]]) -> None:
        shown = " · ".join(
            f"{k} <b>{logs[k]:.4f}</b>" for k in ("loss", "val_loss", "dice_fg", "val_dice_fg") if k in logs
        )
        self.status.value = f"epoch {epoch + 1}/{self.total} · {shown}"
        self.curves.value = curves_png(history)

    def show_previews(self, epoch: int, update: dict) -> None:
        strip = pictures.preview_strip(
            update["images"], update["truths"], update["preds"], tile=128, plane=update.get("plane")
        )
        self.previews.value = png_bytes(strip)

    def train_end(self, history: dict[str, list[float]]) -> None:
        """Mark the run done and leave the final panel as a picture beside the widget."""
        if history and history.get("loss"):
            self.curves.value = curves_png(history)
            last = {k: v[-1] for k, v in history.items() if v}
            shown = " · ".join(
                f"{k} <b>{last[k]:.4f}</b>" for k in ("loss", "val_loss", "dice_fg", "val_dice_fg") if k in last
            )
            self.status.value = f"epoch {len(history['loss'])}/{self.total} · {shown}"
        self.status.value += " · <b>done</b>"
        if self._handle is not None:
            self._handle.update(widget_bundle(self.box, self.snapshot()), raw=True)

    def snapshot(self) -> bytes:
        """The panel as one PNG: its status line, the previews, then the curves."""
        shown = stacked(bytes(self.previews.value or b""), bytes(self.curves.value or b""))
        text = f"{self.status.value}<br>{self.notes.value}<br>{PREVIEW_CAPTION}<br>{pictures.AGREEMENT_CAPTION}"
        return captioned(shown, text) if shown else b""
