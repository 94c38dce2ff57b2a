"""The local cache and checkpoint downloads.

Layout of ``$SAMEDGE_HOME`` (default ``~/.cache/samedge``)::

    checkpoints/<official file name>   downloaded official checkpoints
    models/<model name>/                exported ONNX models (``samedge export`` default)

Downloads stream into ``<file>.part``; an interrupted download resumes from there with an
HTTP Range request, and the file only takes its final name once its sha256 matches.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from .errors import ChecksumError, DownloadError
from .manifest import sha256_file
from .specs import ModelSpec

CHUNK = 1 << 20


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
    neither, only a download cut short of the server's Content-Length is refused.
    ``offline_hint(url, dest)`` ends the message of a failed
    connection: what the user can do instead (it names the options of the command that
    needs the file).

    Returns:
        ``dest``, complete and verified.

    Raises:
        DownloadError: network or HTTP failure; a partial file is kept for resuming.
        ChecksumError: the downloaded bytes do not match ``sha256`` (or ``size``); the
            partial file is removed.
    """
    from tqdm import tqdm

    dest.parent.mkdir(parents=True, exist_ok=True)
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
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DownloadError(f"cannot download {url}: {reason}; {offline_hint(url, dest)}") from None

    if response is not None:
        with response:
            if offset and response.status != 206:  # server ignored the Range: start over
                offset = 0
            digest = _hash_prefix(part) if offset else hashlib.sha256()
            length = response.headers.get("Content-Length")
            total = offset + int(length) if length is not None else size
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


def verify_checkpoint(path: Path, spec: ModelSpec) -> bool:
    """``path`` is ``spec``'s official checkpoint: its sha256 where one is published, its
    size in bytes otherwise; with neither published, any complete download (a file is
    renamed from ``.part`` only once complete) is taken."""
    if spec.checkpoint.sha256 is None:
        size = spec.checkpoint.size_bytes
        return size is None or path.stat().st_size == size
    return verify_file(path, spec.checkpoint.sha256)


def pull(spec: ModelSpec, url: str | None = None, progress: bool = True) -> Path:
    """Make sure ``spec``'s official checkpoint is in the cache; returns its path.

    An existing file with the wrong sha256 (or size, where no sha256 is published) is
    removed and downloaded again.

    Args:
        url: download from this URL (a mirror) instead of the official one; the sha256 (or
            size) must still match the official checkpoint.
    """
    dest = checkpoint_path(spec)
    if dest.exists():
        if verify_checkpoint(dest, spec):
            return dest
        dest.unlink()
    return download(
        url or spec.checkpoint.url,
        dest,
        spec.checkpoint.sha256,
        spec.checkpoint.size_bytes,
        progress=progress,
    )
