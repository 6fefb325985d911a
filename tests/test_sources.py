"""The data source a learner names (HIPPO_DATA): the synthetic set, the MSD Task04 download
(tested against a loopback HTTP server serving an archive built here in the Decathlon's
layout), the Kaggle data through kagglehub (a stand-in module that nests the data as
kagglehub does), or a folder; and never a silent switch from one to another."""

import dataclasses
import hashlib
import http.server
import io
import json
import re
import shutil
import sys
import tarfile
import threading
import types
from pathlib import Path

import pytest

from hippo_utils import load_config
from hippo_utils.data import download
from hippo_utils.data.layouts import find_subjects
from hippo_utils.data.sources import ensure_dataset, resolve_source

from helpers import toy_volume, write_config, write_nifti

MSD_NAMES = [f"hippocampus_{i:03d}" for i in (1, 3, 4, 6, 7, 8)]


@pytest.fixture(autouse=True)
def _no_source_chosen(monkeypatch, tmp_path):
    for name in ("HIPPO_DATA", "HIPPO_DATA_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HIPPO_CACHE", str(tmp_path / "cache"))


def _msd_archive(tmp_path: Path, extra: tarfile.TarInfo | None = None) -> bytes:
    """A Task04_Hippocampus.tar as the Decathlon packs it: imagesTr, labelsTr, imagesTs,
    dataset.json, and macOS '._' companions."""
    tree = tmp_path / "build" / "Task04_Hippocampus"
    for i, name in enumerate(MSD_NAMES):
        img, lab = toy_volume(i)
        write_nifti(tree / "imagesTr" / f"{name}.nii.gz", img)
        write_nifti(tree / "labelsTr" / f"{name}.nii.gz", lab)
        (tree / "imagesTr" / f"._{name}.nii.gz").write_bytes(b"\x00\x05\x16\x07 mac resource fork")
    write_nifti(tree / "imagesTs" / "hippocampus_002.nii.gz", toy_volume(9)[0])
    (tree / "dataset.json").write_text(json.dumps({"name": "Hippocampus", "numTraining": len(MSD_NAMES)}))
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add(tree, arcname="Task04_Hippocampus")
        if extra is not None:
            tar.addfile(extra)
    shutil.rmtree(tmp_path / "build")
    return buf.getvalue()


class _Server:
    """Serves one file over loopback HTTP, with Range requests (unless ``ranges_off``); can
    break off after N bytes."""

    def __init__(self, body: bytes):
        self.body, self.ranges, self.break_after, self.ranges_off = body, [], None, False
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (the http.server name)
                start = 0
                if "Range" in self.headers and server.ranges_off:
                    server.ranges.append(self.headers["Range"])
                    self.send_response(200)  # the whole file again, as a server without ranges answers
                elif "Range" in self.headers:
                    server.ranges.append(self.headers["Range"])
                    start = int(self.headers["Range"].split("=")[1].rstrip("-"))
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(server.body) - 1}/{len(server.body)}")
                else:
                    self.send_response(200)
                data = server.body[start:]
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if server.break_after is not None:
                    self.wfile.write(data[: server.break_after])
                    server.break_after = None
                    self.wfile.flush()
                    self.connection.shutdown(2)  # the connection drops mid-file
                    return
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/Task04_Hippocampus.tar"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def msd_server(tmp_path, monkeypatch):
    body = _msd_archive(tmp_path)
    server = _Server(body)
    monkeypatch.setattr(
        download,
        "MSD_TASK04",
        dataclasses.replace(download.MSD_TASK04, url=server.url, md5=hashlib.md5(body).hexdigest()),
    )
    yield server
    server.close()


def _leftovers(cache: Path) -> list[str]:
    return sorted(p.name for p in cache.iterdir()) if cache.exists() else []


def test_msd_task04_download_is_verified_extracted_and_reused(msd_server, tmp_path, monkeypatch):
    monkeypatch.setenv("HIPPO_DATA", "msd-task04")
    cfg = load_config(
        write_config(
            tmp_path / "c.config",
            {
                "source_dir": "${HIPPO_REAL_DATA}/none",
                "layout": "pairs",
                "output_dir": str(tmp_path / "derived"),
                "plane": "axis1",
                "label_map": {1: 1, 2: 1},
            },
            size=32,
        )
    )
    source = resolve_source(cfg)
    cache = tmp_path / "cache"
    assert source.kind == "msd-task04" and source.path == cache / "Task04_Hippocampus"
    assert "real MSD Task04" in source.message and "CC-BY-SA" in source.message
    found = find_subjects(source.path)
    assert found.layout == "msd" and [s.name for s in found.labelled] == MSD_NAMES
    assert [s.name for s in found.unlabelled] == ["hippocampus_002"]
    assert _leftovers(cache) == ["Task04_Hippocampus", "Task04_Hippocampus.tar"]  # no .part, lock or temporary
    msd_server.close()  # the second time nothing is fetched
    assert resolve_source(cfg).path == source.path
    out = ensure_dataset(cfg)  # the notebooks derive from it as from any source
    meta = json.loads((out / "dataset.json").read_text())
    assert meta["source_dir"] == str(source.path) and meta["layout"] == "msd"


def test_a_broken_download_resumes_where_it_stopped(msd_server, tmp_path):
    msd_server.break_after = len(msd_server.body) // 3
    with pytest.raises(ConnectionError, match=r"Task04_Hippocampus.tar .*(broke off|ended) after .*run again"):
        download.fetch(progress=False)
    cache = tmp_path / "cache"
    part = cache / "Task04_Hippocampus.tar.part"
    assert part.is_file() and 0 < part.stat().st_size < len(msd_server.body)
    assert not (cache / "Task04_Hippocampus").exists()
    have = part.stat().st_size
    assert download.fetch(progress=False) == cache / "Task04_Hippocampus"
    assert msd_server.ranges == [f"bytes={have}-"]  # only the rest was asked for
    assert (cache / "Task04_Hippocampus.tar").read_bytes() == msd_server.body


def test_a_checksum_mismatch_leaves_nothing(msd_server, tmp_path, monkeypatch):
    monkeypatch.setattr(download, "MSD_TASK04", dataclasses.replace(download.MSD_TASK04, md5="0" * 32))
    with pytest.raises(ValueError, match=r"MD5 is [0-9a-f]{32}, not the published 0{32}; it was removed"):
        download.fetch(progress=False)
    assert _leftovers(tmp_path / "cache") == []


def test_offline_is_one_clear_line(tmp_path, monkeypatch):
    from helpers import free_port

    monkeypatch.setattr(
        download,
        "MSD_TASK04",
        dataclasses.replace(download.MSD_TASK04, url=f"http://127.0.0.1:{free_port()}/Task04_Hippocampus.tar"),
    )
    monkeypatch.setenv("HIPPO_DATA", "msd-task04")
    cfg = load_config(write_config(tmp_path / "c.config", {"source_dir": str(tmp_path / "none")}))
    with pytest.raises(ConnectionError) as err:
        resolve_source(cfg)
    message = str(err.value)
    assert "\n" not in message and "are you offline?" in message
    assert f"put Task04_Hippocampus.tar in {tmp_path / 'cache'}" in message
    assert _leftovers(tmp_path / "cache") == []


def _kagglehub(monkeypatch, tmp_path, synthetic_hfh, fail=None):
    """A stand-in for kagglehub: the data under datasets/OWNER/NAME/versions/N, as kagglehub
    caches it, with the Kaggle zip's own top folder inside."""
    calls = []

    def dataset_download(handle):
        calls.append(handle)
        if fail:
            raise fail
        root = tmp_path / "kagglehub" / "datasets" / handle / "versions" / "2"
        if not root.exists():
            shutil.copytree(synthetic_hfh, root / "HFH")
            (root / "HFH" / "synthetic.json").unlink()  # as the real data: not made by the generator
        return str(root)

    monkeypatch.setitem(sys.modules, "kagglehub", types.SimpleNamespace(dataset_download=dataset_download))
    return calls


def test_kagglehub_is_used_when_named_and_never_otherwise(monkeypatch, tmp_path, synthetic_hfh):
    calls = _kagglehub(monkeypatch, tmp_path, synthetic_hfh)
    cfg = load_config(
        write_config(
            tmp_path / "c.config",
            {"source_dir": str(tmp_path / "synthetic"), "layout": "hfh", "output_dir": str(tmp_path / "derived")},
            size=32,
            extra="[synthetic]\nn_labelled = 4\nn_unlabelled = 1",
        )
    )
    unnamed = resolve_source(cfg)  # kagglehub installed (as on Colab), nothing named: the synthetic set
    assert unnamed.kind == "synthetic" and unnamed.path == tmp_path / "synthetic" and calls == []
    assert "SYNTHETIC" in unnamed.message
    monkeypatch.setenv("HIPPO_DATA", "kaggle-hfh")
    named = resolve_source(cfg)
    assert named.kind == "kaggle-hfh" and calls == ["andrewmvd/hippocampus-segmentation-in-mri-images"]
    assert named.path.parts[-2:] == ("versions", "2")
    found = find_subjects(named.path)
    assert found.layout == "hfh" and len(found.labelled) == 4 and len(found.unlabelled) == 1
    monkeypatch.setenv("HIPPO_DATA", "synthetic")
    out = ensure_dataset(cfg)
    before = (out / "dataset.json").read_bytes()
    monkeypatch.setenv("HIPPO_DATA", "kaggle-hfh")  # a dataset of the synthetic set is not taken for the Kaggle data's
    with pytest.raises(FileExistsError, match=r"was derived from .*synthetic, but HIPPO_DATA names kaggle-hfh"):
        ensure_dataset(cfg)
    monkeypatch.setenv("HIPPO_DATA", str(named.path))  # the same data named by its folder
    with pytest.raises(FileExistsError, match=r"was derived from .*synthetic, but HIPPO_DATA names .*versions/2"):
        ensure_dataset(cfg)
    assert (out / "dataset.json").read_bytes() == before and len(calls) == 1  # checked without downloading


@pytest.mark.parametrize(
    "fail, error, match",
    [
        (None, ModuleNotFoundError, r"needs kagglehub: pip install kagglehub"),
        (OSError("Name or service not known"), ConnectionError, r"could not download .*OSError: Name or service"),
    ],
)
def test_kagglehub_missing_or_offline_is_an_error(monkeypatch, tmp_path, synthetic_hfh, fail, error, match):
    if fail is None:
        monkeypatch.setitem(sys.modules, "kagglehub", None)  # not installed
    else:
        _kagglehub(monkeypatch, tmp_path, synthetic_hfh, fail=fail)
    monkeypatch.setenv("HIPPO_DATA", "kaggle-hfh")
    cfg = load_config(write_config(tmp_path / "c.config", {"source_dir": str(tmp_path / "synthetic")}))
    with pytest.raises(error, match=match):
        resolve_source(cfg)
    assert not (tmp_path / "synthetic").exists()  # no synthetic set made in its place


def test_a_named_folder_or_a_wrong_name(monkeypatch, tmp_path, synthetic_hfh):
    cfg = load_config(write_config(tmp_path / "c.config", {"source_dir": str(tmp_path / "synthetic")}))
    monkeypatch.setenv("HIPPO_DATA", str(synthetic_hfh))
    found = resolve_source(cfg)
    assert found.kind == "user" and found.path == synthetic_hfh and "hfh layout" in found.message
    monkeypatch.setenv("HIPPO_DATA", "msd_task04")  # a typo of a source's name
    with pytest.raises(
        FileNotFoundError,
        match=r"HIPPO_DATA=msd_task04: no such folder.*synthetic, msd-task04, "
        r"kaggle-hfh",
    ):
        resolve_source(cfg)
    real = load_config(
        write_config(tmp_path / "r.config", {"source_dir": str(synthetic_hfh.parent), "layout": "pairs"})
    )
    monkeypatch.setenv("HIPPO_DATA", "synthetic")
    with pytest.raises(ValueError, match=r"HIPPO_DATA=synthetic: .* is not the synthetic set's place"):
        resolve_source(real)
    monkeypatch.delenv("HIPPO_DATA")
    unset = load_config(write_config(tmp_path / "u.config", {"source_dir": "${HIPPO_NOT_SET}/msd", "layout": "pairs"}))
    with pytest.raises(
        FileNotFoundError,
        match=r"is not a folder \(an environment variable in it is not set\); "
        r"set HIPPO_DATA",
    ):
        resolve_source(unset)


def test_the_cli_derives_from_the_named_source(msd_server, tmp_path, capsys):
    from hippo_utils.cli import main

    config = write_config(
        tmp_path / "c.config",
        {
            "source_dir": str(tmp_path / "none"),
            "layout": "pairs",
            "output_dir": str(tmp_path / "derived"),
            "plane": "axis1",
            "label_map": {1: 1, 2: 1},
        },
        size=32,
    )
    assert main(["--quiet", "derive", str(config), "--data", "msd-task04"]) == 0
    out = capsys.readouterr().out
    assert "Using the real MSD Task04 hippocampus crops in" in out and "derived:" in out and "(msd layout)" in out
    msd_server.close()
    (tmp_path / "cache" / "Task04_Hippocampus.tar").unlink()
    shutil.rmtree(tmp_path / "cache" / "Task04_Hippocampus")
    assert main(["--quiet", "derive", str(config), "--data", "msd-task04"]) == 2  # offline now
    err = capsys.readouterr().err
    assert err.startswith("error: cannot download ") and "are you offline?" in err and err.count("\n") == 1


def test_a_server_without_ranges_gets_the_whole_file_again(msd_server, tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "Task04_Hippocampus.tar.part").write_bytes(b"x" * 1000)  # a part that is not even of this file
    msd_server.ranges_off = True
    assert download.fetch(progress=False) == cache / "Task04_Hippocampus"
    assert msd_server.ranges == ["bytes=1000-"]
    assert (cache / "Task04_Hippocampus.tar").read_bytes() == msd_server.body


def test_a_copy_put_there_by_hand_is_checked_and_kept_when_wrong(msd_server, tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "Task04_Hippocampus.tar").write_bytes(b"not the archive")
    with pytest.raises(
        ValueError,
        match=r"Task04_Hippocampus\.tar: its MD5 is .*\(renamed to "
        r"Task04_Hippocampus\.tar\.bad\)",
    ):
        download.fetch(progress=False)
    assert (cache / "Task04_Hippocampus.tar.bad").read_bytes() == b"not the archive"
    assert msd_server.ranges == []  # nothing was downloaded over it
    assert download.fetch(progress=False) == cache / "Task04_Hippocampus"  # then it is downloaded


def test_a_second_process_waits_for_the_first_download(msd_server, tmp_path):
    import time

    from hippo_utils.core.locks import folder_lock

    cache = tmp_path / "cache"
    cache.mkdir()
    held = threading.Event()

    def first():
        with folder_lock(cache / "Task04_Hippocampus", "download msd-task04"):
            held.set()
            time.sleep(1.5)

    thread = threading.Thread(target=first)
    thread.start()
    held.wait()
    t0 = time.monotonic()
    assert download.fetch(progress=False) == cache / "Task04_Hippocampus"  # waited, then fetched
    assert time.monotonic() - t0 >= 1.0
    thread.join()


def _member(name: str, link: str | None = None) -> tarfile.TarInfo:
    member = tarfile.TarInfo(name)
    if link is not None:
        member.type, member.linkname = tarfile.SYMTYPE, link
    return member


@pytest.mark.parametrize(
    "member",
    [
        _member("Task04_Hippocampus/imagesTr/evil.nii.gz", link="/etc/passwd"),
        _member("Task04_Hippocampus/../escape.txt"),
        _member("Task04_Hippocampus/C:evil.txt"),  # a drive (or an NTFS stream) on Windows
        _member("Task04_Hippocampus/imagesTr/a\\..\\..\\b.txt"),  # Windows separators
    ],
    ids=["symlink", "dotdot", "drive", "backslashes"],
)
def test_archive_members_that_are_not_plain_files_inside_its_folder_are_refused(tmp_path, monkeypatch, member):
    body = _msd_archive(tmp_path, extra=member)
    server = _Server(body)
    try:
        monkeypatch.setattr(
            download,
            "MSD_TASK04",
            dataclasses.replace(download.MSD_TASK04, url=server.url, md5=hashlib.md5(body).hexdigest()),
        )
        refused = re.escape(member.name) + r" is not a plain file inside Task04_Hippocampus/"
        with pytest.raises(ValueError, match=refused):
            download.fetch(progress=False)
    finally:
        server.close()
    assert _leftovers(tmp_path / "cache") == ["Task04_Hippocampus.tar"]  # the verified archive; nothing extracted
    assert not (tmp_path / "escape.txt").exists()


def test_a_real_data_config_never_gets_synthetic_data_in_its_folder(tmp_path):
    """hfh_512's folder is for the Kaggle data: with nothing named and the folder missing, the
    answer is an error, not a synthetic set made where the real data should go."""
    cfg = load_config(
        write_config(tmp_path / "c.config", {"source_dir": str(tmp_path / "kaggle_hfh"), "layout": "hfh"})
    )
    with pytest.raises(FileNotFoundError, match=r"kaggle_hfh is not a folder; set HIPPO_DATA"):
        resolve_source(cfg)
    assert not (tmp_path / "kaggle_hfh").exists()
