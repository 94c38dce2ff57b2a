"""Frame sources: a video file, a folder of frames, a webcam.

:func:`open_video` gives a :class:`~samedge.video.types.FrameSource` (frames decoded on
demand, never all held at once) for a video file or a frame folder; :func:`open_camera`
gives a live :class:`CameraFrames` iterator, which is not a ``FrameSource`` (it has no
length and cannot go back): feed its frames to ``VideoPredictor.step`` one by one.

Frames are ``H x W x 3`` uint8 RGB, as everywhere in samedge. Every problem a user can fix
(unreadable video, empty folder, frames of different sizes, frames larger than
:func:`samedge.imageio.max_pixels`) is one :class:`~samedge.errors.ImageError` line.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..errors import ImageError
from ..imageio import _check_size, read_image_file

#: Frame files a folder source reads (case-insensitive).
FRAME_SUFFIXES = (".jpg", ".jpeg", ".png")

#: Bytes of decoded frames a :class:`VideoFile` keeps for sequential and backward reads.
READ_AHEAD_BYTES = 64 * 2**20


def _natural_key(name: str) -> list[object]:
    """``frame_2.png`` before ``frame_10.png``; zero-padded names (DAVIS) sort as usual."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


class VideoFile:
    """A video file read with OpenCV, frames decoded on demand.

    Opening decodes the stream once without converting frames (``grab``) to count them:
    container headers often state a wrong frame count, and a video that cannot be decoded
    fails here, before any work. Reads keep a few decoded frames (``READ_AHEAD_BYTES``):
    sequential reads decode forward without seeking; a read behind the cached frames seeks
    once and decodes a block ending at the requested frame, so reverse tracking costs one
    seek per block rather than one per frame.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise ImageError(f"video not found: {self.path}")
        if not self.path.is_file():
            raise ImageError(f"not a file: {self.path}")
        cap = self._capture()
        try:
            width = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))
            height = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
            fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
            count = 0
            if width < 1 or height < 1:  # some containers tell the size only by decoding
                ok, frame = cap.read()
                if ok and frame is not None:
                    height, width = frame.shape[:2]
                    count = 1
            _check_size(height, width, str(self.path))
            while cap.grab():
                count += 1
        finally:
            cap.release()
        if count == 0:
            raise ImageError(f"cannot read video {self.path}: no frame could be decoded")
        self._size = (width, height)
        self._fps = fps if np.isfinite(fps) and fps > 0 else 0.0
        self._len = count
        self._cap: cv2.VideoCapture | None = None
        self._next = 0  # index of the frame the capture decodes next
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._cache_frames = max(2, min(32, READ_AHEAD_BYTES // (width * height * 3)))

    def _capture(self) -> cv2.VideoCapture:
        cap = cv2.VideoCapture(str(self.path), cv2.CAP_FFMPEG)
        if not cap.isOpened():
            cap.release()
            raise ImageError(
                f"cannot read video {self.path}: not a video OpenCV can decode "
                f"(or a frame folder: give the folder)"
            )
        return cap

    @property
    def size(self) -> tuple[int, int]:
        return self._size

    @property
    def fps(self) -> float:
        return self._fps

    def __len__(self) -> int:
        return self._len

    def __repr__(self) -> str:
        width, height = self._size
        return f"VideoFile({str(self.path)!r}, {self._len} frames, {width}x{height})"

    def _decode_next(self) -> np.ndarray:
        assert self._cap is not None
        ok, frame = self._cap.read()
        if not ok or frame is None:
            raise ImageError(f"cannot decode frame {self._next} of {self.path}")
        if frame.shape[1::-1] != self._size:
            raise ImageError(
                f"frame {self._next} of {self.path} is {frame.shape[1]}x{frame.shape[0]}, "
                f"the video's first frames are {self._size[0]}x{self._size[1]}"
            )
        rgb = np.ascontiguousarray(frame[:, :, ::-1])
        self._remember(self._next, rgb)
        self._next += 1
        return rgb

    def _remember(self, index: int, frame: np.ndarray) -> None:
        self._cache[index] = frame
        self._cache.move_to_end(index)
        while len(self._cache) > self._cache_frames:
            self._cache.popitem(last=False)

    def _seek(self, index: int) -> None:
        if self._cap is None:
            self._cap = self._capture()
            self._next = 0
        if index != self._next:
            self._cap.set(cv2.CAP_PROP_POS_FRAMES, index)
            self._next = index

    def __getitem__(self, index: int) -> np.ndarray:
        if isinstance(index, (bool, np.bool_)) or not isinstance(index, (int, np.integer)):
            raise TypeError(f"frame index must be an int, got {type(index).__name__}")
        if index < 0:
            index += self._len
        if not 0 <= index < self._len:
            raise IndexError(f"frame {index} is outside 0..{self._len - 1}")
        index = int(index)
        cached = self._cache.get(index)
        if cached is not None:
            self._cache.move_to_end(index)
            return cached
        if self._cap is None or not self._next <= index <= self._next + self._cache_frames:
            # Behind the decoder or far ahead: seek. Going back, start a block earlier so
            # the next frames a reverse pass asks for are already decoded.
            behind = self._cap is not None and index < self._next
            start = max(0, index - self._cache_frames + 1) if behind else index
            self._seek(start)
        frame = self._decode_next()
        while self._next <= index:
            frame = self._decode_next()
        return frame

    def __iter__(self) -> Iterator[np.ndarray]:
        for index in range(self._len):
            yield self[index]

    def close(self) -> None:
        """Release the decoder (reading again reopens it)."""
        if self._cap is not None:
            self._cap.release()
            self._cap = None
        self._cache.clear()

    def __enter__(self) -> VideoFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _upright_size(image: Any) -> tuple[int, int]:
    """``(width, height)`` of an opened image as it reads (its EXIF orientation applied,
    as :func:`samedge.imageio.read_image_file` does), from the header alone."""
    orientation = 1
    with contextlib.suppress(Exception):  # a broken EXIF block is ignored when reading too
        orientation = int(image.getexif().get(0x0112, 1))  # Orientation
    turned = orientation in (5, 6, 7, 8)  # rotated by 90 or 270 degrees
    return (image.height, image.width) if turned else (image.width, image.height)


class FrameFolder:
    """A folder of frame images (``.jpg``, ``.jpeg``, ``.png``) in natural name order, as
    DAVIS stores a sequence (``JPEGImages/<sequence>/00000.jpg``).

    Opening reads every file's header (not its pixels) to check that all frames have the
    same size; frames are decoded when asked for. ``count`` keeps only the first ``count``
    frames (a quick run over the start of a long sequence).
    """

    def __init__(
        self, path: str | os.PathLike[str], fps: float = 0.0, count: int | None = None
    ) -> None:
        from PIL import Image, UnidentifiedImageError

        self.path = Path(path)
        if not self.path.is_dir():
            raise ImageError(f"frame folder not found: {self.path}")
        files = sorted(
            (p for p in self.path.iterdir() if p.suffix.lower() in FRAME_SUFFIXES and p.is_file()),
            key=lambda p: _natural_key(p.name),
        )[:count]
        if not files:
            raise ImageError(
                f"{self.path} holds no frames (.jpg, .jpeg or .png files); "
                f"a DAVIS sequence is JPEGImages/<sequence>/"
            )
        size = None
        for file in files:
            try:
                with Image.open(file) as im:
                    this = _upright_size(im)
            except (OSError, UnidentifiedImageError, ValueError):
                raise ImageError(f"cannot read frame {file}: not an image") from None
            if size is None:
                _check_size(this[1], this[0], str(file))
                size = this
            elif this != size:
                raise ImageError(
                    f"frames differ in size: {file.name} is {this[0]}x{this[1]}, "
                    f"{files[0].name} is {size[0]}x{size[1]} (all frames of a video must match)"
                )
        assert size is not None
        self.files = files
        self._size = size
        self._fps = float(fps)

    @property
    def size(self) -> tuple[int, int]:
        return self._size

    @property
    def fps(self) -> float:
        return self._fps

    def __len__(self) -> int:
        return len(self.files)

    def __repr__(self) -> str:
        return f"FrameFolder({str(self.path)!r}, {len(self.files)} frames)"

    def __getitem__(self, index: int) -> np.ndarray:
        if isinstance(index, (bool, np.bool_)) or not isinstance(index, (int, np.integer)):
            raise TypeError(f"frame index must be an int, got {type(index).__name__}")
        frame = read_image_file(self.files[index])
        if frame.shape[1::-1] != self._size:  # EXIF rotation can turn one frame
            raise ImageError(
                f"frame {self.files[index]} reads as {frame.shape[1]}x{frame.shape[0]}, "
                f"the other frames are {self._size[0]}x{self._size[1]}"
            )
        return frame

    def __iter__(self) -> Iterator[np.ndarray]:
        for index in range(len(self.files)):
            yield self[index]

    def close(self) -> None:
        """Nothing to release (for symmetry with :class:`VideoFile`)."""


class CameraFrames:
    """Live frames from a webcam (OpenCV device index), RGB, until the camera stops or
    :meth:`close` is called. Not a ``FrameSource``: no length, no going back."""

    def __init__(self, index: int = 0) -> None:
        self.index = index
        self._cap = cv2.VideoCapture(index)
        if not self._cap.isOpened():
            self._cap.release()
            raise ImageError(f"cannot open camera {index} (no such device, or it is busy)")
        self.size = (
            int(self._cap.get(cv2.CAP_PROP_FRAME_WIDTH)),
            int(self._cap.get(cv2.CAP_PROP_FRAME_HEIGHT)),
        )
        fps = float(self._cap.get(cv2.CAP_PROP_FPS) or 0.0)
        self.fps = fps if np.isfinite(fps) and fps > 0 else 0.0

    def __iter__(self) -> Iterator[np.ndarray]:
        while self._cap.isOpened():
            ok, frame = self._cap.read()
            if not ok or frame is None:
                return
            yield np.ascontiguousarray(frame[:, :, ::-1])

    def close(self) -> None:
        self._cap.release()

    def __enter__(self) -> CameraFrames:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_video(source: str | os.PathLike[str], fps: float = 0.0) -> VideoFile | FrameFolder:
    """The frames of a video file or a frame folder, read on demand.

    Args:
        source: a video file OpenCV (FFmpeg) decodes, or a folder of ``.jpg``/``.png``
            frames in name order.
        fps: the frame rate of a folder (unknown: ``0.0``); a video file knows its own.

    Raises:
        ImageError: the path is missing, not a video, holds no frames, or its frames differ
            in size or exceed the image-size limit (one line saying which).
    """
    if isinstance(source, (int, np.integer)) and not isinstance(source, bool):
        raise ImageError(
            f"camera {source} is a live source, not a video: use open_camera({source}) and "
            f"VideoPredictor.step"
        )
    path = Path(source)
    if path.is_dir():
        return FrameFolder(path, fps=fps)
    return VideoFile(path)


def open_camera(index: int = 0) -> CameraFrames:
    """Live frames of webcam ``index`` (see :class:`CameraFrames`)."""
    return CameraFrames(index)
