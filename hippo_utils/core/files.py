"""Atomic file and folder writes: a reader never sees a half-written output, and no write
replaces what the tool did not write (:mod:`hippo_utils.core.ownership` keeps the record)."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from hippo_utils.core import ownership

_cleaned: set[Path] = set()  # folders whose stale temporary files this process has removed


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], input: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` on success.

    On an exception the temporary file is removed and ``path`` is left as it was.
    The suffixes are kept (``.x.hippo-tmp-PID-123.nii.gz``) so that writers that infer the
    format from the name still work. The file is recorded as the tool's (with the ``input``
    it was made from, for results) before it takes its place.

    Raises:
        ownership.NotOurs: ``path`` holds a file the tool did not write (checked before and
            after the block), which is left as it is.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ownership.check_may_write(path)
    if path.parent not in _cleaned:  # what killed runs of ours left here
        ownership.remove_stale_temps(path.parent)
        _cleaned.add(path.parent)
    fd, tmp = tempfile.mkstemp(
        prefix=ownership.temp_prefix(path), suffix="".join(path.suffixes) or ".tmp", dir=path.parent
    )
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, 0o666 & ~ownership.umask())  # mkstemp makes 0600; the result is an ordinary file
    try:
        yield tmp_path
        ownership.check_may_write(path)  # nothing of the user's appeared there meanwhile
        ownership.remember(tmp_path, path, input)
        os.replace(tmp_path, path)
    except OSError as exc:
        if exc.errno is None or exc.filename not in (None, str(tmp_path)):
            raise
        # a full disk or a read-only folder: named by the file the user asked for, not our temporary
        raise type(exc)(exc.errno, exc.strerror, str(path)) from exc
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes, input: str | None = None) -> None:
    with atomic_path(path, input) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


@contextlib.contextmanager
def atomic_dir(
    path: str | os.PathLike[str],
    kind: str,
    replace: bool = False,
    inputs: Sequence[tuple[str, str | os.PathLike[str] | None]] = (),
    what: str = "the output folder",
) -> Iterator[Path]:
    """Build a folder under a temporary name beside ``path``, then rename it into place.

    Args:
        path: the final folder.
        kind: what is built (``"derived-dataset"``); every file is recorded as one build
            of it (:func:`hippo_utils.core.ownership.mark_tree`).
        replace: when ``path`` exists, swap it out only after the new one is complete, and
            only when it is a build of the same ``kind`` that holds nothing else
            (:func:`check_replaceable`). Without it, an existing ``path`` is an error and is
            never touched.
        inputs: ``(what, path)`` that the build reads; ``path`` may be none of them nor hold one.
        what: how the user names ``path``, for the messages (``[derive] output_dir``).

    An interrupted or failed build leaves ``path`` as it was; the temporary folder is
    removed (or, after a hard kill, left under a ``.tmp-`` name that readers ignore).
    """
    path = Path(path)
    if path.exists() and not replace:
        raise FileExistsError(f"{path} already exists")
    check_replaceable(path, kind, inputs, what)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_builds(path)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-{os.getpid()}-", dir=path.parent))
    os.chmod(tmp, 0o777 & ~ownership.umask())  # mkdtemp makes 0700; the result is an ordinary folder
    try:
        yield tmp
        ownership.mark_tree(tmp, kind)
        if path.exists():
            check_replaceable(path, kind, inputs, what)  # again: it may have changed meanwhile
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.old-", dir=path.parent))
            os.replace(path, old / path.name)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def check_replaceable(
    path: str | os.PathLike[str],
    kind: str,
    inputs: Sequence[tuple[str, str | os.PathLike[str] | None]] = (),
    what: str = "the output folder",
) -> None:
    """Refuse to replace ``path`` unless the tool can prove it made it as a ``kind`` and it
    holds nothing else, and it is not the current, home or an input's folder, nor holds one.

    Raises:
        ownership.NotOurs: why not, naming the folder and what to do.
    """
    path = Path(path)
    if not path.exists():
        return
    reason = ownership.protected_reason(path, inputs) or ownership.why_not_replaceable(path, kind)
    if reason:
        raise ownership.NotOurs(
            f"{what} {path} cannot be replaced: {reason}. Nothing was changed; choose "
            "another folder, or move this one away yourself"
        )


def remove_stale_builds(path: str | os.PathLike[str]) -> list[Path]:
    """Remove the temporary folders that killed builds of ``path`` left behind.

    Only folders named by :func:`atomic_dir` whose process no longer runs are removed;
    a build still running elsewhere is left alone. Returns the removed folders.
    """
    path = Path(path)
    removed = []
    for tmp in path.parent.glob(f".{path.name}.tmp-*-*"):
        pid = tmp.name[len(f".{path.name}.tmp-") :].split("-", 1)[0]
        if pid.isdigit() and not ownership.alive(int(pid)):
            shutil.rmtree(tmp, ignore_errors=True)
            removed.append(tmp)
    return removed


def sha256_file(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    return file_digest(path, "sha256", chunk)


def file_digest(path: str | os.PathLike[str], algorithm: str = "sha256", chunk: int = 1 << 20) -> str:
    """The hex digest of a file, read in chunks (``md5`` only to compare with a published checksum)."""
    h = hashlib.new(algorithm, usedforsecurity=algorithm != "md5")
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()
