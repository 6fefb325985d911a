"""The widget tests again under ipywidgets 7.7, what Colab has long shipped.

A second, small environment (no TensorFlow: the viewer and the live panel need none) is
made once in ``.venv-ipywidgets7/`` from the package registry and reused; it runs
``tests/test_widgets.py`` and ``tests/test_viewer.py`` against this checkout.
"""

from __future__ import annotations

import os
import subprocess
import sys
import venv

import pytest

from helpers import REPO

ENV = REPO / ".venv-ipywidgets7"
# The package's own dependencies less TensorFlow, ipywidgets 7.7 with what it needs at run
# time (its notebook front-end packages are not needed to test the Python side), and pytest.
REQUIREMENTS = [
    "numpy>=1.24",
    "scipy>=1.10",
    "nibabel>=5.0",
    "pillow>=10.0",
    "matplotlib>=3.7",
    "tqdm>=4.64",
    "filelock>=3.30",
    "pytest>=7.4",
    "ipykernel>=6.0",
    "ipython_genutils~=0.2.0",
    "jupyterlab_widgets~=1.0",
]
WIDGETS = "ipywidgets==7.7.*"


def _python() -> str:
    return str(ENV / "bin" / "python") if os.name != "nt" else str(ENV / "Scripts" / "python.exe")


def _ensure_env() -> str:
    stamp = ENV / ".installed"
    wanted = " ".join([*REQUIREMENTS, WIDGETS])
    if stamp.is_file() and stamp.read_text() == wanted:
        return _python()
    venv.EnvBuilder(with_pip=True, clear=True).create(ENV)
    for args in (REQUIREMENTS, ["--no-deps", WIDGETS]):
        done = subprocess.run(
            [_python(), "-m", "pip", "install", "-q", "--disable-pip-version-check", *args],
            capture_output=True,
            text=True,
        )
        if done.returncode:
            pytest.fail(f"could not make the ipywidgets 7.7 environment in {ENV}:\n{done.stderr[-3000:]}")
    stamp.write_text(wanted)
    return _python()


@pytest.mark.slow
def test_widget_tests_pass_under_ipywidgets_7():
    python = _ensure_env()
    version = subprocess.run(
        [python, "-c", "import ipywidgets; print(ipywidgets.__version__)"], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert version.startswith("7.7."), version
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("HIPPO_CONFIG", None)
    done = subprocess.run(
        [
            python,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:nbval",
            "tests/test_widgets.py",
            "tests/test_viewer.py",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
    )
    tail = (done.stdout + done.stderr)[-4000:]
    assert done.returncode == 0, f"under ipywidgets {version}:\n{tail}"
    assert " passed" in tail and "skipped" not in tail, tail
    assert (
        "tensorflow"
        not in subprocess.run(
            [python, "-m", "pip", "list", "--disable-pip-version-check"], capture_output=True, text=True
        ).stdout.lower()
    )
    sys.stdout.write(tail.splitlines()[-1] + "\n")
