"""Small helpers shared by the notebooks: where the repository lives, and config lookup."""

from __future__ import annotations

import os
from pathlib import Path

# The one place that names the repository: badges and install guards must match it
# (tests/test_repo.py checks). A fork changes it here and in the notebooks' badges.
REPOSITORY = "hippo-seg/hippo-flexunet-tutorial"
REPOSITORY_URL = f"https://github.com/{REPOSITORY}"
BRANCH = "main"


def colab_badge_url(notebook_path: str) -> str:
    """The Open-in-Colab link for a notebook at ``notebook_path`` in the repository."""
    return f"https://colab.research.google.com/github/{REPOSITORY}/blob/{BRANCH}/{notebook_path}"


def config_path(default: str = "demo") -> Path:
    """The config a notebook uses: ``$HIPPO_CONFIG`` if set, else ``configs/<default>.config``.

    A relative ``HIPPO_CONFIG`` is tried from the current folder, then from the
    repository root, so that both ``notebooks/`` and the root work.
    """
    value = os.environ.get("HIPPO_CONFIG")
    root = Path(__file__).resolve().parents[1]
    if not value:
        return root / "configs" / f"{default}.config"
    path = Path(value)
    if path.is_absolute() or path.exists():
        return path
    if (root / path).exists():
        return root / path
    raise FileNotFoundError(f"HIPPO_CONFIG={value}: no such config file (looked in {Path.cwd()} and {root})")


def named_config(name: str) -> Path:
    """A shipped config by name, ``configs/<name>.config``, whatever ``HIPPO_CONFIG`` says."""
    path = Path(__file__).resolve().parents[1] / "configs" / f"{name}.config"
    if not path.is_file():
        raise FileNotFoundError(f"no shipped config {path.name} in {path.parent}")
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
