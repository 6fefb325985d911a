"""The notebooks' install cell, offline, as Colab would run it.

A Colab runtime has TensorFlow, Keras, ipywidgets, JupyterLab and the rest, but not
hippo_utils. Here a fresh virtual environment sees this environment's packages through
a ``.pth`` file, with hippo_utils itself left out; ``HIPPO_REPO_URL`` points the cell at a
local clone of this checkout (a ``file://`` address) that carries the pinned release tag.
The first cells of every notebook then run in a kernel of that environment: the cell must
install the package from the clone, install nothing else, and the notebook must find its
shipped config and write into the current folder.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from hippo_utils.notebook import RELEASE

from helpers import REPO, copy_checkout, preinstalled_env

NOTEBOOKS = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))

RUNNER = textwrap.dedent("""
    import json, sys
    import nbformat
    from nbclient import NotebookClient

    path, count, check = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    nb = nbformat.read(path, as_version=4)
    nb.cells = nb.cells[:count] + [nbformat.v4.new_code_cell(check)]
    NotebookClient(nb, timeout=600, kernel_name="python3").execute()
    print(json.dumps([o.get("text", "") for o in nb.cells[-1].outputs if o.output_type == "stream"]))
""")

CHECK = textwrap.dedent("""
    import json, hippo_utils
    from hippo_utils import load_config
    from hippo_utils.notebook import config_path
    _cfg = load_config(config_path("demo"))
    print(json.dumps({"file": hippo_utils.__file__, "config": str(config_path("demo")),
                      "model_dir": str(_cfg.train.model_dir), "source_dir": str(_cfg.derive.source_dir)}))
""")


def _commit_checkout(dest: Path) -> None:
    """A git repository holding this working tree (tracked and new, unignored files), with
    the release tag the install cell names."""
    copy_checkout(dest)
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@localhost", "-c", "init.defaultBranch=main"]
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "release"], ["tag", RELEASE]):
        subprocess.run([*git, *args], cwd=dest, check=True, capture_output=True)


@pytest.mark.slow
def test_install_cell_installs_the_release_and_nothing_else(tmp_path):
    clone = tmp_path / "clone"
    clone.mkdir()
    _commit_checkout(clone)
    python, site = preinstalled_env(tmp_path)
    before = {p.name for p in site.iterdir()}
    content = tmp_path / "content"  # Colab's working folder
    content.mkdir()
    (tmp_path / "runner.py").write_text(RUNNER)
    env = {k: v for k, v in os.environ.items() if k not in ("HIPPO_CONFIG", "PYTHONPATH", "HIPPO_WORKDIR")}
    env.update(HIPPO_REPO_URL=clone.as_uri(), TF_CPP_MIN_LOG_LEVEL="3", PIP_DISABLE_PIP_VERSION_CHECK="1")

    for i, notebook in enumerate(NOTEBOOKS):
        count = 4  # title, setup, the install cell, the imports cell
        done = subprocess.run(
            [str(python), str(tmp_path / "runner.py"), str(notebook), str(count), CHECK],
            cwd=content,
            env=env,
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, f"{notebook.name}:\n{(done.stdout + done.stderr)[-4000:]}"
        seen = json.loads(json.loads(done.stdout.strip().splitlines()[-1])[0])
        assert Path(seen["file"]).is_relative_to(site), f"{notebook.name} imported {seen['file']}"
        assert Path(seen["config"]).parts[-3:] == ("hippo_utils", "configs", "demo.config")
        assert Path(seen["model_dir"]) == content / "runs" / "demo" / "models"
        assert Path(seen["source_dir"]) == content / "data" / "synthetic_hfh"
        if i == 0:
            added = {p.name for p in site.iterdir()} - before
            assert {n.split("-")[0] for n in added} == {"hippo_utils"}, f"the install cell added {sorted(added)}"
    assert not (content / "runs").exists()  # loading a config writes nothing
    installed = subprocess.run(
        [str(python), "-m", "pip", "show", "-f", "hippo-utils"], capture_output=True, text=True, check=True
    ).stdout
    assert "hippo_utils/configs/demo.config" in installed and f"Version: {RELEASE[1:]}" in installed
    assert sys.prefix not in installed.split("Location:")[1].splitlines()[0]
