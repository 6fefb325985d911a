"""The live training panel for notebooks: ipywidgets updated in place.

Every epoch it replaces the bytes of two ``ipywidgets.Image`` widgets (the previews and
the curves) and moves one progress bar per epoch. It never clears the cell, starts no
thread and needs no ipympl, so it works in JupyterLab, classic Jupyter and Colab.
"""

from __future__ import annotations

import keras

from hippo_utils import plots
from hippo_utils.config import Config


class LiveTrainingPanel(keras.callbacks.Callback):
    """A Keras callback that shows training live in a notebook."""

    def __init__(self, cfg: Config, total_epochs: int, steps: int, history: dict[str, list[float]]):
        super().__init__()
        import ipywidgets as w
        from IPython.display import display

        self.cfg, self.total, self.steps, self.history = cfg, total_epochs, steps, history
        self.status = w.HTML("<b>starting…</b>")
        self.bar = w.IntProgress(min=0, max=steps, description="epoch", layout=w.Layout(width="60%"))
        self.previews = w.Image(format="png", layout=w.Layout(max_width="720px"))
        self.curves = w.Image(format="png", layout=w.Layout(max_width="560px"))
        caption = w.HTML("<small>columns: mini_test slices; rows: image, ground truth, prediction</small>")
        self.box = w.VBox([self.status, self.bar, w.HBox([w.VBox([self.previews, caption]), self.curves])])
        display(self.box)

    def on_epoch_begin(self, epoch, logs=None):
        self.bar.value = 0
        self.bar.description = f"epoch {epoch + 1}/{self.total}"

    def on_train_batch_end(self, batch, logs=None):
        self.bar.value = batch + 1

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        shown = " · ".join(f"{k} <b>{logs[k]:.4f}</b>" for k in ("loss", "val_loss", "dice_fg", "val_dice_fg")
                           if k in logs)
        self.status.value = f"epoch {epoch + 1}/{self.total} · {shown}"
        fig = plots.Figure(figsize=(7, 3))
        axes = fig.subplots(1, 2)
        for ax, cols, title in ((axes[0], ("loss", "val_loss"), "loss"),
                                (axes[1], ("dice_fg", "val_dice_fg"), "foreground Dice")):
            for col in cols:
                values = self.history.get(col, [])
                ax.plot(range(1, len(values) + 1), values, marker="o", markersize=3,
                        linestyle="--" if col.startswith("val_") else "-", label=col)
            ax.set_title(title, fontsize=9)
            ax.set_xlabel("epoch", fontsize=8)
            ax.legend(fontsize=7)
            ax.grid(alpha=0.3)
        self.curves.value = plots.figure_png(fig)

    def on_train_end(self, logs=None):
        self.status.value = self.status.value + " · <b>done</b>"

    def show_previews(self, epoch: int, update: dict) -> None:
        strip = plots.preview_strip(update["images"], update["truths"], update["preds"], update["names"],
                                    tile=128)
        self.previews.value = plots.png_bytes(strip)
