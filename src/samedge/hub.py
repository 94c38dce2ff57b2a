"""The local cache and checkpoint downloads.

Layout of ``$SAMEDGE_HOME`` (default ``~/.cache/samedge``)::

    checkpoints/<official file name>   downloaded official checkpoints
    models/<model name>/                exported ONNX models (``samedge export`` default)

Downloads stream into ``<file>.part``; an interrupted download resumes from there with an
HTTP Range request, and the file only takes its final name once its sha256 matches.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import logging
import os
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from .errors import ChecksumError, DownloadError
from .manifest import sha256_file
from .specs import ModelSpec

CHUNK = 1 << 20
log = logging.getLogger(__name__)


def samedge_home() -> Path:
    """The cache root: ``$SAMEDGE_HOME`` or ``~/.cache/samedge``."""
    env = os.environ.get("SAMEDGE_HOME")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "samedge"


def checkpoints_dir() -> Path:
    return samedge_home() / "checkpoints"


def models_dir() -> Path:
    return samedge_home() / "models"


def checkpoint_path(spec: ModelSpec) -> Path:
    """Where ``samedge models pull`` stores ``spec``'s checkpoint."""
    return checkpoints_dir() / spec.checkpoint.filename


def _hash_prefix(path: Path) -> hashlib._Hash:
    """The running sha256 of a partial download, to be continued with the rest."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(CHUNK):
            digest.update(block)
    return digest


def checkpoint_offline_hint(url: str, dest: Path) -> str:
    """What to do without a network when a SAM checkpoint cannot be downloaded."""
    return (
        f"if this machine is offline, download {url} elsewhere and pass it to "
        f"samedge export with --checkpoint PATH (or copy it to {dest})"
    )


def _try_lock(fh: BinaryIO) -> bool:
    if sys.platform == "win32":  # pragma: no cover - Windows
        import msvcrt

        fh.seek(0)
        try:
            msvcrt.locking(fh.fileno(), msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    import fcntl

    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


@contextlib.contextmanager
def _exclusive(lock: Path, what: str) -> Iterator[bool]:
    """Hold the lock file ``lock`` for the block; yields whether another process held it
    first (the block then runs once that one is done).

    Two processes downloading the same file would otherwise append to one ``.part`` and
    rename each other's bytes into place. The holder removes the file before it lets go, so
    a waiter checks that the file it locked is still the one at ``lock`` and else tries
    again (Windows, which cannot remove an open file, keeps it).
    """
    waited = False
    while True:
        fh = open(lock, "a+b")  # noqa: SIM115 - closed below, after the unlock
        while not _try_lock(fh):
            if not waited:
                log.warning("waiting for another download of %s", what)
            waited = True
            time.sleep(0.2)
        try:
            current = os.stat(lock).st_ino == os.fstat(fh.fileno()).st_ino
        except FileNotFoundError:
            current = False
        if current:
            break
        fh.close()  # the holder removed it while this process waited: lock the new one
    try:
        yield waited
    finally:
        if sys.platform == "win32":  # pragma: no cover - Windows
            import msvcrt

            fh.seek(0)
            msvcrt.locking(fh.fileno(), msvcrt.LK_UNLCK, 1)
        else:
            lock.unlink(missing_ok=True)
        fh.close()  # on POSIX, closing releases the lock


def _range_start(content_range: str | None) -> int | None:
    """The first byte of a ``Content-Range: bytes START-END/TOTAL`` header, or None."""
    if not content_range or not content_range.startswith("bytes "):
        return None
    first = content_range[6:].split("-", 1)[0].strip()
    return int(first) if first.isdigit() else None


def _range_total(content_range: str | None) -> int | None:
    if not content_range or "/" not in content_range:
        return None
    total = content_range.rsplit("/", 1)[1].strip()
    return int(total) if total.isdigit() else None


def _matches(path: Path, sha256: str | None, size: int | None) -> bool:
    if sha256 is not None:
        return verify_file(path, sha256)
    return size is None or path.stat().st_size == size


def download(
    url: str,
    dest: Path,
    sha256: str | None,
    size: int | None = None,
    progress: bool = True,
    timeout: float = 30.0,
    offline_hint: Callable[[str, Path], str] = checkpoint_offline_hint,
) -> Path:
    """Download ``url`` to ``dest``, resuming ``dest.part`` and verifying ``sha256``.

    ``sha256=None`` (no published hash) verifies the file's ``size`` in bytes instead; with
    neither, only a download cut short of (or beyond) the server's Content-Length is
    refused. ``offline_hint(url, dest)`` ends the message of a failed
    connection: what the user can do instead (it names the options of the command that
    needs the file). One process at a time downloads into a folder's ``dest``: another one
    waits, and takes the file it finds complete and matching.

    Returns:
        ``dest``, complete and verified.

    Raises:
        DownloadError: network or HTTP failure, or a folder that cannot be written; a
            partial file is kept for resuming.
        ChecksumError: the downloaded bytes do not match ``sha256`` (or ``size``); the
            partial file is removed.
    """
    with contextlib.ExitStack() as stack:
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            lock = dest.with_name(dest.name + ".part.lock")
            waited = stack.enter_context(_exclusive(lock, dest.name))
        except OSError as exc:
            raise DownloadError(
                f"cannot write to {dest.parent} ({exc.strerror or exc}); the download cache "
                f"is $SAMEDGE_HOME (default ~/.cache/samedge): point it at a writable folder"
            ) from None
        if waited and dest.exists() and _matches(dest, sha256, size):
            return dest  # the other process has just downloaded it
        return _download_locked(url, dest, sha256, size, progress, timeout, offline_hint)


def _download_locked(
    url: str,
    dest: Path,
    sha256: str | None,
    size: int | None,
    progress: bool,
    timeout: float,
    offline_hint: Callable[[str, Path], str],
) -> Path:
    from tqdm import tqdm

    part = dest.with_name(dest.name + ".part")
    offset = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "samedge"})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:  # nothing left to fetch: the .part is complete
            response = None
        else:
            raise DownloadError(
                f"cannot download {url}: HTTP {exc.code} {exc.reason}; {offline_hint(url, dest)}"
            ) from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        reason = getattr(exc, "reason", None) or f"{type(exc).__name__}: {exc}"
        raise DownloadError(f"cannot download {url}: {reason}; {offline_hint(url, dest)}") from None

    if response is not None:
        with response:
            content_range = response.headers.get("Content-Range")
            if offset and response.status != 206:  # server ignored the Range: start over
                offset = 0
            elif offset and _range_start(content_range) != offset:
                part.unlink(missing_ok=True)
                raise DownloadError(
                    f"the server answered the resumed download of {url} from byte "
                    f"{_range_start(content_range)} instead of {offset}; the partial file "
                    f"was removed, run the same command again to download it afresh"
                )
            digest = _hash_prefix(part) if offset else hashlib.sha256()
            length = response.headers.get("Content-Length")
            total = (_range_total(content_range) if offset else None) or (
                offset + int(length) if length is not None else size
            )
            mode = "ab" if offset else "wb"
            with (
                open(part, mode) as fh,
                tqdm(
                    total=total,
                    initial=offset,
                    unit="B",
                    unit_scale=True,
                    unit_divisor=1024,
                    desc=dest.name,
                    disable=not progress,
                ) as bar,
            ):
                try:
                    while block := response.read(CHUNK):
                        fh.write(block)
                        digest.update(block)
                        bar.update(len(block))
                except (OSError, http.client.HTTPException) as exc:
                    raise DownloadError(
                        f"download of {url} was interrupted ({exc}); run the same command "
                        f"again to resume from {fh.tell()} bytes"
                    ) from None
            received = part.stat().st_size
            if total is not None and received < total:
                raise DownloadError(
                    f"download of {url} was interrupted at {received} of {total} bytes; run "
                    f"the same command again to resume"
                )
            if total is not None and received > total:
                part.unlink(missing_ok=True)
                raise ChecksumError(
                    f"{dest.name}: {received} bytes where the server announced {total}; the "
                    f"file was removed, run the command again to download it afresh"
                )
            actual = digest.hexdigest()
    else:
        actual = sha256_file(part)

    received = part.stat().st_size
    if sha256 is None and size is not None and received != size:
        part.unlink(missing_ok=True)
        raise ChecksumError(
            f"{dest.name}: {received} bytes where {size} were expected (no sha256 is "
            f"published for it); the file was removed, run the command again to download it "
            f"afresh"
        )
    if sha256 is not None and actual != sha256:
        part.unlink(missing_ok=True)
        raise ChecksumError(
            f"{dest.name}: sha256 {actual} does not match the expected {sha256}; the file was "
            f"removed, run the command again to download it afresh"
        )
    os.replace(part, dest)
    return dest


def verify_file(path: Path, sha256: str) -> bool:
    return sha256_file(path) == sha256


#: How a PyTorch checkpoint file starts: a zip archive (``torch.save`` since 1.6, and
#: EfficientSAM-S's zipped ``.pt``) or a pickle of protocol 2-5 (the legacy format).
_CHECKPOINT_MAGIC = (b"PK\x03\x04", b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05")


def looks_like_checkpoint(path: Path) -> bool:
    """``path`` starts as a PyTorch checkpoint does (not, say, an HTML error page)."""
    with open(path, "rb") as fh:
        return fh.read(4).startswith(_CHECKPOINT_MAGIC)


def verify_checkpoint(path: Path, spec: ModelSpec) -> bool:
    """``path`` is ``spec``'s official checkpoint: its sha256 where one is published, its
    size in bytes otherwise; with neither published, any complete download (a file is
    renamed from ``.part`` only once complete) that starts as a PyTorch checkpoint does."""
    sha256, size = spec.checkpoint.sha256, spec.checkpoint.size_bytes
    if sha256 is None and size is None:
        return looks_like_checkpoint(path)
    return _matches(path, sha256, size)


def pull(
    spec: ModelSpec, url: str | None = None, progress: bool = True, force: bool = False
) -> Path:
    """Make sure ``spec``'s official checkpoint is in the cache; returns its path.

    An existing file with the wrong sha256 (or size, where no sha256 is published; or that
    is no PyTorch checkpoint, where neither is) is removed and downloaded again.

    Args:
        url: download from this URL (a mirror) instead of the official one; the sha256 (or
            size) must still match the official checkpoint.
        force: download again even where the file in the cache passes those checks.

    Raises:
        ChecksumError: the download does not pass them (it is removed).
    """
    dest = checkpoint_path(spec)
    if dest.exists():
        if not force and verify_checkpoint(dest, spec):
            return dest
        dest.unlink()
    path = download(
        url or spec.checkpoint.url,
        dest,
        spec.checkpoint.sha256,
        spec.checkpoint.size_bytes,
        progress=progress,
    )
    # download() checked the sha256 or size; with neither published, the file's start.
    published = spec.checkpoint.sha256 is not None or spec.checkpoint.size_bytes is not None
    if not published and not looks_like_checkpoint(path):
        with open(path, "rb") as fh:
            head = fh.read(16)
        path.unlink()
        raise ChecksumError(
            f"{path.name} from {url or spec.checkpoint.url} is not a PyTorch checkpoint (it "
            f"starts with {head!r}: an error page?); it was removed, check the URL"
        )
    return path
