"""Frames in (video file, webcam, still image) and results out (video file, PNG, JSONL).

Writers stage their output under a temporary name beside the destination and move it into
place only on :meth:`commit`, so an interrupted or failed run leaves nothing half-written.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ...errors import ImageError, SamedgeError
from ...outputs import encode_png, publish_mode

#: Size webcam runs write at, to keep writing cheap.
WEBCAM_WRITE_SIZE = (640, 480)


@dataclass
class FrameSource:
    """An iterator of ``(index, timestamp_s, rgb)`` frames.

    Attributes:
        kind: ``video``, ``webcam`` or ``image``.
        fps: frames per second of the source (video: from the file; webcam: reported by the
            camera, 30 when unknown; image: 1).
        size: ``(H, W)`` of the frames.
    """

    kind: str
    fps: float
    size: tuple[int, int]
    _capture: Any = None
    _image: np.ndarray | None = None

    def __iter__(self) -> Iterator[tuple[int, float, np.ndarray]]:
        if self._image is not None:
            yield 0, 0.0, self._image
            return
        index = 0
        while True:
            ok, bgr = self._capture.read()
            if not ok or bgr is None:
                return
            yield index, index / self.fps, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            index += 1

    def close(self) -> None:
        if self._capture is not None:
            self._capture.release()


def _open_capture(capture: Any, what: str, kind: str) -> FrameSource:
    if not capture.isOpened():
        capture.release()
        hint = (
            "check the camera index and permissions"
            if kind == "webcam"
            else "the file exists but OpenCV cannot decode it (truncated, damaged or not a video)"
        )
        raise ImageError(f"cannot open {what}: {hint}")
    fps = capture.get(cv2.CAP_PROP_FPS)
    fps = float(fps) if fps and np.isfinite(fps) and fps > 0 else 30.0
    size = (int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)), int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)))
    return FrameSource(kind, fps, size, _capture=capture)


def open_video(path: str | os.PathLike[str]) -> FrameSource:
    path = Path(path)
    if not path.is_file():
        raise ImageError(f"video {path} does not exist")
    return _open_capture(cv2.VideoCapture(os.fspath(path)), f"video {path}", "video")


def open_webcam(index: int = 0) -> FrameSource:
    capture = cv2.VideoCapture(index)
    capture.set(cv2.CAP_PROP_FRAME_WIDTH, WEBCAM_WRITE_SIZE[0])
    capture.set(cv2.CAP_PROP_FRAME_HEIGHT, WEBCAM_WRITE_SIZE[1])
    return _open_capture(capture, f"webcam {index}", "webcam")


def open_image(path: str | os.PathLike[str]) -> FrameSource:
    from ...imageio import load_image

    image = load_image(path)
    return FrameSource("image", 1.0, image.shape[:2], _image=image)


class _Staged:
    """A file written under a temporary name and renamed into place on commit."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        if self.path.is_dir():
            raise SamedgeError(f"output path {self.path} is a folder; give a file name")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(
                prefix=f".{self.path.stem}.", suffix=self.path.suffix, dir=self.path.parent
            )
        except OSError as exc:
            raise SamedgeError(f"cannot write {self.path}: {exc.strerror or exc}") from None
        os.close(fd)
        self.tmp = Path(tmp)

    def commit(self) -> Path:
        publish_mode(self.tmp)
        os.replace(self.tmp, self.path)
        return self.path

    def discard(self) -> None:
        self.tmp.unlink(missing_ok=True)


class VideoSink(_Staged):
    """Annotated RGB frames to an ``.mp4`` (codec ``mp4v``) or ``.avi`` (``MJPG``) file.

    Frames are resized to ``size = (W, H)`` when given, else to the first frame's size.
    """

    def __init__(
        self, path: str | os.PathLike[str], fps: float, size: tuple[int, int] | None = None
    ) -> None:
        suffix = Path(path).suffix.lower()
        if suffix not in (".mp4", ".avi"):
            raise SamedgeError(f"--out must end in .mp4 or .avi, got {path}")
        super().__init__(path)
        self.fourcc = cv2.VideoWriter.fourcc(*("mp4v" if suffix == ".mp4" else "MJPG"))
        self.fps = fps
        self.size = size
        self.frames = 0
        self._writer: Any = None

    def write(self, rgb: np.ndarray) -> None:
        if self._writer is None:
            if self.size is None:
                self.size = (int(rgb.shape[1]), int(rgb.shape[0]))
            self._writer = cv2.VideoWriter(os.fspath(self.tmp), self.fourcc, self.fps, self.size)
            if not self._writer.isOpened():
                raise SamedgeError(f"OpenCV cannot write video {self.path} (codec not available)")
        if (rgb.shape[1], rgb.shape[0]) != self.size:
            rgb = cv2.resize(rgb, self.size, interpolation=cv2.INTER_AREA)
        self._writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        self.frames += 1

    def _close(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None

    def commit(self) -> Path:
        self._close()
        return super().commit()

    def discard(self) -> None:
        self._close()
        super().discard()


class ImageSink(_Staged):
    """The annotated RGB frame of a still image, as a ``.png`` file."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        if Path(path).suffix.lower() != ".png":
            raise SamedgeError(f"an image's --out must end in .png, .mp4 or .avi, got {path}")
        super().__init__(path)
        self.frames = 0
        self._png = b""

    def write(self, rgb: np.ndarray) -> None:
        self._png = encode_png(rgb)
        self.frames += 1

    def commit(self) -> Path:
        self.tmp.write_bytes(self._png)
        return super().commit()


class JsonlSink(_Staged):
    """One JSON object per line."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        super().__init__(path)
        self._fh = open(self.tmp, "w", encoding="utf-8")  # noqa: SIM115 - closed on commit
        self.records = 0

    def write(self, record: dict[str, Any]) -> None:
        self._fh.write(json.dumps(record, separators=(",", ":")) + "\n")
        self.records += 1

    def commit(self) -> Path:
        self._fh.close()
        return super().commit()

    def discard(self) -> None:
        self._fh.close()
        super().discard()
