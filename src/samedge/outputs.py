"""Writing result files so that a failure leaves nothing half-written.

:class:`OutputSet` stages every file in a temporary name beside its destination and moves
them all into place only when every one was written; on error the staged files are removed.

Staged files and folders come from :mod:`tempfile` (mode 0600 / 0700) or from libraries
that choose their own mode (onnx writes external data 0600); :func:`publish_mode` gives them
the mode a plain ``open()`` or ``mkdir()`` would have before they take their final name, so
that a model folder copied for another user can be read by it.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Any

import cv2
import numpy as np

from .errors import SamedgeError


def current_umask() -> int:
    """The process's umask, read without changing it where the system allows."""
    # os.umask can only be read by setting it, which would briefly change the mode of files
    # other threads create (the web server writes from several); Linux reports it here.
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def publish_mode(path: str | os.PathLike[str]) -> None:
    """Give ``path`` (a file, or a folder and everything in it) the mode a plain ``open()``
    (0666) or ``mkdir()`` (0777) would give it under the current umask."""
    mask = current_umask()
    root = Path(path)
    os.chmod(root, (0o777 if root.is_dir() else 0o666) & ~mask)
    if root.is_dir():
        for folder, dirs, files in os.walk(root):
            for name in dirs:
                os.chmod(os.path.join(folder, name), 0o777 & ~mask)
            for name in files:
                file = os.path.join(folder, name)
                if not os.path.islink(file):  # a link's target is not ours to change
                    os.chmod(file, 0o666 & ~mask)


def encode_png(image: np.ndarray) -> bytes:
    """PNG bytes of a uint8 ``H x W`` (gray) or ``H x W x 3`` (RGB) image, or a bool mask."""
    if image.dtype == np.bool_:
        image = image.astype(np.uint8) * 255
    if image.ndim == 3:
        image = image[:, :, ::-1]  # OpenCV writes BGR
    ok, buf = cv2.imencode(".png", image)
    if not ok:
        raise SamedgeError("could not encode PNG")
    return buf.tobytes()


class OutputSet:
    """Stage files, then commit them together: ``with OutputSet() as out: out.add(...)``."""

    def __init__(self) -> None:
        self._staged: list[tuple[Path, Path]] = []

    def add(self, path: str | os.PathLike[str], data: bytes) -> Path:
        dest = Path(path)
        if dest.is_dir():
            raise SamedgeError(f"output path {dest} is a folder; give a file name")
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            publish_mode(tmp)
        except OSError as exc:
            raise SamedgeError(f"cannot write {dest}: {exc.strerror or exc}") from None
        self._staged.append((Path(tmp), dest))
        return dest

    def add_png(self, path: str | os.PathLike[str], image: np.ndarray) -> Path:
        return self.add(path, encode_png(image))

    def add_json(self, path: str | os.PathLike[str], data: Any) -> Path:
        """Stage ``data`` as indented JSON. NaN and infinities raise ``ValueError`` (a bug
        where they come from): Python would write them as the bare tokens ``NaN`` and
        ``Infinity``, which other JSON readers reject."""
        return self.add(path, (json.dumps(data, indent=2, allow_nan=False) + "\n").encode())

    def commit(self) -> list[Path]:
        done = []
        for tmp, dest in self._staged:
            os.replace(tmp, dest)
            done.append(dest)
        self._staged.clear()
        return done

    def discard(self) -> None:
        for tmp, _ in self._staged:
            tmp.unlink(missing_ok=True)
        self._staged.clear()

    def __enter__(self) -> OutputSet:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.discard()
