"""A picture of TensorBoard showing a training run, for notebook 03 and the README.

    python docs/tensorboard_view.py                      # trains the demo config 4 epochs in a temp folder
    python docs/tensorboard_view.py --logdir runs/demo/eval/tensorboard

Trains ``--config`` for ``--epochs`` with ``[train] tensorboard = True`` (unless ``--logdir``
names logs already written), serves the logs with TensorBoard on localhost, opens it in a
headless Chromium (Playwright; ``HIPPO_CHROMIUM`` or the system's) and writes the scalar
and image views, one above the other, to ``docs/figures/tensorboard.png``.
"""

from __future__ import annotations

import argparse
import io
import os
import re
import socket
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


# the curves that matter, then the epoch previews (each one view of TensorBoard's Time Series)
TAGS = ("epoch_(loss|dice_fg|learning_rate)$", "previews")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def train_with_logs(config: str, epochs: int, tmp: Path) -> Path:
    from hippo_utils import load_config
    from hippo_utils.data import ensure_dataset
    from hippo_utils.trainer import train

    cfg = load_config(config)
    ensure_dataset(cfg)
    cfg = load_config(config, [f"train.model_dir={tmp}/models", f"train.eval_dir={tmp}/eval",
                               f"train.epoch_change_infer_dir={tmp}/previews", f"train.epochs={epochs}",
                               "train.tensorboard=True"])
    train(cfg, progress=False)
    return tmp / "eval" / "tensorboard"


def screenshots(logdir: Path, width: int = 1400, height: int = 560) -> list[bytes]:
    from playwright.sync_api import sync_playwright

    from helpers import find_chromium

    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "tensorboard.main", "--logdir", str(logdir), "--port", str(port),
                               "--host", "127.0.0.1"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
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
            page.wait_for_timeout(8000)
            settings = page.get_by_role("button", name="Settings")  # the side pane, open at first
            if page.get_by_text("Card Width").count():
                settings.first.click()
            for tags in TAGS:
                page.fill('input[placeholder="Filter tags (regex)"]', tags)
                page.keyboard.press("Escape")  # close the suggestions over the cards
                page.mouse.click(width - 20, height - 20)
                actual = page.get_by_role("button", name=re.compile("actual image size", re.I))
                if actual.count():
                    actual.first.click()
                page.wait_for_timeout(5000)
                shots.append(page.screenshot(full_page=False))
            browser.close()
        return shots
    finally:
        server.terminate()
        server.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(ROOT / "configs" / "demo.config"))
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--logdir", type=Path, help="TensorBoard logs already written (nothing is trained)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "figures" / "tensorboard.png")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with tempfile.TemporaryDirectory() as tmp:
        logdir = args.logdir or train_with_logs(args.config, args.epochs, Path(tmp))
        shots = [np.asarray(Image.open(io.BytesIO(b)).convert("RGB")) for b in screenshots(logdir)]
    from hippo_utils.png import png_bytes

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(png_bytes(np.concatenate(shots, axis=0)))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
