"""Nothing the user had is ever lost (issue 30): no folder is replaced that the tool cannot prove
it made, no output lands on an input or on a file the tool did not write, every way out of a
batch records its finished volumes, and a re-run neither duplicates nor renames them.

Real files and real processes throughout: signals are sent to a running command, and the full
and read-only disks are small tmpfs mounts (root only; skipped with the reason otherwise).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from hippo_utils import load_config
from hippo_utils.cli import main
from hippo_utils.core.ownership import RECORD_NAME, temporaries

from helpers import toy_volume, write_config, write_nifti


def _snapshot(root: Path) -> dict[str, str]:
    """Every file under ``root`` by its bytes' hash: what the user had."""
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _user_folder(path: Path) -> Path:
    (path / "notes").mkdir(parents=True)
    (path / "thesis.tex").write_text("three years of work")
    (path / "notes" / "scan_log.csv").write_text("subject,date\nHFH_001,2011-01-01\n")
    return path


def _cli(capsys, *argv: str) -> tuple[int, str]:
    code = main(["-q", *map(str, argv)])
    err = capsys.readouterr().err.strip()
    return code, err


def _derive_config(tmp_path: Path, source: Path, output, name: str = "c.config", **derive) -> Path:
    return write_config(tmp_path / name, {"source_dir": str(source), "output_dir": str(output), **derive}, size=32)


# ------------------------------------------------------------ replacing folders
@pytest.mark.parametrize(
    "case",
    ["user folder", "source", "current folder", "home folder", "config's folder", "user file added", "model inside"],
)
def test_derive_force_never_replaces_what_it_cannot_prove_it_made(
    case, synthetic_hfh, tmp_path, capsys, monkeypatch, tiny_model_dir
):
    source = tmp_path / "source"
    shutil.copytree(synthetic_hfh, source)
    out = tmp_path / "out"
    config_dir = tmp_path
    if case == "user folder":
        _user_folder(out)
    elif case == "source":
        out = source
    elif case == "current folder":
        out = _user_folder(tmp_path / "work")
        monkeypatch.chdir(out)
    elif case == "home folder":
        out = _user_folder(tmp_path / "home")
        monkeypatch.setenv("HOME", str(out))
    elif case == "config's folder":
        out = config_dir = tmp_path / "project"
        out.mkdir()
    else:  # a dataset the tool made, then something of the user's put inside it
        assert _cli(capsys, "derive", _derive_config(tmp_path, source, out))[0] == 0
        if case == "user file added":
            (out / "train" / "my_annotations.txt").write_text("mine")
        else:
            shutil.copytree(tiny_model_dir.train.model_dir, out / "models")
    cfg = _derive_config(config_dir, source, out, name="other.config", seed=7)  # other settings
    before = {"out": _snapshot(out), "source": _snapshot(source)}
    code, err = _cli(capsys, "derive", cfg, "--force")
    assert code == 2 and len(err.splitlines()) == 1, err
    reason = {
        "user folder": "hippo_utils has no record of making it",
        "source": "it is the source folder",
        "current folder": "it is the current folder",
        "home folder": "it is your home folder",
        "config's folder": "it holds the config file",
        "user file added": "train/my_annotations.txt",
        "model inside": "it holds a trained model (models/state.json)",
    }[case]
    assert f"[derive] output_dir {out} cannot be replaced: " in err and reason in err, err
    assert "--force" not in err  # the refusal does not suggest what would not help
    assert {"out": _snapshot(out), "source": _snapshot(source)} == before


def test_derive_force_replaces_its_own_dataset_and_says_so_otherwise(synthetic_hfh, tmp_path, capsys):
    out = tmp_path / "out"
    assert _cli(capsys, "derive", _derive_config(tmp_path, synthetic_hfh, out))[0] == 0
    other = _derive_config(tmp_path, synthetic_hfh, out, name="other.config", seed=7)
    code, err = _cli(capsys, "derive", other)
    assert code == 2 and "made with other settings" in err and "--force" in err
    assert _cli(capsys, "derive", other, "--force")[0] == 0
    assert json.loads((out / "dataset.json").read_text())["config"].endswith("other.config")
    assert not list(temporaries(tmp_path)) and not list(tmp_path.glob(".out.*"))


def test_synthesize_force_replaces_only_a_synthetic_set(tmp_path, capsys):
    mine = _user_folder(tmp_path / "mine")
    before = _snapshot(mine)
    code, err = _cli(capsys, "synthesize", mine, "--labelled", "1", "--unlabelled", "0", "--force")
    assert code == 2 and "hippo_utils has no record of making it" in err and _snapshot(mine) == before
    dest = tmp_path / "syn"
    args = ("synthesize", dest, "--labelled", "1", "--unlabelled", "0")
    assert _cli(capsys, *args)[0] == 0
    code, err = _cli(capsys, *args)
    assert code == 2 and "--force" in err
    assert _cli(capsys, *args, "--seed", "3", "--force")[0] == 0
    assert json.loads((dest / "synthetic.json").read_text())["seed"] == 3
    (dest / "Train" / "mine.txt").write_text("mine")
    code, err = _cli(capsys, *args, "--force")
    assert code == 2 and "Train/mine.txt" in err and (dest / "Train" / "mine.txt").read_text() == "mine"


# ------------------------------------------------------- outputs apart from inputs
def test_infer_into_its_images_folder_is_refused(tiny_model_dir, tmp_path, capsys):
    images = tiny_model_dir.derive.output_dir / "mini_test" / "images"
    before = _snapshot(images)
    code, err = _cli(
        capsys,
        "infer",
        tiny_model_dir.path,
        "--set",
        f"infer.images_dir={images}",
        "--set",
        f"infer.output_dir={images}",
        "--model-dir",
        tiny_model_dir.train.model_dir,
    )
    assert code == 2 and f"[infer] output_dir {images} is [infer] images_dir" in err, err
    assert _snapshot(images) == before


def test_infer_never_replaces_a_picture_it_did_not_write(tiny_model_dir, tmp_path, capsys):
    images = tiny_model_dir.derive.output_dir / "mini_test" / "images"
    out = tmp_path / "out"
    name = sorted(images.glob("*.png"))[0].name
    (out / "overlays").mkdir(parents=True)
    (out / "overlays" / name).write_bytes(b"my own overlay")
    code, err = _cli(
        capsys,
        "infer",
        tiny_model_dir.path,
        "--set",
        f"infer.images_dir={images}",
        "--set",
        f"infer.output_dir={out}",
        "--model-dir",
        tiny_model_dir.train.model_dir,
    )
    assert code == 2 and f"{out / 'overlays' / name} exists and was not written by hippo_utils" in err, err
    assert (out / "overlays" / name).read_bytes() == b"my own overlay"
    assert not list(out.glob("*.png"))  # refused before any picture was written


def _scans(folder: Path, n: int, shape=(20, 24, 18)) -> list[Path]:
    return [write_nifti(folder / f"scan{i:02d}.nii.gz", toy_volume(i, shape)[0]) for i in range(n)]


@pytest.mark.parametrize("name", ["volumetry.csv", "scan01_qc.png", "run.json"])
def test_infer_volume_never_replaces_a_file_of_the_users(name, tiny_model_dir, tmp_path, capsys):
    _scans(tmp_path / "scans", 2)
    out = tmp_path / "out"
    out.mkdir()
    (out / name).write_bytes(b"the user's own")
    code, err = _cli(capsys, "infer-volume", tiny_model_dir.train.model_dir, tmp_path / "scans", "--out", out)
    assert code == 2 and f"{out / name} exists and was not written by hippo_utils" in err, err
    assert sorted(p.name for p in out.iterdir()) == [name] and (out / name).read_bytes() == b"the user's own"


def test_a_label_volume_of_the_users_keeps_its_name(tiny_model_dir, tmp_path, capsys):
    _scans(tmp_path / "scans", 2)
    out = tmp_path / "out"
    out.mkdir()
    (out / "scan00_labels.nii.gz").write_bytes(b"the user's own")
    code, err = _cli(capsys, "infer-volume", tiny_model_dir.train.model_dir, tmp_path / "scans", "--out", out)
    assert code == 0, err
    assert (out / "scan00_labels.nii.gz").read_bytes() == b"the user's own"
    assert _rows(out) == ["scan01", "scans_scan00"]  # the scan's results go around it


def test_infer_volume_keeps_apart_from_its_inputs_and_skips_its_own_results(tiny_model_dir, tmp_path, capsys):
    model = tiny_model_dir.train.model_dir
    scans = tmp_path / "scans"
    _scans(scans, 2)
    before = _snapshot(scans)
    for out, what in ((scans, "is the input"), (tmp_path, "holds the input"), (model, "is the model folder")):
        code, err = _cli(capsys, "infer-volume", model, scans, "--out", out)
        assert code == 2 and f"--out {out} {what}" in err, err
    assert _snapshot(scans) == before
    out = tmp_path / "out"
    assert _cli(capsys, "infer-volume", model, scans, "--out", out)[0] == 0
    # the results are not scans: a folder of them holds none, and one of them is refused
    code, err = _cli(capsys, "infer-volume", model, out, "--out", tmp_path / "again")
    assert code == 2 and "no .nii, .nii.gz or .img volumes in this folder (only the 4 results" in err, err
    code, err = _cli(capsys, "infer-volume", model, out / "scan00_labels.nii.gz", "--out", tmp_path / "again")
    assert code == 2 and "is a result hippo_utils wrote, not a scan" in err, err
    # a user's folder holding scans and earlier results: the results are left out
    shutil.copy(scans / "scan00.nii.gz", out / "new_scan.nii.gz")
    code, err = _cli(capsys, "infer-volume", model, out, "--out", tmp_path / "third")
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "third").glob("*_labels.nii.gz")) == ["new_scan_labels.nii.gz"]


def test_bad_labels_are_refused_before_anything_is_written(tiny_model_dir, tmp_path, capsys):
    scans = tmp_path / "scans"
    _scans(scans, 3)
    labels = tmp_path / "labels"
    for i in range(3):
        lab = toy_volume(i)[1]
        if i == 2:
            lab[lab > 0] = 7  # no such label in the model's map
        write_nifti(labels / f"scan{i:02d}.nii.gz", lab)
    out = tmp_path / "out"
    code, err = _cli(capsys, "infer-volume", tiny_model_dir.train.model_dir, scans, "--out", out, "--labels", labels)
    assert code == 2 and "scan02.nii.gz" in err and "7" in err, err
    assert not out.exists() or not [p for p in out.iterdir() if p.name != RECORD_NAME]


# ------------------------------------------------------- every way out of a batch
def _start(*args) -> subprocess.Popen:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.Popen(
        [sys.executable, "-m", "hippo_utils", "-q", *map(str, args)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def _labels_written(out: Path) -> list[str]:
    return sorted(p.name[: -len("_labels.nii.gz")] for p in out.glob("*_labels.nii.gz")) if out.is_dir() else []


def _rows(out: Path) -> list[str]:
    path = out / "volumetry.json"
    return sorted(r["subject"] for r in json.loads(path.read_text())) if path.is_file() else []


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGKILL, -9)])
def test_a_stopped_batch_keeps_its_finished_volumes_and_a_rerun_completes_it(sig, code, tiny_model_dir, tmp_path):
    scans = tmp_path / "scans"
    names = [p.name[: -len(".nii.gz")] for p in _scans(scans, 12, shape=(40, 48, 36))]
    out = tmp_path / "out"
    proc = _start("infer-volume", tiny_model_dir.train.model_dir, scans, "--out", out)
    end = time.monotonic() + 120
    while len(_labels_written(out)) < 2:
        assert proc.poll() is None, proc.stdout.read().decode()[-2000:]
        assert time.monotonic() < end, "timed out waiting for the batch to get part-way"
        time.sleep(0.005)
    proc.send_signal(sig)
    output = proc.communicate(timeout=60)[0].decode()
    assert proc.returncode == code, output
    done = _labels_written(out)
    assert 2 <= len(done) < 12, "the batch was not stopped part-way"
    if sig != signal.SIGKILL:  # a catchable signal: every finished volume has its row, and its picture
        assert _rows(out) == done and all((out / f"{n}_qc.png").is_file() for n in done)
        assert ("terminated" if sig == signal.SIGTERM else "interrupted") in output
    assert not list(temporaries(out)), "a temporary file was left behind"
    rerun = _start("infer-volume", tiny_model_dir.train.model_dir, scans, "--out", out)
    output = rerun.communicate(timeout=300)[0].decode()
    assert rerun.returncode == 0, output
    assert _labels_written(out) == names and _rows(out) == names  # nothing twice, nothing renamed
    assert not list(temporaries(out)) and not (out.parent / f".{out.name}.lock").exists()


@contextlib.contextmanager
def _tmpfs(path: Path, size: str):
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs needs root and mount(8); this test runs in CI as root")
    path.mkdir(parents=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True)
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def test_a_full_disk_keeps_the_finished_volumes_and_a_rerun_completes_them(tiny_model_dir, tmp_path, capsys):
    scans = tmp_path / "scans"
    names = [p.name[: -len(".nii.gz")] for p in _scans(scans, 6, shape=(40, 48, 36))]
    model = tiny_model_dir.train.model_dir
    probe = tmp_path / "probe"
    assert _cli(capsys, "infer-volume", model, scans / "scan00.nii.gz", "--out", probe)[0] == 0
    per_volume = sum(p.stat().st_size for p in probe.iterdir())
    with _tmpfs(tmp_path / "disk", "8m") as disk:
        out = disk / "out"
        filler = disk / "filler"
        free = shutil.disk_usage(disk).free
        filler.write_bytes(b"\0" * (free - int(2.5 * per_volume) - 4 * 4096 * 6))  # room for two volumes or so
        code, err = _cli(capsys, "infer-volume", model, scans, "--out", out)
        assert code == 2 and "no space left on device" in err.lower() and len(err.splitlines()) == 1, err
        assert str(out) in err  # named by the file it could not write, not by a temporary one
        done = _labels_written(out)
        assert 0 < len(done) < 6 and set(_rows(out)) <= set(done)
        assert not list(temporaries(out))
        filler.unlink()
        code, err = _cli(capsys, "infer-volume", model, scans, "--out", out)
        assert code == 0, err
        assert _labels_written(out) == names and _rows(out) == names
        # a read-only disk: one line naming the folder
        subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
        code, err = _cli(capsys, "infer-volume", model, scans, "--out", disk / "elsewhere")
        assert code == 2 and "read-only file system" in err.lower() and len(err.splitlines()) == 1, err


# -------------------------------------------------------------- training's folders
def test_two_runs_never_share_an_evaluation_or_preview_folder(tiny_model_dir, tmp_path, capsys):
    from hippo_utils.core.locks import folder_lock
    from hippo_utils.training.trainer import train

    first = tiny_model_dir.train
    before = _snapshot(first.eval_dir)
    for key, folder in (("eval_dir", first.eval_dir), ("epoch_change_infer_dir", first.epoch_change_infer_dir)):
        cfg = load_config(
            tiny_model_dir.path,
            [
                f"train.model_dir={tmp_path / key / 'models'}",
                f"train.eval_dir={tmp_path / key / 'eval'}",
                f"train.epoch_change_infer_dir={tmp_path / key / 'previews'}",
                f"train.{key}={folder}",
            ],
        )
        with pytest.raises(
            FileExistsError,
            match=rf"\[train\] {key} {folder} holds the outputs of another run "
            rf"\(model_dir {first.model_dir}\)",
        ):
            train(cfg, progress=False)
        assert not (tmp_path / key / "models" / "state.json").exists()
    assert _snapshot(first.eval_dir) == before
    # evaluating another model into it is refused too
    other = shutil.copytree(first.model_dir, tmp_path / "other")
    code, err = _cli(
        capsys, "evaluate", tiny_model_dir.path, "--model-dir", other, "--set", f"train.eval_dir={first.eval_dir}"
    )
    assert code == 2 and f"holds the outputs of another run (model_dir {first.model_dir})" in err, err
    assert _snapshot(first.eval_dir) == before
    # while a run writes it, its evaluation folder is locked like its model folder
    cfg = load_config(
        tiny_model_dir.path,
        [
            f"train.model_dir={tmp_path / 'b' / 'models'}",
            f"train.epoch_change_infer_dir={tmp_path / 'b' / 'previews'}",
            f"train.eval_dir={tmp_path / 'b' / 'eval'}",
        ],
    )
    with folder_lock(tmp_path / "b" / "eval", "train"), pytest.raises(FileExistsError, match="is in use"):
        train(cfg, progress=False)


def test_training_never_writes_over_a_users_file_in_its_folders(tiny_config, tmp_path):
    from hippo_utils.training.trainer import train

    models = tmp_path / "models"
    models.mkdir()
    (models / "train_eval_infer.config").write_text("; my own original config\n")
    cfg = load_config(
        tiny_config.path,
        [
            f"train.model_dir={models}",
            f"train.eval_dir={tmp_path / 'eval'}",
            f"train.epoch_change_infer_dir={tmp_path / 'previews'}",
        ],
    )
    with pytest.raises(FileExistsError, match=r"train_eval_infer\.config exists and was not written by hippo_utils"):
        train(cfg, progress=False)
    assert (models / "train_eval_infer.config").read_text() == "; my own original config\n"
    with pytest.raises(ValueError, match=r"\[train\] model_dir .* is the dataset"):
        train(load_config(tiny_config.path, [f"train.model_dir={tiny_config.derive.output_dir}"]), progress=False)


# ------------------------------------------------ input that would be read wrongly
def test_inputs_that_would_be_misread_are_refused_or_read_right(tmp_path):
    import nibabel as nib
    from PIL import Image

    from hippo_utils.core.png import read_grey_values
    from hippo_utils.data.labels import mask_to_classes
    from hippo_utils.data.volumes import load_volume

    data = toy_volume(0)[0]
    complex_path = tmp_path / "phase.nii.gz"
    nib.save(nib.Nifti1Image(data.astype(np.complex64), np.eye(4)), str(complex_path))
    with pytest.raises(ValueError, match=r"phase\.nii\.gz: complex voxels .*a grey-scale volume"):
        load_volume(complex_path)
    rgb = np.zeros(data.shape, dtype=[("R", "u1"), ("G", "u1"), ("B", "u1")])
    rgb_path = tmp_path / "colour.nii"
    nib.save(nib.Nifti1Image(rgb, np.eye(4)), str(rgb_path))
    with pytest.raises(ValueError, match=r"colour\.nii: colour \(RGB\) voxels"):
        load_volume(rgb_path)
    # a 16-bit slice keeps its values (an 8-bit conversion clips everything above 255)
    slice16 = (np.arange(64 * 64).reshape(64, 64) * 7).astype(np.uint16)
    Image.fromarray(slice16).save(tmp_path / "deep.png")
    np.testing.assert_array_equal(read_grey_values(tmp_path / "deep.png"), slice16.astype(np.float32))
    # mask colours that belong to no class, even allowing for JPEG noise and blended edges
    rgb_map = {(0, 0, 0): 0, (255, 0, 0): 1}
    mask = np.zeros((8, 8, 3), np.uint8)
    mask[2:4, 2:4] = (250, 10, 5)  # JPEG noise on red: red
    mask[5, 5] = (128, 0, 0)  # an edge between red and black
    assert mask_to_classes(mask, rgb_map, "m.jpg", exact=False).sum() == 5
    mask[6, 6] = (0, 255, 0)  # green: no class, not a blend
    with pytest.raises(ValueError, match=r"m\.jpg: mask colour \(0, 255, 0\) is neither"):
        mask_to_classes(mask, rgb_map, "m.jpg", exact=False)


def test_unreadable_images_and_configs_get_one_line(tiny_model_dir, tmp_path, capsys):
    images = tmp_path / "images"
    images.mkdir()
    (images / "empty.png").write_bytes(b"")
    code, err = _cli(
        capsys,
        "infer",
        tiny_model_dir.path,
        "--set",
        f"infer.images_dir={images}",
        "--set",
        f"infer.output_dir={tmp_path / 'out'}",
        "--model-dir",
        tiny_model_dir.train.model_dir,
    )
    assert (
        code == 2
        and err
        == f"error: {images / 'empty.png'}: cannot read this file as an image (the file is "
        "empty); a .png, .jpg, .bmp or .tif image is needed"
    ), err
    text = tiny_model_dir.path.read_text()
    (tmp_path / "utf16.config").write_bytes(text.encode("utf-16"))  # as a Windows editor may save it
    assert load_config(tmp_path / "utf16.config").train.epochs == tiny_model_dir.train.epochs
    (tmp_path / "latin1.config").write_bytes(("; Réglages\n" + text).encode("latin-1"))
    code, err = _cli(capsys, "derive", tmp_path / "latin1.config")
    assert code == 2 and "latin1.config: line 1 is not UTF-8 text (byte 0xe9)" in err, err


def test_a_batch_that_cannot_fit_in_memory_is_refused_before_training(tiny_config, tmp_path, capsys):
    batch = 10**7  # terabytes of activations: the system would kill the run part-way
    code, err = _cli(
        capsys,
        "train",
        tiny_config.path,
        "--set",
        f"train.batch_size={batch}",
        "--set",
        f"train.model_dir={tmp_path / 'models'}",
        "--set",
        f"train.eval_dir={tmp_path / 'eval'}",
        "--set",
        f"train.epoch_change_infer_dir={tmp_path / 'previews'}",
    )
    assert code == 2 and len(err.splitlines()) == 1, err
    assert f"[train] batch_size = {batch} cannot fit" in err and "set [train] batch_size = " in err, err
    assert not (tmp_path / "models" / "state.json").exists()


def test_a_folder_with_look_alike_temporaries_system_files_or_links_is_not_replaced(tmp_path, capsys):
    dest = tmp_path / "syn"
    args = ("synthesize", dest, "--labelled", "1", "--unlabelled", "0")
    assert _cli(capsys, *args)[0] == 0
    elsewhere = _user_folder(tmp_path / "elsewhere")
    for name, make in (
        ("Train/notes.hippo-tmp-draft.txt", lambda p: p.write_text("mine")),
        ("Thumbs.db", lambda p: p.write_bytes(b"x")),
        ("Train/linkdir", lambda p: p.symlink_to(elsewhere, target_is_directory=True)),
    ):
        make(dest / name)
        code, err = _cli(capsys, *args, "--force")
        assert code == 2 and name in err, err
        assert (dest / name).exists() or (dest / name).is_symlink()
        (dest / name).unlink()
    assert _snapshot(elsewhere) == {
        "notes/scan_log.csv": _snapshot(elsewhere)["notes/scan_log.csv"],
        "thesis.tex": _snapshot(elsewhere)["thesis.tex"],
    }


def test_a_file_in_the_way_of_a_lock_is_kept(tiny_model_dir, tmp_path, capsys):
    _scans(tmp_path / "scans", 1)
    (tmp_path / ".out.lock").write_text("the user's own file")
    code, err = _cli(
        capsys, "infer-volume", tiny_model_dir.train.model_dir, tmp_path / "scans", "--out", tmp_path / "out"
    )
    assert code == 2 and ".out.lock is in the way of" in err, err
    assert (tmp_path / ".out.lock").read_text() == "the user's own file"


def test_resuming_or_evaluating_with_other_settings_or_data_is_refused(tiny_config, tmp_path, capsys):
    import dataclasses

    from hippo_utils.data.derive import derive_dataset
    from hippo_utils.evaluation.evaluate import evaluate
    from hippo_utils.training.trainer import train

    run = [
        f"train.model_dir={tmp_path / 'models'}",
        f"train.eval_dir={tmp_path / 'eval'}",
        f"train.epoch_change_infer_dir={tmp_path / 'previews'}",
        "train.epochs=1",
    ]
    train(load_config(tiny_config.path, run), progress=False)
    saved = (tmp_path / "models" / "train_eval_infer.config").read_text()
    with pytest.raises(
        ValueError,
        match=r"--resume with other settings than the run began with: \[model\] "
        r"base_filters = 16 \(was 4\)",
    ):
        train(
            load_config(tiny_config.path, [*run, "train.epochs=2", "model.base_filters=16"]),
            resume=True,
            progress=False,
        )
    assert (tmp_path / "models" / "train_eval_infer.config").read_text() == saved
    other = load_config(
        tiny_config.path, [*run, "train.epochs=2", f"derive.output_dir={tmp_path / 'other'}", "derive.seed=9"]
    )
    derive_dataset(other, progress=False)
    with pytest.raises(
        ValueError,
        match=r"was trained on a dataset of fingerprint \w+, and .*other is \w+ "
        r".*resume it",
    ):
        train(other, resume=True, progress=False)
    with pytest.raises(ValueError, match=r"evaluate it with the dataset it was trained on"):
        evaluate(dataclasses.replace(other), progress=False)
    assert (tmp_path / "models" / "train_eval_infer.config").read_text() == saved


def test_a_refused_training_claims_nothing(tiny_model_dir, tmp_path):
    from hippo_utils.training.trainer import train

    cfg = load_config(
        tiny_model_dir.path,
        [
            f"train.model_dir={tmp_path / 'models'}",
            f"train.eval_dir={tmp_path / 'eval'}",
            f"train.epoch_change_infer_dir={tiny_model_dir.train.epoch_change_infer_dir}",
        ],
    )
    with pytest.raises(FileExistsError, match="holds the outputs of another run"):
        train(cfg, progress=False)
    assert not (tmp_path / "eval").exists()


def test_images_that_would_share_a_result_and_broken_voxel_sizes_are_refused(tiny_model_dir, tmp_path, capsys):
    images = tmp_path / "images"
    images.mkdir()
    src = sorted((tiny_model_dir.derive.output_dir / "mini_test" / "images").glob("*.png"))[0]
    shutil.copy(src, images / "x.png")
    from PIL import Image

    Image.open(src).convert("RGB").save(images / "x.jpg")
    code, err = _cli(
        capsys,
        "infer",
        tiny_model_dir.path,
        "--set",
        f"infer.images_dir={images}",
        "--set",
        f"infer.output_dir={tmp_path / 'out'}",
        "--model-dir",
        tiny_model_dir.train.model_dir,
    )
    assert code == 2 and "x.jpg and x.png would both be written as x.png" in err, err
    write_nifti(tmp_path / "vols" / "huge.nii.gz", toy_volume(0)[0], np.diag([1e6, 1, 1, 1]))
    code, err = _cli(capsys, "infer-volume", tiny_model_dir.train.model_dir, tmp_path / "vols", "--out", tmp_path / "o")
    assert code == 2 and len(err.splitlines()) == 1 and "are no scan's (0.01 to 50 mm)" in err, err
    assert not list((tmp_path / "o").glob("*_labels.nii.gz")) if (tmp_path / "o").exists() else True


@pytest.mark.parametrize(("dtype", "offset"), [(np.float64, 1e6), (np.int32, 2**25)])
def test_values_far_from_zero_keep_their_contrast(tmp_path, dtype, offset):
    from hippo_utils.data.preprocess import normalize_intensity
    from hippo_utils.data.volumes import load_volume

    base = np.random.default_rng(0).integers(0, 256, (20, 24, 18))
    stored = (offset + (base / 1000 if dtype == np.float64 else base)).astype(dtype)  # float32 would merge them
    volume = load_volume(write_nifti(tmp_path / "far.nii.gz", stored))
    np.testing.assert_allclose(normalize_intensity(volume), normalize_intensity(base.astype(np.float32)), atol=1e-5)
