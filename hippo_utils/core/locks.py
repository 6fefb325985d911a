"""One writer per output folder: a lock that names the process holding it, is refused to a
second process, and is taken over (with a notice) when its holder was killed.

The lock is the file ``.NAME.lock`` beside the folder ``NAME`` (the folder itself may not
exist yet, or be replaced whole, as derivation does). It is held with the system's own file
lock (``flock`` on Linux and macOS, ``LockFileEx`` on Windows, through :mod:`filelock`), which
the system releases when the holder dies however it dies; the file's text names the holder
(pid, host, start time, command) for the messages, after a first byte that Windows keeps
locked. The holder removes the file when it is done; a killed holder leaves it, and the next
process takes it over. A process that locked a file just removed (a race) notices that the
path no longer leads to its file and tries again, so that two processes never hold two
different files. Where the file system has no locks at all, the holder record alone decides:
a record of a process that still runs on this machine keeps the folder.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import socket
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import filelock

logger = logging.getLogger(__name__)


class FolderLocked(FileExistsError):
    """Another live process is writing the folder."""


class Terminated(KeyboardInterrupt):
    """The process was sent SIGTERM while it held a folder: raised like Ctrl-C, so that the
    run records its finished work and removes its temporary files on the way out."""


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """While the block runs (in the main thread), SIGTERM raises :class:`Terminated`
    instead of ending the process at once; the previous handler comes back afterwards."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "SIGTERM"):
        yield
        return

    def handler(signum, frame):
        raise Terminated("terminated (SIGTERM)")

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except (ValueError, OSError):  # not allowed here (an embedded interpreter)
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def lock_path(folder: str | os.PathLike[str]) -> Path:
    folder = Path(folder).resolve()  # one lock whatever path (or link) leads to the folder
    return folder.parent / f".{folder.name}.lock"


def _describe(holder: dict) -> str:
    if not holder:  # read as the holder was writing its record
        return "another process"
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(holder.get("started", 0)))
    command = holder.get("command") or "?"
    return f"process {holder.get('pid', '?')} on {holder.get('host', '?')}, started {started} ({command})"


def _read_holder(fh) -> dict:
    fh.seek(0)
    try:
        text = fh.read()
    except OSError:  # Windows: the holder keeps the first byte locked
        fh.seek(1)
        text = fh.read()
    try:
        holder = json.loads(text) if text.strip() else {}
    except ValueError:
        holder = None
    return holder if isinstance(holder, dict) else {"pid": "?", "command": text.strip()[:80]}


def _read_holder_at(path: Path) -> dict:
    try:
        with open(path, encoding="utf-8") as fh:
            return _read_holder(fh)
    except OSError:
        return {}


NO_LOCKS = {errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOLCK}


def _try_lock(fh) -> bool | None:
    """Lock the open file without waiting: True; False when another process holds it; None
    where there are no file locks (no ``fcntl``, or a file system without them)."""
    try:
        return filelock.lock_descriptor(fh.fileno(), blocking=False)
    except OSError as exc:
        if exc.errno in NO_LOCKS or getattr(exc, "winerror", None) in (1, 50):  # Windows: not supported here
            return None
        raise


def _runs(holder: dict) -> bool:
    """Whether the process of a holder record may still run (without file locks to tell)."""
    pid = holder.get("pid")
    if not isinstance(pid, int) or holder.get("host") != socket.gethostname():
        return isinstance(pid, int)  # another machine's: it cannot be asked, so it is kept
    if os.name == "nt":
        return True  # Windows has file locks; os.kill there would end the process, not ask it
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process
        return True
    return True


def _acquire(path: Path, folder: str | os.PathLike[str]):
    """The open, locked lock file, and whether it is locked by the record alone (no system
    lock here); :class:`FolderLocked` when a live process holds it."""
    while True:
        try:
            fh = open(path, "a+", encoding="utf-8")  # noqa: SIM115 (held until released)
        except OSError as exc:  # a read-only or full file system: named by the folder the user gave
            raise type(exc)(exc.errno, exc.strerror, str(folder)) from None
        locked = _try_lock(fh)
        holder = _read_holder(fh)
        if locked is False or (locked is None and holder and _runs(holder)):
            fh.close()
            where = f"; if it no longer runs, remove {path}" if locked is None else ""
            raise FolderLocked(
                f"{folder} is in use: {_describe(holder)} is writing it. Wait for it to "
                f"finish, or choose another output folder{where}"
            ) from None
        if holder and not (isinstance(holder.get("pid"), int) and "started" in holder):
            fh.close()  # a file of someone else's that has the lock's name: left as it is
            raise FileExistsError(
                f"{path} is in the way of {folder}'s lock and is not one: hippo_utils "
                "would replace it. Move it away, or choose another output folder"
            )
        try:
            if os.stat(path).st_ino == os.fstat(fh.fileno()).st_ino:
                return fh, locked is None
        except FileNotFoundError:
            pass
        fh.close()  # the holder removed this file as we locked it: lock the new one


def _release(path: Path, fh) -> None:
    """Remove the lock file, then let the lock go: while it is still locked, no one else can
    be between the two. Windows cannot remove an open file: there the record is emptied first."""
    try:
        path.unlink(missing_ok=True)
    except PermissionError:
        fh.seek(0)
        fh.truncate()
        fh.close()
        with contextlib.suppress(OSError):
            path.unlink(missing_ok=True)
    fh.close()  # releases the lock


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike[str], what: str = "write") -> Iterator[Path]:
    """Hold the lock of ``folder`` while the block runs.

    Args:
        folder: the output folder (derived dataset, model folder, inference output).
        what: what the holder does there, for the other process's message.

    Raises:
        FolderLocked: another live process holds it; the message names that process.
    """
    path = lock_path(folder)
    path.parent.mkdir(parents=True, exist_ok=True)
    fh, unlocked = _acquire(path, folder)
    stale = _read_holder(fh)
    fh.seek(0)
    fh.truncate()
    record = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": time.time(),
        "command": f"{what}: {Path(sys.argv[0]).name} {' '.join(sys.argv[1:4])}"[:200],
    }
    fh.write(" " + json.dumps(record))  # the first byte is the one Windows locks
    fh.flush()
    if unlocked:  # no system lock: of two that wrote at once, the record left says who goes on
        time.sleep(0.05)
        if _read_holder(fh) != record:
            fh.close()  # the file is the other's now: left in place
            raise FolderLocked(f"{folder} is in use: {_describe(_read_holder_at(path))} took it at the same moment")
    if stale:
        logger.warning("%s: taking over the lock left by %s, which no longer runs", folder, _describe(stale))
    try:
        with terminate_as_interrupt():  # a SIGTERM then unwinds like Ctrl-C: work recorded, temporaries gone
            yield path
    finally:
        _release(path, fh)


@contextlib.contextmanager
def folder_locks(folders: Iterable[tuple[str | os.PathLike[str] | None, str]]) -> Iterator[None]:
    """Hold the locks of several folders, ``(folder, what)`` pairs, each once (a run's model
    and evaluation folders may be one), in a fixed order so that two runs cannot deadlock."""
    unique = {}
    for folder, what in folders:
        if folder is not None:
            unique.setdefault(Path(folder).resolve(), (folder, what))
    with contextlib.ExitStack() as stack:
        for key in sorted(unique):
            stack.enter_context(folder_lock(*unique[key]))
        yield
