"""The six notebooks, top to bottom, on real MRI: the MSD Task04 crops of HIPPO_REAL_DATA named
as the source (HIPPO_DATA), with configs/msd_task04.config and one epoch (the course's real
data path; its full run is rendered on the site, docs/real/)."""

import json

import pytest

from hippo_utils import load_config
from hippo_utils.notebook import named_config

from helpers import REPO


@pytest.mark.real_data
@pytest.mark.slow
def test_the_six_notebooks_run_on_real_msd_data(real_data, tmp_path, monkeypatch):
    import nbformat
    from nbclient import NotebookClient

    source = real_data / "msd-task04-hippocampus"
    run = tmp_path / "runs"
    cfg = load_config(
        named_config("msd_task04"),
        [
            "train.epochs=1",
            f"derive.output_dir={tmp_path / 'derived'}",
            f"train.model_dir={run / 'models'}",
            f"train.eval_dir={run / 'eval'}",
            f"train.epoch_change_infer_dir={run / 'previews'}",
            f"infer.output_dir={run / 'out'}",
        ],
    )
    config = tmp_path / "msd_task04_1epoch.config"
    config.write_text(cfg.to_ini())
    monkeypatch.setenv("HIPPO_CONFIG", str(config))  # the kernels inherit this environment
    monkeypatch.setenv("HIPPO_DATA", str(source))
    printed = {}
    for path in sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        NotebookClient(
            nb, timeout=1200, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
        ).execute()  # a failing cell raises
        printed[path.name[:2]] = "".join(
            out.get("text", "")
            for cell in nb.cells
            if cell.cell_type == "code"
            for out in cell.get("outputs", [])
            if out.get("output_type") == "stream"
        )
    assert f"Using your data in {source} (pairs layout)" in printed["01"]
    assert all("device: " in printed[n] for n in printed)
    meta = json.loads((tmp_path / "derived" / "dataset.json").read_text())
    assert meta["source_dir"] == str(source) and meta["layout"] == "pairs"
    assert len(sum(meta["subjects"].values(), [])) == 208  # every real labelled crop, split by subject
    rows = json.loads((run / "eval" / "evaluation_subjects.json").read_text())
    subjects = [r for r in rows if r["subject"] not in ("mean", "std")]  # the table ends with its summary rows
    assert sorted(r["subject"] for r in subjects) == sorted(meta["subjects"]["test"])
    assert all(0 < r["hippocampus_dice"] <= 1 for r in subjects)
    assert sorted(run.glob("volumes/*_labels.nii.gz"))  # notebook 05's NIfTI results on the input grid
