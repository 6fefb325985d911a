"""Segmenting many scans never loses, mixes or misreports a result: distinct outputs for
same-named inputs, batches that add to a folder, refused headers, one writer per folder
(with real processes), and the plausibility flags."""

import json
import os
import signal
import struct
import subprocess
import sys
import textwrap

import nibabel as nib
import numpy as np
import pytest

from hippo_utils.core.locks import FolderLocked, folder_lock, lock_path
from hippo_utils.core.tables import write_json
from hippo_utils.data.volumes import Volume, load_volume
from hippo_utils.inference.segment import infer_volumes, output_names
from hippo_utils.inference.volumetry import plausibility_flags, volumetry

from helpers import REPO, toy_volume, write_nifti


def _rows(out):
    return json.loads((out / "volumetry.json").read_text())


def test_inputs_that_share_a_stem_get_distinct_traceable_names(tiny_model_dir, tmp_path):
    a = write_nifti(tmp_path / "a" / "scan.nii.gz", toy_volume(0)[0])
    b = write_nifti(tmp_path / "b" / "scan.nii", toy_volume(1)[0])
    results = infer_volumes(tiny_model_dir.train.model_dir, [a, b, a], tmp_path / "out", progress=False)
    assert [r.name for r in results] == ["a_scan", "b_scan"]  # the repeated input is segmented once
    for r, src in zip(results, (a, b), strict=True):
        assert r.labels_path.name == f"{r.name}_labels.nii.gz" and r.labels_path.is_file()
        assert nib.load(str(r.labels_path)).shape == load_volume(src).shape
    rows = _rows(tmp_path / "out")
    assert [(r["subject"], r["input"]) for r in rows] == [("a_scan", str(a.resolve())), ("b_scan", str(b.resolve()))]
    from hippo_utils.core.files import sha256_file

    assert [r["sha256"] for r in rows] == [sha256_file(a), sha256_file(b)]
    run = json.loads((tmp_path / "out" / "run.json").read_text())
    assert run["inputs"]["a_scan"] == {"path": str(a.resolve()), "sha256": sha256_file(a)}


def test_a_second_batch_adds_rows_and_keeps_the_others(tiny_model_dir, tmp_path):
    out = tmp_path / "out"
    x = write_nifti(tmp_path / "one" / "x.nii.gz", toy_volume(0)[0])
    y = write_nifti(tmp_path / "two" / "y.nii.gz", toy_volume(1)[0])
    model_dir = tiny_model_dir.train.model_dir
    infer_volumes(model_dir, [x], out, progress=False)
    first = (out / "x_labels.nii.gz").read_bytes()
    infer_volumes(model_dir, [y], out, progress=False)
    assert [r["subject"] for r in _rows(out)] == ["x", "y"]
    infer_volumes(model_dir, [x], out, progress=False)  # the same input again: its row is updated, not added
    assert [r["subject"] for r in _rows(out)] == ["x", "y"]
    other_x = write_nifti(tmp_path / "three" / "x.nii.gz", toy_volume(2)[0])  # another input named x
    (result,) = infer_volumes(model_dir, [other_x], out, progress=False)
    assert result.name == "three_x" and (out / "x_labels.nii.gz").read_bytes() == first
    assert [r["subject"] for r in _rows(out)] == ["x", "y", "three_x"]
    assert set(json.loads((out / "run.json").read_text())["inputs"]) == {"x", "y", "three_x"}
    csv_lines = (out / "volumetry.csv").read_text().splitlines()
    assert len(csv_lines) == 4 and csv_lines[0].startswith("subject,input,sha256,")


def test_results_of_another_model_or_a_file_as_out_are_refused(tiny_model_dir, tmp_path):
    x = write_nifti(tmp_path / "x.nii.gz", toy_volume(0)[0])
    out = tmp_path / "out"
    infer_volumes(tiny_model_dir.train.model_dir, [x], out, progress=False)
    record = json.loads((out / "run.json").read_text())
    record["model_dir"] = "/elsewhere/models"
    write_json(out / "run.json", record)  # as another model's run would have left it
    with pytest.raises(ValueError, match=r"holds the results of /elsewhere/models.*would mix"):
        infer_volumes(tiny_model_dir.train.model_dir, [x], out, progress=False)
    (tmp_path / "afile").write_text("")
    with pytest.raises(ValueError, match=r"--out .*afile is a file; give a folder"):
        infer_volumes(tiny_model_dir.train.model_dir, [x], tmp_path / "afile", progress=False)


def test_output_names_prefix_parents_only_where_needed(tmp_path):
    files = [tmp_path / "p" / "a" / "s.nii", tmp_path / "p" / "b" / "s.nii", tmp_path / "q" / "t.nii"]
    names = output_names(files)
    assert [names[f] for f in files] == ["a_s", "b_s", "t"]
    same_parent = [tmp_path / "x" / "a" / "s.nii", tmp_path / "y" / "a" / "s.nii"]
    assert list(output_names(same_parent).values()) == ["x_a_s", "y_a_s"]
    taken = {str((tmp_path / "old" / "t.nii").resolve()): "t"}
    assert output_names([tmp_path / "q" / "t.nii"], taken)[tmp_path / "q" / "t.nii"] == "q_t"


def _zero_voxel_size(path):
    nib.save(nib.Nifti1Image(toy_volume(0)[0], np.eye(4)), str(path))
    raw = bytearray(path.read_bytes())
    raw[80:92] = struct.pack("<3f", 0, 0, 0)  # pixdim[1:4]
    raw[252:256] = struct.pack("<2h", 0, 0)  # qform_code, sform_code
    path.write_bytes(raw)
    return path


def test_missing_voxel_size_is_refused_unless_assumed(tiny_model_dir, tmp_path):
    path = _zero_voxel_size(tmp_path / "novox.nii")
    with pytest.raises(
        ValueError,
        match=r"novox\.nii: pixdim\[1:4\] = \(0, 0, 0\), qform_code = 0, sform_code = 0: "
        r"no voxel size.*--assume-voxel-size",
    ):
        load_volume(path)
    vol = load_volume(path, assume_spacing=(0.5, 0.5, 2.0))
    assert vol.assumed_spacing and vol.spacing == (0.5, 0.5, 2.0)
    (result,) = infer_volumes(
        tiny_model_dir.train.model_dir, [path], tmp_path / "out", progress=False, assume_voxel_size=(0.5, 0.5, 2.0)
    )
    assert "voxel size assumed" in result.volumetry["qc"] and "voxel size assumed" in _rows(tmp_path / "out")[0]["qc"]
    assert np.allclose(nib.load(str(result.labels_path)).affine[:3, :3], np.diag([-0.5, 0.5, 2.0]))  # LAS kept


def test_headers_claiming_more_than_the_file_holds(tmp_path, monkeypatch):
    import gzip

    path = tmp_path / "huge.nii"
    nib.save(nib.Nifti1Image(np.zeros((2, 2, 2), np.float32), np.eye(4)), str(path))
    raw = bytearray(path.read_bytes())
    raw[42:48] = struct.pack("<3h", 5000, 5000, 5000)  # dim[1:4]
    path.write_bytes(raw)
    claim = r"huge\.nii(\.gz)?: the header claims 5000x5000x5000 voxels of float32 \(465\.7 GiB from byte 352\), "
    with pytest.raises(ValueError, match=claim + r"but huge\.nii holds 32 bytes of data"):
        load_volume(path)
    (tmp_path / "huge.nii.gz").write_bytes(gzip.compress(bytes(raw)))
    with pytest.raises(ValueError, match=claim + r"but huge\.nii\.gz holds 32 bytes of data"):
        load_volume(tmp_path / "huge.nii.gz")
    ok = write_nifti(tmp_path / "ok.nii.gz", toy_volume(0)[0])
    monkeypatch.setattr("hippo_utils.data.volumes.available_memory", lambda: 1000)
    with pytest.raises(
        ValueError,
        match=r"ok\.nii\.gz: the header claims 20x24x18 voxels of float32 .*; loading "
        r"it needs \d+ bytes of memory and 1000 bytes is free",
    ):
        load_volume(ok)


HOLD = textwrap.dedent("""
    import sys
    from hippo_utils.core.locks import folder_lock
    with folder_lock(sys.argv[1], "hold"):
        print("locked", flush=True)
        sys.stdin.readline()
""")


NO_FCNTL = "import sys; sys.modules['fcntl'] = None  # `import fcntl` fails, as on Windows\n"


def _holder(folder, prelude=""):
    proc = subprocess.Popen(
        [sys.executable, "-c", prelude + HOLD, str(folder)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_locks_without_fcntl_keep_one_writer(tmp_path):
    """Where Python has no fcntl (Windows, whose LockFileEx filelock uses instead; here a system
    with no file locks at all) the locks still import and work: the holder record decides."""
    check = NO_FCNTL + textwrap.dedent("""
        import logging, sys
        logging.basicConfig(level=logging.WARNING, stream=sys.stdout, format="%(message)s")
        from hippo_utils.core.locks import FolderLocked, folder_lock
        try:
            with folder_lock(sys.argv[1]):
                print("got it")
        except FolderLocked as exc:
            print("refused:", exc)
    """)

    def attempt(folder):
        done = subprocess.run([sys.executable, "-c", check, str(folder)], capture_output=True, text=True, cwd=REPO)
        assert done.returncode == 0, done.stderr
        return done.stdout

    folder = tmp_path / "models"
    proc = _holder(folder, NO_FCNTL)
    out = attempt(folder)
    assert f"refused: {folder} is in use: process {proc.pid} on " in out and "hold" in out, out
    assert f"if it no longer runs, remove {lock_path(folder)}" in out
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    out = attempt(folder)  # its record names a process that no longer runs
    assert f"taking over the lock left by process {proc.pid}" in out and out.rstrip().endswith("got it"), out
    assert not lock_path(folder).exists()


def test_a_second_writer_is_refused_and_a_killed_ones_lock_taken_over(tmp_path, caplog, tiny_config):
    folder = tmp_path / "models"
    proc = _holder(folder)
    try:
        with pytest.raises(FolderLocked, match=rf"models is in use: process {proc.pid} on .*, started .*hold"):
            with folder_lock(folder):
                pass
        from hippo_utils import load_config
        from hippo_utils.training.trainer import train

        cfg = load_config(tiny_config.path, [f"train.model_dir={folder}", f"train.eval_dir={tmp_path / 'eval'}"])
        with pytest.raises(FolderLocked, match=rf"process {proc.pid}"):
            train(cfg, progress=False)  # training takes the same lock
        assert not folder.exists()  # and wrote nothing
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert lock_path(folder).exists()  # a killed holder leaves its lock
    with caplog.at_level("WARNING", logger="hippo_utils.core.locks"):
        with folder_lock(folder):
            pass
    assert f"taking over the lock left by process {proc.pid}" in caplog.text
    assert not lock_path(folder).exists()  # released: the file is gone


def test_derivation_and_inference_take_the_lock_too(tmp_path, tiny_config, tiny_model_dir):
    from hippo_utils import load_config
    from hippo_utils.data.derive import derive_dataset

    out = tmp_path / "derived"
    proc = _holder(out)
    try:
        cfg = load_config(tiny_config.path, [f"derive.output_dir={out}"])
        with pytest.raises(FolderLocked, match=rf"derived is in use: process {proc.pid}"):
            derive_dataset(cfg, progress=False)
        x = write_nifti(tmp_path / "x.nii.gz", toy_volume(0)[0])
        holder = _holder(tmp_path / "results")
        try:
            with pytest.raises(FolderLocked, match=rf"results is in use: process {holder.pid}"):
                infer_volumes(tiny_model_dir.train.model_dir, [x], tmp_path / "results", progress=False)
        finally:
            holder.stdin.write("\n")
            holder.stdin.flush()
            holder.wait()
    finally:
        proc.stdin.write("\n")
        proc.stdin.flush()
        proc.wait()
    assert not lock_path(out).exists()  # a holder that finishes removes its lock


@pytest.mark.parametrize(
    ("left", "right", "expected"),
    [
        (3000, 2900, "ok"),
        (3000, 1000, "right 1000 mm3 outside the adult range 1730-5680; asymmetry index +1.000 beyond +-0.1"),
        (6000, 5600, "left 6000 mm3 outside the adult range 1730-5680"),
        (0, 0, "empty prediction"),
    ],
)
def test_qc_flags_on_a_hand_made_label_volume(tmp_path, left, right, expected):
    from hippo_utils import load_config

    from helpers import write_config

    cfg = load_config(
        write_config(tmp_path / "c.config", {"label_map": {1: 1, 2: 1}}, extra="[infer]\nleft_right_labels = (1, 2)\n")
    )
    labels = np.zeros((100, 100, 100), np.uint8)
    labels.reshape(-1)[:left] = 1  # 1 mm voxels: the counts are the volumes
    labels.reshape(-1)[left : left + right] = 2
    row = volumetry(labels, Volume(labels.astype(np.float32), np.eye(4)), cfg)
    assert (row["left_mm3"], row["right_mm3"]) == (left, right)
    assert plausibility_flags(row) == expected
    one_side = {"label_1_mm3": 900.0, "total_mm3": 900.0}  # a one-sided crop (MSD): the total is one hippocampus
    assert plausibility_flags(one_side, assumed_voxel_size=True) == (
        "hippocampus 900 mm3 outside the adult range 1730-5680; voxel size assumed (--assume-voxel-size): "
        "volumes in assumed mm3"
    )


def test_command_line_marks_assumed_volumes_and_speaks_plainly(tiny_model_dir, tmp_path, capsys):
    from hippo_utils.cli import main, plain

    path = _zero_voxel_size(tmp_path / "novox.nii")
    model_dir = str(tiny_model_dir.train.model_dir)
    assert main(["--quiet", "infer-volume", model_dir, str(path), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {path}: pixdim[1:4] = (0, 0, 0)") and err.count("\n") == 1  # one line
    assert (
        main(
            ["--quiet", "infer-volume", model_dir, str(path), "--out", str(tmp_path / "o"), "--assume-voxel-size", "1"]
        )
        == 0
    )
    assert "mm3 (assumed voxel size)" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["infer-volume", model_dir, str(path), "--out", str(tmp_path / "o"), "--assume-voxel-size", "0"])
    assert "give the voxel size in mm" in capsys.readouterr().err
    assert plain(FileExistsError(17, "File exists", "/x/out")) == "/x/out: file exists"
    assert plain(ValueError("ours, as it is")) == "ours, as it is"


def test_an_assumed_voxel_size_keeps_the_orientation_and_reaches_the_labels(tiny_model_dir, tmp_path):
    """The assumed size scales the axes nibabel gives a header without one (LAS): left stays left.
    A label file with the same header takes the same size; and a qform whose pixdim is 0 is as bad."""
    image = _zero_voxel_size(tmp_path / "novox.nii")
    labels = tmp_path / "labels"
    labels.mkdir()
    nib.save(nib.Nifti1Image(toy_volume(0)[1].astype(np.uint8), np.eye(4)), str(labels / "novox.nii"))
    raw = bytearray((labels / "novox.nii").read_bytes())
    raw[80:92], raw[252:256] = struct.pack("<3f", 0, 0, 0), struct.pack("<2h", 0, 0)
    (labels / "novox.nii").write_bytes(raw)
    vol = load_volume(image, assume_spacing=(2.0, 2.0, 2.0))
    assert "".join(vol.axcodes) == "LAS" and vol.spacing == (2.0, 2.0, 2.0)
    (result,) = infer_volumes(
        tiny_model_dir.train.model_dir,
        [image],
        tmp_path / "out",
        labels_dir=labels,
        progress=False,
        assume_voxel_size=(2.0, 2.0, 2.0),
    )
    assert "hippocampus_dice" in result.metrics
    raw = bytearray(image.read_bytes())
    raw[252:254] = struct.pack("<h", 1)  # qform_code 1 with pixdim 0: nibabel would make it 1 mm
    image.write_bytes(raw)
    with pytest.raises(ValueError, match=r"pixdim\[1:4\] = \(0, 0, 0\), qform_code = 1, sform_code = 0: no voxel size"):
        load_volume(image)


def test_scored_inputs_sharing_a_name_and_old_tables_are_refused(tiny_model_dir, tmp_path):
    a = write_nifti(tmp_path / "a" / "scan.nii.gz", toy_volume(0)[0])
    b = write_nifti(tmp_path / "b" / "scan.nii.gz", toy_volume(1)[0])
    write_nifti(tmp_path / "labels" / "scan.nii.gz", toy_volume(0)[1])
    with pytest.raises(ValueError, match=r"--labels: .*a/scan\.nii\.gz and .*b/scan\.nii\.gz would both be scored"):
        infer_volumes(
            tiny_model_dir.train.model_dir, [a, b], tmp_path / "out", labels_dir=tmp_path / "labels", progress=False
        )
    old = tmp_path / "old"
    old.mkdir()
    write_json(old / "volumetry.json", [{"subject": "scan", "total_mm3": 3000.0}])  # an older version's table
    with pytest.raises(ValueError, match=r"volumetry\.json: a table from an older version.*Use another folder"):
        infer_volumes(tiny_model_dir.train.model_dir, [a], old, progress=False)
    # counted volumes (before partial volumes) are not mixed with partial ones, and stay as they were
    counted = [{"subject": "b_scan", "input": str(b), "label_1_mm3": 900.0, "total_mm3": 900.0}]
    write_json(old / "volumetry.json", counted)
    with pytest.raises(ValueError, match=r"volumetry\.json: its volumes of b_scan are counted voxels.*another --out"):
        infer_volumes(tiny_model_dir.train.model_dir, [a], old, progress=False)
    assert json.loads((old / "volumetry.json").read_text()) == counted
    assert not list(old.glob("*.nii.gz")) and not (old / "volumetry.csv").exists()  # refused before any write


def test_a_truncated_gzip_is_caught_before_reading_and_analyze_hashes_cover_the_header(tmp_path):
    import gzip

    from hippo_utils.core.files import sha256_file
    from hippo_utils.data.volumes import volume_sha256

    path = write_nifti(tmp_path / "cut.nii.gz", toy_volume(0)[0])
    whole = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(whole)[:-200])  # the stream's end and its trailer are gone
    with pytest.raises(ValueError, match=r"cut\.nii\.gz: the header claims 20x24x18 voxels .* but cut\.nii\.gz holds"):
        load_volume(path)
    nib.save(nib.AnalyzeImage(toy_volume(0)[0], np.eye(4)), str(tmp_path / "s.hdr"))
    before = volume_sha256(tmp_path / "s.img")
    assert before != sha256_file(tmp_path / "s.img")
    raw = bytearray((tmp_path / "s.hdr").read_bytes())
    raw[80:84] = struct.pack("<f", 0.5)  # another voxel size, the same voxels
    (tmp_path / "s.hdr").write_bytes(raw)
    assert volume_sha256(tmp_path / "s.img") != before


def test_memory_priority_and_cpu_probes_without_proc_or_posix_calls(monkeypatch, tmp_path):
    """Without /proc (macOS, Windows), os.sysconf or os.setpriority (Windows) the probes say
    "unknown" and loading, the memory check and the I/O thread go on as before."""
    import builtins

    from hippo_utils.data import volumes
    from hippo_utils.inference import segment as inference
    from hippo_utils.model import precision

    real_open = builtins.open

    def no_proc(file, *args, **kwargs):
        if str(file).startswith("/proc/"):
            raise FileNotFoundError(2, "No such file or directory", str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", no_proc)
    monkeypatch.delattr(os, "sysconf")
    monkeypatch.delattr(os, "setpriority")
    assert volumes.available_memory() is None and precision.cpu_flags() == set()
    assert precision.cpu_bfloat16_flags() == set()  # "auto" then keeps float32 on a CPU
    inference._yield_to_the_model()  # no error: it runs at normal priority
    path = write_nifti(tmp_path / "x.nii.gz", toy_volume(0)[0])
    assert load_volume(path).data.shape == toy_volume(0)[0].shape  # the memory check is skipped, not failed
