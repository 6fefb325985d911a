"""What hippo_utils wrote, so that nothing else is ever replaced or deleted (production
hardening; a learner can skip this module).

Every folder the tool writes into keeps a record, ``.hippo_utils.json``, of the files it
wrote there: name, size, modification time and sha256 (the last two versions, so that a
kill between the record and the rename still recognises the file on disk), and for
results the input they came from. With it:

- a file is replaced only when the record proves the tool wrote it and nobody changed it
  since (:func:`check_may_write`); anything else at an output's path is refused;
- a whole folder is replaced only when every file in it, at every depth, is in the records
  of one build of the same kind (:func:`why_not_replaceable`), and never when it is the
  current or home folder, the source, or holds them (:func:`protected_reason`);
- readers skip the tool's own results when they list an input folder (:func:`result_files`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

RECORD_NAME = ".hippo_utils.json"
TEMP_TAG = "hippo-tmp"  # in the names of temporary files: .NAME.hippo-tmp-PID-XXXX.suffix
_KEEP_VERSIONS = 2
_lock = threading.Lock()  # one process's threads (a batch writes from a worker) share records


class NotOurs(FileExistsError):
    """An output path or folder holds something the tool did not write."""


# ------------------------------------------------------------------------ records
def read_record(folder: str | os.PathLike[str]) -> dict | None:
    """The record of ``folder``, or None where the tool has written nothing (or it is unreadable)."""
    path = Path(folder) / RECORD_NAME
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and isinstance(record.get("files"), dict) else None


def _write_record(folder: Path, record: dict) -> None:
    """The record, atomically (written directly: :mod:`hippo_utils.core.files` writes through this module)."""
    fd, tmp = tempfile.mkstemp(prefix=f"{RECORD_NAME}.{TEMP_TAG}-{os.getpid()}-", dir=folder)
    try:
        os.chmod(tmp, 0o666 & ~umask())  # mkstemp makes 0600; the record is as readable as the folder's files
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(record, fh, indent=0, sort_keys=True)
        os.replace(tmp, folder / RECORD_NAME)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def _new_record(kind: str | None = None, build: str | None = None) -> dict:
    from hippo_utils._version import __version__

    return {"made_by": "hippo_utils", "version": __version__, "kind": kind, "build": build, "owner": None, "files": {}}


def umask() -> int:
    """This process's umask (reading it means setting it; it is set back at once)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _sha256(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def _version_of(path: Path) -> dict:
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": _sha256(path)}


def _matches(path: Path, entry: dict) -> bool:
    try:
        st = path.stat()
    except OSError:
        return False
    versions = [v for v in entry.get("versions", []) if v.get("size") == st.st_size]
    if any(v.get("mtime_ns") == st.st_mtime_ns for v in versions):
        return True
    return bool(versions) and _sha256(path) in {v.get("sha256") for v in versions}  # copied, same bytes


def is_ours(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a file the tool wrote and nobody has changed since."""
    path = Path(path)
    if path.is_symlink() or not path.is_file():
        return False
    record = read_record(path.parent)
    entry = record["files"].get(path.name) if record else None
    return isinstance(entry, dict) and _matches(path, entry)


def result_files(folder: str | os.PathLike[str]) -> set[str]:
    """The names of the results in ``folder``: files the tool made from an input (recorded
    with it) and nobody changed since. Readers of an input folder leave them out; a derived
    dataset or a synthetic set, made to be read, holds none."""
    record = read_record(folder)
    if record is None:
        return set()
    return {
        name
        for name, entry in record["files"].items()
        if isinstance(entry, dict) and entry.get("input") and _matches(Path(folder) / name, entry)
    }


def recorded_input(path: str | os.PathLike[str]) -> str | None:
    """The input that the result ``path`` was made from, as its folder's record says."""
    path = Path(path)
    record = read_record(path.parent)
    entry = record["files"].get(path.name) if record else None
    return entry.get("input") if isinstance(entry, dict) and _matches(path, entry) else None


def check_may_write(path: str | os.PathLike[str]) -> None:
    """Refuse to write ``path`` when something the tool did not write is there.

    Raises:
        NotOurs: a file (or folder, or link) there that is not in its folder's record, or
            that was changed after the tool wrote it.
    """
    path = Path(path)
    if not (path.exists() or path.is_symlink()):
        return
    if path.is_dir() and not path.is_symlink():
        raise NotOurs(
            f"{path} is a folder where hippo_utils writes a file; it is left as it is. "
            "Move it away, or choose another output folder"
        )
    if not is_ours(path):
        raise NotOurs(
            f"{path} exists and was not written by hippo_utils (or was changed since); it is left "
            "as it is. Move it away, or choose another output folder"
        )


def remember(tmp: str | os.PathLike[str], path: str | os.PathLike[str], input: str | None = None) -> None:
    """Record that the complete temporary file ``tmp`` is about to become ``path``.

    Called before the rename: if the record cannot be written (a full disk), the rename does
    not happen; if the process dies between the two, both versions are recognised.
    """
    tmp, path = Path(tmp), Path(path)
    version = _version_of(tmp)
    with _lock:
        record = read_record(path.parent) or _new_record()
        entry = record["files"].get(path.name)
        entry = entry if isinstance(entry, dict) else {}
        versions = [v for v in entry.get("versions", []) if _matches(path, {"versions": [v]})][-1:]
        entry["versions"] = (versions + [version])[-_KEEP_VERSIONS:]
        if input is not None:
            entry["input"] = input
        record["files"][path.name] = entry
        _write_record(path.parent, record)


def forget_and_remove(path: str | os.PathLike[str]) -> bool:
    """Remove ``path`` if the tool wrote it (and drop it from the record); leave anything else.
    Returns whether it was removed."""
    path = Path(path)
    if not is_ours(path):
        return False
    with _lock:
        path.unlink(missing_ok=True)
        record = read_record(path.parent)
        if record is not None and record["files"].pop(path.name, None) is not None:
            _write_record(path.parent, record)
    return True


def claim(folder: str | os.PathLike[str], owner: dict, what: str, check_only: bool = False) -> None:
    """Mark ``folder`` as the output of ``owner`` (e.g. ``{"model_dir": ...}``), refusing one
    that already belongs to another.

    Args:
        what: how the user sets this folder, for the message (``[train] eval_dir``).
        check_only: refuse as it would, but write nothing (a run that claims several folders
            checks them all first, so that a refusal leaves none claimed).

    Raises:
        NotOurs: ``folder`` holds the outputs of another owner, or (claimed the first time)
            files the tool did not write.
    """
    folder = Path(folder)
    if check_only and not folder.exists():
        return
    folder.mkdir(parents=True, exist_ok=True)
    with _lock:
        record = read_record(folder) or _new_record()
        before = record.get("owner")
        if not before:  # a folder the run would share with files it did not write: refused now, not mid-run
            ours = {
                name
                for name, entry in record["files"].items()
                if isinstance(entry, dict) and _matches(folder / name, entry)
            }
            foreign = sorted(p.name for p in folder.iterdir() if not p.name.startswith(".") and p.name not in ours)
            if foreign:
                raise NotOurs(
                    f"{what} {folder} holds files hippo_utils did not write ({_describe(foreign)}); "
                    f"choose another {what}, a folder of this run's own"
                )
        if before and before != owner:
            theirs = ", ".join(f"{k} {v}" for k, v in before.items())
            mine = ", ".join(f"{k} {v}" for k, v in owner.items())
            raise NotOurs(
                f"{what} {folder} holds the outputs of another run ({theirs}); this run ({mine}) "
                f"would overwrite them. Choose another {what}"
            )
        if before != owner and not check_only:
            record["owner"] = owner
            _write_record(folder, record)


# ---------------------------------------------------------------- whole folders
def mark_tree(root: str | os.PathLike[str], kind: str) -> str:
    """Record every file under the freshly built folder ``root`` as one build of ``kind``.
    Returns the build's id."""
    root = Path(root)
    build = f"{kind}-{os.getpid()}-{time.time_ns()}"
    for folder, _dirs, files in os.walk(root):
        record = _new_record(kind, build)
        for name in files:
            if name != RECORD_NAME:
                record["files"][name] = {"versions": [_version_of(Path(folder) / name)]}
        _write_record(Path(folder), record)
    return build


def _describe(paths: list[str], limit: int = 3) -> str:
    more = f" and {len(paths) - limit} more" if len(paths) > limit else ""
    return ", ".join(paths[:limit]) + more


def why_not_replaceable(folder: str | os.PathLike[str], kind: str) -> str | None:
    """Why ``folder`` may not be replaced by a new build of ``kind``, or None when it may:
    it is missing, empty, or one build of ``kind`` that holds nothing else, unchanged."""
    folder = Path(folder)
    if not folder.exists():
        return None
    if folder.is_symlink() or not folder.is_dir():
        return "it is not a folder"
    root = read_record(folder)
    if root is None:
        if not any(folder.iterdir()):
            return None
        return "hippo_utils has no record of making it"
    if root.get("kind") != kind or not root.get("build"):
        return f"it is not a {kind.replace('-', ' ')} that hippo_utils made"
    models, foreign, changed = [], [], []
    for sub, dirs, files in os.walk(folder):
        here = Path(sub)
        rel = here.relative_to(folder)
        foreign.extend((rel / d).as_posix() + "/" for d in sorted(dirs) if (here / d).is_symlink())  # not walked
        record = read_record(here)
        if "state.json" in files or any(f.endswith(".keras") for f in files):
            models.append((rel / "state.json").as_posix() if "state.json" in files else rel.as_posix())
        if record is None or record.get("build") != root["build"]:
            foreign.extend((rel / f).as_posix() for f in sorted(files) if f != RECORD_NAME)
            dirs[:] = []  # a folder of someone else's: named once
            if not files:
                foreign.append(rel.as_posix() + "/")
            continue
        for name in sorted(files):
            if name == RECORD_NAME or _stale_temp(here / name):
                continue
            entry = record["files"].get(name)
            if not isinstance(entry, dict) or (here / name).is_symlink():
                foreign.append((rel / name).as_posix())
            elif not _matches(here / name, entry):
                changed.append((rel / name).as_posix())
    if models:
        return f"it holds a trained model ({_describe(models)})"
    if foreign:
        return f"it holds files hippo_utils did not write there ({_describe(foreign)})"
    if changed:
        return f"files in it were changed after hippo_utils wrote them ({_describe(changed)})"
    return None


def _contains(outer: Path, inner: Path) -> bool:
    return inner == outer or outer in inner.parents


def protected_reason(
    folder: str | os.PathLike[str],
    inputs: Iterable[tuple[str, str | os.PathLike[str]]] = (),
) -> str | None:
    """Why ``folder`` must never be replaced or emptied whatever made it, or None.

    Args:
        inputs: ``(what, path)`` of what the run reads (its source, its config); the folder
            may be neither one of them nor hold one.
    """
    folder = Path(folder).resolve()
    places = [("the current folder", Path.cwd().resolve()), ("your home folder", Path.home().resolve())]
    for what, place in places:
        if _contains(folder, place):
            return f"it is {what}" if folder == place else f"it holds {what} ({place})"
    if folder == Path(folder.anchor):
        return "it is the top of the file system"
    for what, path in inputs:
        if path is None:
            continue
        path = Path(path).resolve()
        if _contains(folder, path):
            return f"it is {what}" if folder == path else f"it holds {what} ({path})"
    return None


def check_outputs_apart(
    outputs: Iterable[tuple[str, str | os.PathLike[str] | None]],
    inputs: Iterable[tuple[str, str | os.PathLike[str] | None]],
) -> None:
    """Refuse an output path that is, or holds, an input.

    Raises:
        ValueError: naming both and what would be valid.
    """
    inputs = [(w, Path(p).resolve()) for w, p in inputs if p is not None]
    for what, out in outputs:
        if out is None:
            continue
        out_r = Path(out).resolve()
        for in_what, path in inputs:
            if _contains(out_r, path):
                how = "is" if out_r == path else "holds"
                raise ValueError(
                    f"{what} {out} {how} {in_what} {path}: results would be written over "
                    f"or among the inputs. Choose an output folder apart from the inputs"
                )


# ------------------------------------------------------------------ temporaries
def temp_prefix(path: Path) -> str:
    """The prefix of a temporary file for ``path``: hidden, tagged and naming this process."""
    return f".{path.name.split('.')[0]}.{TEMP_TAG}-{os.getpid()}-"


_TEMP_NAME = re.compile(rf"\.[^/]*\.{TEMP_TAG}-(\d+)-[^/]+")


def _stale_temp(path: Path) -> bool:
    """Whether ``path`` is a temporary file of this tool (as named by :func:`temp_prefix`) whose
    process no longer runs: a killed write's leftover, not anyone's data."""
    m = _TEMP_NAME.fullmatch(path.name)
    return (
        m is not None
        and int(m.group(1)) != os.getpid()
        and not alive(int(m.group(1)))
        and path.is_file()
        and not path.is_symlink()
    )


def remove_stale_temps(folder: str | os.PathLike[str]) -> list[Path]:
    """Remove the temporary files that killed runs left in ``folder`` (their process is gone)."""
    removed = []
    folder = Path(folder)
    if not folder.is_dir():
        return removed
    for path in folder.glob(f".*{TEMP_TAG}-*"):
        if _stale_temp(path):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def alive(pid: int) -> bool:
    """Whether process ``pid`` runs (on Windows, where a signal 0 would end it, it is assumed to)."""
    if os.name == "nt":
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):  # another user's process, or a system without signals
        return True
    return True


def temporaries(folder: str | os.PathLike[str]) -> Iterator[Path]:
    """The temporary files of any run in ``folder`` (for tests and checks)."""
    yield from Path(folder).rglob(f"*{TEMP_TAG}*")
