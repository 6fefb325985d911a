"""Notebook 06 in a real browser: JupyterLab on localhost, driven by Playwright through
whatever Chromium can be found (tests/helpers.py: ``find_chromium``). The screenshot goes
to test-artifacts/. Without a Chromium the test is skipped with the reason, or fails
when ``HIPPO_REQUIRE_BROWSER=1`` (as in CI).
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from helpers import REPO, free_port

ARTIFACTS = REPO / "test-artifacts"


@pytest.fixture
def jupyterlab(tmp_path):
    """JupyterLab serving a copy of notebook 06 from a temporary folder, with a token."""
    root = tmp_path / "lab"
    (root / "notebooks").mkdir(parents=True)
    shutil.copy(REPO / "notebooks" / "06_slice_viewer.ipynb", root / "notebooks")
    port, token = free_port(), secrets.token_hex(16)
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(tmp_path / "cfg"),
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "rt"),
        "JUPYTER_DATA_DIR": str(tmp_path / "data"),
        "TF_CPP_MIN_LOG_LEVEL": "3",
    }
    env["JUPYTER_PATH"] = os.pathsep.join(p for p in [str(Path(sys.prefix) / "share" / "jupyter")] if p)
    log = (tmp_path / "jupyterlab.log").open("w")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyterlab",
            "--no-browser",
            f"--port={port}",
            "--ip=127.0.0.1",
            f"--IdentityProvider.token={token}",
            f"--ServerApp.root_dir={root}",
            "--LabApp.expose_app_in_browser=True",
            "--LabApp.news_url=None",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
            f"--LabApp.workspaces_dir={tmp_path / 'ws'}",
            f"--LabApp.user_settings_dir={tmp_path / 'settings'}",
            *(["--allow-root"] if os.geteuid() == 0 else []),
        ],
        cwd=root,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2)
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"JupyterLab did not start:\n{(tmp_path / 'jupyterlab.log').read_text()[-3000:]}")
            time.sleep(0.5)
    yield url, token
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


def test_slice_viewer_in_jupyterlab(browser, jupyterlab):
    url, token = jupyterlab
    ARTIFACTS.mkdir(exist_ok=True)
    page = browser.new_page(viewport={"width": 1500, "height": 1100})
    page.goto(f"{url}/lab/tree/notebooks/06_slice_viewer.ipynb?token={token}")
    page.wait_for_function(
        "() => window.jupyterapp && window.jupyterapp.shell.currentWidget"
        " && window.jupyterapp.shell.currentWidget.sessionContext",
        timeout=90_000,
    )
    page.evaluate("async () => { const nb = window.jupyterapp.shell.currentWidget; await nb.sessionContext.ready; }")
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
    viewer = page.locator(".hippo-slice-viewer").first
    image = viewer.locator("img")
    image.wait_for(state="visible", timeout=240_000)
    page.wait_for_function(
        "() => { const i = document.querySelector('.hippo-slice-viewer img'); return i && i.naturalWidth > 0; }",
        timeout=60_000,
    )
    image.scroll_into_view_if_needed()
    before_src = image.get_attribute("src")
    before_png = image.screenshot()
    status = viewer.locator(".widget-html-content").last  # slice index, position, Dice
    status_before = status.inner_text()

    handle = viewer.locator(".noUi-handle").first  # the slice slider comes first
    handle.focus()
    page.keyboard.press("ArrowRight")  # the next slice, still through the hippocampus
    page.wait_for_function(
        "(old) => { const i = document.querySelector('.hippo-slice-viewer img');"
        " return i && i.src !== old && i.naturalWidth > 0; }",
        arg=before_src,
        timeout=30_000,
    )
    page.wait_for_timeout(300)  # let the new PNG paint before the screenshot
    after_png = image.screenshot()
    status_after = status.inner_text()
    viewer.screenshot(path=str(ARTIFACTS / "slice_viewer.png"))
    page.screenshot(path=str(ARTIFACTS / "jupyterlab_notebook06.png"))
    assert after_png != before_png, "the displayed image did not change when the slider moved"
    # the status moved on by exactly one slice, of the same range, to another position
    import re

    import numpy as np

    from helpers import png_pixels

    slices = [re.search(r"slice (\d+) \(0\D(\d+),", s) for s in (status_before, status_after)]
    positions = [re.search(r"position ([+-]\d+\.\d) mm", s) for s in (status_before, status_after)]
    assert all(slices) and all(positions), (status_before, status_after)
    assert int(slices[1][1]) == int(slices[0][1]) + 1 and slices[1][2] == slices[0][2], (status_before, status_after)
    assert positions[1][1] != positions[0][1]
    # the picture shown is the MRI slice (many grey levels) with the ground truth filled in red over it
    shown = png_pixels(after_png).astype(int)
    assert shown.shape[0] > 100 and shown.shape[1] > 100, shown.shape
    r, g, b = shown[..., 0], shown[..., 1], shown[..., 2]
    grey = (np.abs(r - g) <= 2) & (np.abs(g - b) <= 2)
    assert grey.mean() > 0.5 and len(np.unique(g[grey])) > 50, "no greyscale MRI in the viewer"
    assert ((r - g > 60) & (np.abs(g - b) < 30)).sum() > 20, "no red ground-truth overlay in the viewer"
    whole = png_pixels(ARTIFACTS / "slice_viewer.png")  # the viewer with its controls around the picture
    assert whole.shape[0] > shown.shape[0] and whole.shape[1] >= shown.shape[1]
