"""Public data sets fetched on request: the archive is downloaded into a cache folder (resumed
where a download stopped), checked against its published checksum, and extracted under a
temporary name that is renamed into place only when complete.

    HIPPO_DATA=msd-task04   the Medical Segmentation Decathlon's Task04_Hippocampus (27 MB):
                            260 labelled real T1w crops (imagesTr/, labelsTr/) and 130
                            unlabelled ones (imagesTs/); CC-BY-SA 4.0

The cache is ``$HIPPO_CACHE``, else ``$XDG_CACHE_HOME/hippo_utils``, else
``~/.cache/hippo_utils``. Nothing is fetched unless asked for: offline, the error says so
in one line and where to put a copy downloaded by hand.
"""

from __future__ import annotations

import dataclasses
import http.client
import logging
import os
import re
import shutil
import tarfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from hippo_utils.core.files import atomic_dir, file_digest
from hippo_utils.core.locks import FolderLocked, folder_lock

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Archive:
    """A published archive: where it is, its checksum, and the folder it unpacks to."""

    name: str
    url: str
    md5: str  # the checksum its publishers give (the Decathlon's, as MONAI checks it)
    folder: str  # the top folder inside the archive
    citation: str

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[-1]


MSD_TASK04 = Archive(
    name="msd-task04",
    url="https://msd-for-monai.s3-us-west-2.amazonaws.com/Task04_Hippocampus.tar",
    md5="9d24dba78a72977dbd1d2e110310f31b",
    folder="Task04_Hippocampus",
    citation="Antonelli et al., The Medical Segmentation Decathlon, Nature Communications 13, 4128 (2022); "
    "CC-BY-SA 4.0",
)


def cache_dir() -> Path:
    """Where downloads are kept: ``$HIPPO_CACHE``, ``$XDG_CACHE_HOME/hippo_utils`` or ``~/.cache/hippo_utils``."""
    if os.environ.get("HIPPO_CACHE"):
        return Path(os.environ["HIPPO_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "hippo_utils"


def fetch(
    archive: Archive | None = None,
    cache: str | os.PathLike[str] | None = None,
    progress: bool = True,
    timeout: float = 30.0,
    wait: float = 1800.0,
) -> Path:
    """The archive's folder in the cache (default: :data:`MSD_TASK04`), downloaded, verified
    and extracted first if needed. Another process fetching it (a second notebook) is waited
    for, up to ``wait`` seconds.

    Raises:
        ConnectionError: the archive cannot be downloaded (offline, or the server refuses),
            with the URL and where to put a copy downloaded by hand.
        ValueError: its checksum is not the published one (a download is removed; a copy put
            there by hand is renamed ``.bad`` and named).
        FolderLocked: another process still fetches it after ``wait`` seconds.
    """
    archive = archive or MSD_TASK04
    cache = Path(cache) if cache is not None else cache_dir()
    dest = cache / archive.folder
    cache.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + wait
    while not dest.is_dir():
        try:
            with folder_lock(dest, f"download {archive.name}"):
                if not dest.is_dir():  # another process may have finished it meanwhile
                    _fetch_locked(archive, cache, dest, progress, timeout)
        except FolderLocked as exc:
            if time.monotonic() > deadline:
                raise
            logger.info("waiting: %s", str(exc).split(". ")[0])
            time.sleep(1.0)
    return dest


def _fetch_locked(archive: Archive, cache: Path, dest: Path, progress: bool, timeout: float) -> None:
    tar_path = cache / archive.filename
    by_hand = tar_path.is_file()
    if not by_hand:
        _download(archive, tar_path, progress, timeout)
    got = file_digest(tar_path, "md5")
    if got != archive.md5:
        if by_hand:  # not ours to delete
            bad = tar_path.with_name(tar_path.name + ".bad")
            os.replace(tar_path, bad)
            raise ValueError(
                f"{tar_path}: its MD5 is {got}, not the published {archive.md5} of {archive.url}; "
                f"it is not that archive (renamed to {bad.name}): download it again"
            )
        tar_path.unlink()
        raise ValueError(
            f"{archive.url}: the download's MD5 is {got}, not the published {archive.md5}; "
            "it was removed: download it again (a proxy or a broken connection can change a file)"
        )
    with atomic_dir(dest, "download", what=f"the {archive.name} cache folder") as tmp:
        _extract(tar_path, archive.folder, tmp)
    logger.info("%s: extracted into %s (%s)", archive.filename, dest, archive.citation)


def _download(archive: Archive, tar_path: Path, progress: bool, timeout: float) -> None:
    """Download to ``NAME.part`` beside ``tar_path``, continuing a part left by an earlier
    attempt where the server allows (an HTTP Range request), then rename it into place."""
    from tqdm.auto import tqdm

    part = tar_path.with_name(tar_path.name + ".part")
    have = part.stat().st_size if part.is_file() else 0
    request = urllib.request.Request(archive.url, headers={"Range": f"bytes={have}-"} if have else {})
    hand = f"or download it yourself and put {archive.filename} in {tar_path.parent}"
    try:
        response = urllib.request.urlopen(request, timeout=timeout)  # noqa: S310 (a fixed https URL)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # the part is whole already, or not of this file: start again
            part.unlink()
            return _download(archive, tar_path, progress, timeout)
        raise ConnectionError(f"cannot download {archive.url}: HTTP {exc.code} {exc.reason}; {hand}") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        reason = getattr(exc, "reason", exc)
        raise ConnectionError(
            f"cannot download {archive.url} ({reason}): are you offline? Try again online, {hand}"
        ) from None
    with response:
        resumed = have and response.status == 206
        ranged = re.match(r"bytes (\d+)-\d+/(\d+)", response.headers.get("Content-Range", ""))
        if resumed and (ranged is None or int(ranged[1]) != have):  # not the rest that was asked for
            resumed = False
            response.close()
            part.unlink()
            return _download(archive, tar_path, progress, timeout)
        if have and not resumed:
            logger.info("%s: the server does not resume downloads; starting again", archive.url)
        total = int(ranged[2]) if ranged else response.length
        logger.info("downloading %s%s", archive.url, f" (resuming after {have} bytes)" if resumed else "")
        with (
            open(part, "ab" if resumed else "wb") as out,
            tqdm(
                total=total,
                initial=have if resumed else 0,
                unit="B",
                unit_scale=True,
                desc=archive.filename,
                disable=not progress,
            ) as bar,
        ):
            try:
                while block := response.read(1 << 16):
                    out.write(block)
                    bar.update(len(block))
            except (OSError, http.client.HTTPException) as exc:  # the part stays: the next attempt continues it
                raise ConnectionError(
                    f"the download of {archive.url} broke off after {out.tell()} bytes ({exc}); "
                    "run again to continue it"
                ) from None
    if total is not None and part.stat().st_size != total:
        raise ConnectionError(
            f"the download of {archive.url} ended after {part.stat().st_size} of {total} bytes; "
            "run again to continue it"
        )
    os.replace(part, tar_path)


def _extract(tar_path: Path, folder: str, dest: Path) -> None:
    """Extract the members under ``folder/`` into ``dest``: regular files and folders only,
    none outside it (a link, device or absolute path in an archive is refused)."""
    prefix = folder.rstrip("/") + "/"
    with tarfile.open(tar_path) as tar:
        members = []
        for member in tar.getmembers():
            name = member.name[2:] if member.name.startswith("./") else member.name
            if not (name.startswith(prefix) or name == folder):
                continue
            rel = Path(name[len(prefix) :]) if name != folder else Path()
            odd = ":" in name or "\\" in name  # a Windows drive, stream or separator
            if odd or rel.is_absolute() or ".." in rel.parts or not (member.isfile() or member.isdir()):
                raise ValueError(
                    f"{tar_path}: {member.name} is not a plain file inside {folder}/; "
                    "the archive is not the published one"
                )
            members.append((member, rel))
        if not any(m.isfile() for m, _ in members):
            raise ValueError(f"{tar_path}: no files under {folder}/; the archive is not the published one")
        for member, rel in members:
            target = dest / rel
            if member.isdir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with tar.extractfile(member) as src, open(target, "wb") as out:
                shutil.copyfileobj(src, out)
