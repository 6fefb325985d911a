"""A picture of TensorBoard showing a training run, for notebook 03.

    python docs/tensorboard_view.py                      # trains the demo config for 6 epochs
    python docs/tensorboard_view.py --logdir runs/demo/eval/tensorboard

Trains ``--config`` for ``--epochs`` with ``[train] tensorboard = True`` (the model and logs in a
temporary folder; the demo's data is derived into ``data/`` when missing, as training does), unless
``--logdir`` names logs already written. Then it serves the logs with TensorBoard on localhost,
opens its Time Series view in a headless Chromium (Playwright; ``HIPPO_CHROMIUM`` or the
system's), without smoothing and with the whole range of each curve, and puts two views one
above the other into notebook 03: the loss, foreground Dice and learning-rate cards, then the
epoch previews. The picture is an attachment of the notebook's markdown cell (128 colours, about
90 KB), not a file beside it: a relative link does not show on Colab, which opens the notebook
alone. ``--out FILE`` also writes it to a file.
"""

from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))


# the curves shown (a tag filter of TensorBoard's Time Series view)
CURVES = "epoch_(loss|dice_fg|learning_rate)$"


def train_with_logs(config: str, epochs: int, tmp: Path) -> Path:
    from hippo_utils import load_config
    from hippo_utils.data.sources import ensure_dataset
    from hippo_utils.training.trainer import train

    cfg = load_config(config)
    ensure_dataset(cfg)
    cfg = load_config(
        config,
        [
            f"train.model_dir={tmp}/models",
            f"train.eval_dir={tmp}/eval",
            f"train.epoch_change_infer_dir={tmp}/previews",
            f"train.epochs={epochs}",
            "train.tensorboard=True",
        ],
    )
    train(cfg, progress=False)
    return tmp / "eval" / "tensorboard"


def screenshots(logdir: Path, width: int = 1400, height: int = 540) -> list[bytes]:
    from playwright.sync_api import sync_playwright

    from helpers import find_chromium, free_port

    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "tensorboard.main", "--logdir", str(logdir), "--port", str(port), "--host", "127.0.0.1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(120):
            try:
                urllib.request.urlopen(url, timeout=1)
                break
            except OSError:
                time.sleep(0.5)
        shots = []
        with sync_playwright() as pw:
            chromium = find_chromium(pw)
            if chromium is None:
                raise SystemExit("no Chromium: set HIPPO_CHROMIUM or run `playwright install chromium`")
            browser = pw.chromium.launch(executable_path=chromium, headless=True, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": width, "height": height})
            page.goto(f"{url}/#timeseries")
            # the curves: raw values (no smoothing), each curve's whole range, the settings pane shut
            settings = {"scalarSmoothing": 0, "ignoreOutliers": False, "timeSeriesSettingsPaneOpened": False}
            page.evaluate("s => localStorage.setItem('_tb_global_settings', JSON.stringify(s))", settings)
            page.reload()
            page.wait_for_timeout(6000)
            page.fill('input[placeholder="Filter tags (regex)"]', CURVES)
            page.keyboard.press("Escape")  # close the suggestions over the cards
            page.mouse.click(width - 20, height - 20)
            page.wait_for_timeout(4000)
            box = page.get_by_text("Tags matching filter").bounding_box()
            top, left = int(box["y"] + box["height"] + 8), int(box["x"] - 16)
            shots.append(page.screenshot(clip={"x": left, "y": top, "width": width - left, "height": height - top}))
            # the previews at their own size, in the Images dashboard
            page.set_viewport_size({"width": width, "height": 1000})  # room for the whole strip
            page.goto(f"{url}/#images")
            page.wait_for_timeout(5000)
            page.get_by_text("Show actual image size").click()
            page.wait_for_timeout(3000)
            group = page.get_by_text("epoch_previews").first.bounding_box()  # the group's header
            shots.append(
                page.screenshot(
                    clip={"x": int(group["x"] - 12), "y": int(group["y"] - 12), "width": 900, "height": 700},
                    full_page=True,
                )
            )
            browser.close()
        return shots
    finally:
        server.terminate()
        server.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(ROOT / "configs" / "demo.config"))
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--logdir", type=Path, help="TensorBoard logs already written (nothing is trained)")
    parser.add_argument("--out", type=Path, help="also write the picture to this PNG file")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if args.logdir and not any(args.logdir.rglob("events.out.tfevents*")):
        raise SystemExit(
            f"--logdir {args.logdir}: no TensorBoard event files there (train with "
            "[train] tensorboard = True, then give its eval_dir/tensorboard)"
        )
    with tempfile.TemporaryDirectory() as tmp:
        logdir = args.logdir or train_with_logs(args.config, args.epochs, Path(tmp))
        shots = [np.asarray(Image.open(io.BytesIO(b)).convert("RGB")) for b in screenshots(logdir)]
    last = shots[-1]  # the previews' card ends well above its clip: drop the empty rows below it
    busy = np.flatnonzero((last != last[-1:, :1]).any(axis=(1, 2)))
    shots[-1] = last[: busy[-1] + 12] if len(busy) else last
    wide = max(s.shape[1] for s in shots)
    shots = [np.pad(s, ((0, 0), (0, wide - s.shape[1]), (0, 0)), constant_values=255) for s in shots]
    picture = Image.fromarray(np.concatenate(shots, axis=0))
    attach(picture, NOTEBOOK)
    print(f"attached to {NOTEBOOK}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        picture.save(args.out)
        print(f"wrote {args.out}")


NOTEBOOK = ROOT / "notebooks" / "03_training.ipynb"
ATTACHMENT = "tensorboard.png"


def attach(picture: Image.Image, notebook: Path = NOTEBOOK) -> None:
    """Make ``picture`` the attachment ``tensorboard.png`` of the markdown cell of ``notebook``
    that shows it (the cell whose text links ``attachment:tensorboard.png``)."""
    import base64
    import json

    from hippo_utils.core.files import atomic_write_bytes

    data = io.BytesIO()
    picture.convert("RGB").quantize(colors=128, method=Image.Quantize.MEDIANCUT).save(data, "PNG", optimize=True)
    nb = json.loads(notebook.read_text(encoding="utf-8"))
    link = f"attachment:{ATTACHMENT}"
    cells = [c for c in nb["cells"] if c["cell_type"] == "markdown" and link in "".join(c["source"])]
    if len(cells) != 1:
        raise SystemExit(f"{notebook}: {len(cells)} markdown cells link attachment:{ATTACHMENT}; expected one")
    cells[0]["attachments"] = {ATTACHMENT: {"image/png": base64.b64encode(data.getvalue()).decode("ascii")}}
    atomic_write_bytes(notebook, (json.dumps(nb, indent=1, ensure_ascii=False) + "\n").encode("utf-8"))


if __name__ == "__main__":
    main()
