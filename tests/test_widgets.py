"""The live training panel and the widgets' display data, without TensorFlow, so that this
file also runs under ipywidgets 7.7 (tests/test_ipywidgets7.py runs it there)."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from PIL import Image

from hippo_utils.display.widgets import WIDGET_VIEW_MIMETYPE, LiveTrainingPanel, stacked, widget_bundle


@pytest.fixture
def displayed(monkeypatch):
    """What the panel displays and updates, recorded instead of sent to a front end."""
    import IPython.display

    calls = []

    class Handle:
        def update(self, obj, **kwargs):
            calls.append(("update", obj, kwargs))

    def display(obj, **kwargs):
        calls.append(("display", obj, kwargs))
        return Handle() if kwargs.get("display_id") else None

    monkeypatch.setattr(IPython.display, "display", display)
    return calls


def _png_size(b64: str) -> tuple[int, int]:
    return Image.open(io.BytesIO(base64.b64decode(b64))).size


def _update(seed: int) -> dict:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 255, (2, 32, 32, 3)).astype(np.float32)
    truth = np.zeros((32, 32, 3), np.uint8)
    truth[10:20, 10:20] = (255, 0, 0)
    pred = np.roll(truth, seed, axis=1)
    return {"names": ["a", "b"], "images": images, "truths": [truth, truth], "preds": [pred, pred]}


def test_bundle_names_the_widget_and_carries_the_picture():
    import ipywidgets as w

    box = w.VBox([w.HTML("x")])
    png = stacked(_png(20, 10), _png(30, 5))
    data = widget_bundle(box, png)
    assert data[WIDGET_VIEW_MIMETYPE]["model_id"] == box.model_id
    assert _png_size(data["image/png"]) == (30, 10 + 8 + 5)
    assert "image/png" not in widget_bundle(box)


def _png(width: int, height: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), "red").save(buf, format="PNG")
    return buf.getvalue()


def test_panel_follows_a_run_and_leaves_its_final_state_as_a_picture(displayed):
    panel = LiveTrainingPanel()
    panel.train_begin(total_epochs=3, steps=4, initial_epoch=0)
    assert displayed[0][0] == "display" and displayed[0][2]["raw"]
    assert WIDGET_VIEW_MIMETYPE in displayed[0][1] and "image/png" not in displayed[0][1]
    panel.notice(
        "precision: float32 (set in [train] mixed_precision); model memory: parameters 7.4 MiB",
        warning="set [train] batch_size = 10 or less",
    )
    assert "model memory" in panel.notes.value and "batch_size = 10" in panel.notes.value
    assert panel.notes in panel.box.children

    history: dict[str, list[float]] = {}
    previews, curves = [], []
    for epoch in range(3):
        panel.epoch_begin(epoch)
        assert panel.bar.value == 0 and panel.bar.description == f"epoch {epoch + 1}/3"
        for batch in range(4):
            panel.batch_end(batch)
        assert panel.bar.value == panel.bar.max == 4
        logs = {
            "loss": 1.0 / (epoch + 1),
            "val_loss": 1.2 / (epoch + 1),
            "dice_fg": 0.2 * epoch,
            "val_dice_fg": 0.15 * epoch,
        }
        for k, v in logs.items():
            history.setdefault(k, []).append(v)
        panel.epoch_end(epoch, logs, history)
        panel.show_previews(epoch, _update(epoch))
        assert f"epoch {epoch + 1}/3" in panel.status.value and f"{logs['val_dice_fg']:.4f}" in panel.status.value
        previews.append(bytes(panel.previews.value))
        curves.append(bytes(panel.curves.value))
    assert len(set(previews)) == 3 and len(set(curves)) == 3  # redrawn in place every epoch
    assert len(displayed) == 1  # ...without displaying anything new

    panel.train_end(history)
    kind, data, kwargs = displayed[-1]
    assert kind == "update" and kwargs["raw"] and "done" in panel.status.value
    assert "epoch 3/3" in panel.status.value and f"{history['val_dice_fg'][-1]:.4f}" in panel.status.value
    assert data[WIDGET_VIEW_MIMETYPE]["model_id"] == panel.box.model_id
    width, height = _png_size(data["image/png"])
    strip = Image.open(io.BytesIO(previews[-1]))
    plot = Image.open(io.BytesIO(curves[-1]))
    assert width == max(strip.width, plot.width) and height > strip.height + 8 + plot.height  # + status line


def test_viewer_displays_as_a_widget_with_its_current_view(tmp_path):
    from hippo_utils.display.viewer import SliceViewer

    img = np.random.default_rng(0).normal(100, 5, (20, 16, 18)).astype(np.float32)
    lab = np.zeros(img.shape, np.uint8)
    lab[8:12, 6:10, 6:12] = 1
    v = SliceViewer(img, label=lab, spacing=(1.0, 1.0, 1.0))
    data = v._repr_mimebundle_()
    assert data[WIDGET_VIEW_MIMETYPE]["model_id"] == v.widget.model_id
    shown = np.asarray(Image.open(io.BytesIO(base64.b64decode(data["image/png"]))).convert("RGB"))
    view = v.render()
    assert shown.shape[1] == view.shape[1] and shown.shape[0] > view.shape[0]  # the view under its caption
    assert np.array_equal(shown[-view.shape[0] :], view)


def test_captions_draw_dashes_the_font_has():
    """PIL's own font draws an en dash as a box: the static pictures' captions write a hyphen."""
    from hippo_utils.core.png import png_bytes
    from hippo_utils.display.widgets import captioned

    png = png_bytes(np.zeros((20, 200, 3), np.uint8))
    assert captioned(png, "slice 3 (0–49)") == captioned(png, "slice 3 (0-49)")
