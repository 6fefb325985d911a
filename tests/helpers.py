"""Plain helpers for the tests (fixtures live in conftest.py)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sysconfig
import venv
from pathlib import Path

import nibabel as nib
import numpy as np

REPO = Path(__file__).resolve().parents[1]


def write_config(path: Path, derive: dict, size: int = 64, extra: str = "") -> Path:
    """A small config file with the given [derive] values (Python literals)."""
    lines = [
        "[model]",
        f"image_width = {size}",
        f"image_height = {size}",
        "num_layers = 4",
        "base_kernels = (3,3)",
        "num_classes = 2",
        "[mask]",
        "rgb_map = {(0,0,0):0, (255,0,0):1}",
        "[derive]",
        *(f"{k} = {v!r}" for k, v in derive.items()),
        extra,
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def toy_volume(seed: int, shape=(20, 24, 18)) -> tuple[np.ndarray, np.ndarray]:
    """A small image with a labelled blob (labels 1 and 2) that identifies the seed."""
    rng = np.random.default_rng(seed)
    img = rng.normal(100, 10, shape).astype(np.float32)
    lab = np.zeros(shape, np.uint8)
    c = np.array(shape) // 2 + rng.integers(-2, 3, 3)
    lab[c[0] - 3 : c[0] + 3, c[1] - 4 : c[1], c[2] - 2 : c[2] + 3] = 1
    lab[c[0] - 3 : c[0] + 3, c[1] : c[1] + 2 + seed % 4, c[2] - 2 : c[2] + 3] = 2
    img[lab > 0] += 80
    return img, lab


def write_nifti(path: Path, data: np.ndarray, affine=None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(data, np.eye(4) if affine is None else affine), str(path))
    return path


# ------------------------------------------------------------------------------ browser
CHROMIUM_CANDIDATES = (
    "/usr/lib/chromium/chromium",
    "/usr/bin/chromium",
    "/usr/bin/chromium-browser",
    "/Applications/Chromium.app/Contents/MacOS/Chromium",
    "/Applications/Google Chrome.app/Contents/MacOS/Google Chrome",
)
BROWSER_HINT = (
    "install one (Debian/Ubuntu: sudo apt-get install chromium; anywhere: "
    ".venv/bin/playwright install chromium) or set HIPPO_CHROMIUM to a Chromium executable"
)


def find_chromium(pw=None) -> str | None:
    """A Chromium to drive: ``HIPPO_CHROMIUM``, the system's, or Playwright's own browser
    (after ``playwright install chromium``); None when there is none."""
    found = [
        os.environ.get("HIPPO_CHROMIUM"),
        *CHROMIUM_CANDIDATES,
        *(shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")),
    ]
    if pw is not None:
        try:
            found.append(pw.chromium.executable_path)  # where `playwright install` puts it
        except Exception:  # noqa: BLE001 - an old Playwright without it: just one candidate fewer
            pass
    return next((p for p in found if p and Path(p).is_file()), None)


def launch_chromium(pw):
    """A headless Chromium for a Playwright session; skipped (with how to enable it) when
    none is found, or failed when ``HIPPO_REQUIRE_BROWSER=1``."""
    import pytest

    path = find_chromium(pw)
    if path is None:
        message = f"no Chromium for the browser tests: {BROWSER_HINT}"
        if os.environ.get("HIPPO_REQUIRE_BROWSER") == "1":
            pytest.fail(f"HIPPO_REQUIRE_BROWSER=1 and {message}")
        pytest.skip(message)
    return pw.chromium.launch(
        executable_path=path,
        headless=True,
        args=[
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
        ],
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ------------------------------------------------------------------ fresh environments
def run_sets(run: Path) -> list[str]:
    """Config overrides that put a training run's folders (models, evaluation, previews) under ``run``."""
    return [
        f"train.model_dir={run / 'models'}",
        f"train.eval_dir={run / 'eval'}",
        f"train.epoch_change_infer_dir={run / 'previews'}",
    ]


def copy_checkout(dest: Path) -> Path:
    """This working tree's files as a clone would hold them (tracked, and new unignored ones),
    copied into ``dest``: what a build or an install from a clean clone sees."""
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split("\0")
    for name in filter(None, files):
        src = REPO / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    return dest


def preinstalled_env(root: Path) -> tuple[Path, Path]:
    """A fresh venv in ``root/env`` that sees this environment's packages, except hippo_utils,
    through a ``.pth`` file: a machine like Colab, with everything but this package.

    Returns its python and its own site-packages folder.
    """
    venv.EnvBuilder(with_pip=True).create(root / "env")
    python = root / "env" / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    base = root / "preinstalled"
    base.mkdir()
    for entry in Path(sysconfig.get_paths()["purelib"]).iterdir():
        name = entry.name.lower()
        if name.startswith(("hippo_utils", "hippo-utils", "__editable__")) or name.endswith(".pth"):
            continue
        (base / entry.name).symlink_to(entry)
    site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    (site / "preinstalled.pth").write_text(str(base) + "\n")
    return python, site


# ---------------------------------------------------------------------------- pictures
def png_pixels(source) -> np.ndarray:
    """The RGB pixels (uint8, H x W x 3) of a PNG file or of PNG bytes; fails on anything
    that is not a PNG."""
    import io

    from PIL import Image

    with Image.open(io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else source) as image:
        assert image.format == "PNG", f"{source if isinstance(source, Path) else 'bytes'}: not a PNG"
        return np.asarray(image.convert("RGB"))


def colour_mask(rgb: np.ndarray, colour: str | tuple[int, int, int], tolerance: int = 0) -> np.ndarray:
    """Where ``rgb`` shows ``colour`` (``"#rrggbb"`` or an RGB tuple), each channel within
    ``tolerance``."""
    if isinstance(colour, str):
        colour = tuple(int(colour[i : i + 2], 16) for i in (1, 3, 5))
    return (np.abs(rgb.astype(int) - np.asarray(colour)) <= tolerance).all(axis=-1)
