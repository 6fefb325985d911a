"""Small helpers shared by the notebooks: where the repository lives, and config lookup."""

from __future__ import annotations

import os
from pathlib import Path

from hippo_utils._version import __version__
from hippo_utils.core.config import resolve_config, shipped_config_dir, shipped_configs

# The one place that names the repository and the release that Colab installs. The badges
# and every notebook's install cell must match them (tests/test_repo.py checks); a fork or
# a new release changes them here, then the cells (install_cell_source() prints the text).
REPOSITORY = "hippo-seg/hippo-flexunet-tutorial"
REPOSITORY_URL = f"https://github.com/{REPOSITORY}"
BRANCH = "main"
RELEASE = f"v{__version__}"  # the git tag of this version


def install_cell_source() -> str:
    """The install cell, the same in every notebook.

    Where ``hippo_utils`` is missing (Colab), it installs the package from the repository
    at :data:`RELEASE`, with only the dependencies the machine lacks: Colab's TensorFlow,
    ipywidgets and JupyterLab are never upgraded. ``HIPPO_REPO_URL`` points it elsewhere
    (a fork, or a local clone as ``file:///path``).
    """
    return f"""# Install hippo_utils where it is missing (Colab); in a local checkout this does nothing.
import importlib.util
import os
import subprocess
import sys

if importlib.util.find_spec("hippo_utils") is None:
    url = os.environ.get("HIPPO_REPO_URL", "{REPOSITORY_URL}")
    ref = "{RELEASE}"  # the release these notebooks belong to
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", f"git+{{url}}@{{ref}}"], check=True)
    importlib.invalidate_caches()"""


def colab_badge_url(notebook_path: str) -> str:
    """The Open-in-Colab link for a notebook at ``notebook_path`` in the repository."""
    return f"https://colab.research.google.com/github/{REPOSITORY}/blob/{BRANCH}/{notebook_path}"


def config_path(default: str = "demo") -> Path:
    """The config a notebook uses: ``$HIPPO_CONFIG`` if set, else the shipped ``<default>`` config.

    ``HIPPO_CONFIG`` may be a path (a relative one is tried from the current folder, then
    from the repository root, so that both ``notebooks/`` and the root work) or the name of
    a shipped config (``demo``, ``ci``, ``hfh_512``, ``msd_task04``).
    """
    value = os.environ.get("HIPPO_CONFIG")
    if not value:
        return named_config(default)
    path = Path(value)
    root = Path(__file__).resolve().parents[1]
    if not path.is_absolute() and not path.exists() and (root / path).exists():
        return root / path
    try:
        return resolve_config(value)
    except FileNotFoundError as exc:
        raise FileNotFoundError(f"HIPPO_CONFIG={value}: {exc} (looked in {Path.cwd()} and {root})") from None


def named_config(name: str) -> Path:
    """A shipped config by name, whatever ``HIPPO_CONFIG`` says (``named_config("hfh_512")``)."""
    path = shipped_config_dir() / f"{name}.config"
    if not path.is_file():
        raise FileNotFoundError(
            f"no shipped config {path.name} in {path.parent}; shipped: {', '.join(shipped_configs())}"
        )
    return path


def table(rows: list[dict]) -> str:
    """Rows of dicts as an aligned plain-text table (no pandas needed)."""
    if not rows:
        return "(empty)"
    cols = list(rows[0])
    widths = {c: max(len(str(c)), *(len(str(r[c])) for r in rows)) for c in cols}
    lines = ["  ".join(str(c).rjust(widths[c]) for c in cols)]
    lines += ["  ".join(str(r[c]).rjust(widths[c]) for c in cols) for r in rows]
    return "\n".join(lines)
