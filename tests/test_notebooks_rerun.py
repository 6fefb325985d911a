"""The notebook suite run twice in a row, the first time out of order, on a fresh copy of
the CI config: every notebook's outputs go to idempotent locations, so a second run (or a
notebook run before the ones it builds on) works."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from helpers import REPO

NOTEBOOKS = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def _run(path: Path, env_config: Path, monkeypatch) -> None:
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    monkeypatch.setenv("HIPPO_CONFIG", str(env_config))
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=900, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    try:
        client.execute()
    except CellExecutionError as exc:
        pytest.fail(f"{path.name} failed:\n{str(exc)[-3000:]}")


def test_notebook_suite_twice_first_out_of_order(tmp_path, monkeypatch):
    (tmp_path / "configs").mkdir()
    config = Path(shutil.copy(REPO / "configs" / "ci.config", tmp_path / "configs" / "ci.config"))
    assert len(NOTEBOOKS) == 6
    # First from the last to the first: each one has to make what the earlier ones would have.
    for path in [*reversed(NOTEBOOKS), *NOTEBOOKS]:
        _run(path, config, monkeypatch)
    runs = tmp_path / "runs" / "ci"
    assert (runs / "models" / "state.json").is_file()
    assert len(list((runs / "models").glob("last.e*.keras"))) == 1
    assert (tmp_path / "data" / "derived" / "ci" / "dataset.json").is_file()
    assert not list(tmp_path.rglob(".*.tmp-*"))  # nothing half-written left behind
