"""The package as a user installs it: a wheel built from this checkout, installed (not
editable) into a fresh environment, used from a folder outside the repository."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from hippo_utils import __version__

from helpers import REPO, copy_checkout, preinstalled_env


@pytest.mark.slow
def test_wheel_installs_and_runs_outside_the_repository(tmp_path):
    dist, checkout = tmp_path / "dist", tmp_path / "checkout"
    copy_checkout(checkout)  # as a clone has it: no build/ left by an earlier build (it would ship stale modules)
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "-q",
            "--disable-pip-version-check",
            "-w",
            str(dist),
            str(checkout),
        ],
        capture_output=True,
        text=True,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    assert "deprecat" not in (built.stdout + built.stderr).lower(), built.stderr
    (wheel,) = dist.glob("hippo_utils-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    shipped = sorted(p.name for p in (REPO / "configs").glob("*.config"))
    assert sorted(n.split("/")[-1] for n in names if n.startswith("hippo_utils/configs/")) == shipped
    assert any(n.endswith("licenses/LICENSE") for n in names)
    modules = sorted(p.relative_to(REPO).as_posix() for p in (REPO / "hippo_utils").rglob("*.py"))
    assert sorted(n for n in names if n.endswith(".py")) == modules  # every sub-package, nothing else

    python, site = preinstalled_env(tmp_path)
    done = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", str(wheel)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "HIPPO_CONFIG", "HIPPO_WORKDIR")}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"

    def run(*args: str) -> str:
        out = subprocess.run([str(python), *args], cwd=elsewhere, env=env, capture_output=True, text=True)
        assert out.returncode == 0, f"{args}:\n{out.stdout[-2000:]}{out.stderr[-2000:]}"
        return out.stdout

    assert "synthesize" in run("-m", "hippo_utils", "--help")
    loaded = run(
        "-c",
        "import hippo_utils, json; from hippo_utils import load_config; c = load_config('demo');"
        "print(json.dumps([hippo_utils.__file__, hippo_utils.__version__, str(c.path),"
        " str(c.train.model_dir)]))",
    )
    module, version, config, model_dir = __import__("json").loads(loaded)
    assert Path(module).is_relative_to(site) and version == __version__
    assert Path(config).parent == Path(module).parent / "configs"
    assert Path(model_dir) == elsewhere / "runs" / "demo" / "models"  # outputs in the working folder
    run("-m", "hippo_utils", "synthesize", "one", "--labelled", "1", "--unlabelled", "0")
    train = elsewhere / "one" / "Train"
    assert sorted(p.name for p in train.rglob("*.hdr")) == ["HFH_001.hdr", "HFH_001_Hipp_Labels.hdr"]
