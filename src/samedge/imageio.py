"""Reading images into the one format samedge works with: ``H x W x 3`` uint8 RGB.

Accepted inputs (:func:`load_image`):
    * a path (any format Pillow reads: JPEG, PNG, BMP, TIFF, WebP, ...);
    * a ``PIL.Image.Image``;
    * a NumPy array ``H x W`` (grayscale), ``H x W x 1``, ``H x W x 3`` (RGB) or
      ``H x W x 4`` (RGBA), of dtype uint8 or uint16.

Conversions, all documented behaviour rather than accidents:
    * JPEG EXIF orientation is applied, so the array is what a photo viewer shows;
    * grayscale is replicated to three channels;
    * an alpha channel is dropped (pixels keep their colour, transparency is ignored);
    * 16-bit data is scaled to 8 bits (``round(v / 257)``);
    * palette, CMYK and other modes are converted to RGB by Pillow.

Colour order is RGB. Arrays from OpenCV are BGR: pass ``color="BGR"`` to flip them.
"""

from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path
from typing import Any, Literal

import numpy as np

from .errors import ImageError, SamedgeError

ImageLike = Any  # str | os.PathLike | PIL.Image.Image | np.ndarray

#: File suffixes treated as images when a folder is scanned (datasets, calibration, benchmarks).
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")

#: Largest image accepted, in pixels (override with SAMEDGE_MAX_PIXELS).
DEFAULT_MAX_PIXELS = 100_000_000


def max_pixels() -> int:
    """The image size limit: ``$SAMEDGE_MAX_PIXELS`` (``200000000`` or ``2e8``) or
    :data:`DEFAULT_MAX_PIXELS`."""
    text = os.environ.get("SAMEDGE_MAX_PIXELS")
    if text is None:
        return DEFAULT_MAX_PIXELS
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 1 <= value < float("inf"):
        raise SamedgeError(
            f"SAMEDGE_MAX_PIXELS must be a number of pixels such as 200000000 or 2e8, got '{text}'"
        )
    return int(value)


def _check_size(height: int, width: int, source: str) -> None:
    if height < 1 or width < 1:
        raise ImageError(f"{source} is empty ({width}x{height})")
    if height * width > max_pixels():
        raise ImageError(
            f"{source} is {width}x{height} = {height * width / 1e6:.0f} megapixels, more than the "
            f"limit of {max_pixels() / 1e6:.0f}; downscale it or raise SAMEDGE_MAX_PIXELS"
        )


def _from_pil(image: Any, source: str) -> np.ndarray:
    from PIL import ImageOps

    _check_size(image.height, image.width, source)
    # A broken EXIF block must not make the image unreadable.
    with contextlib.suppress(Exception):
        image = ImageOps.exif_transpose(image)
    mode = image.mode
    if mode == "F":
        raise ImageError(f"{source} is a floating-point image; save it as 8 or 16-bit")
    # A PIL image opened but not yet loaded decodes here, so a truncated or corrupt file
    # fails here too; Pillow also refuses some conversions (La only converts to LA).
    try:
        if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
            data = np.asarray(image, dtype=np.int32 if mode == "I" else np.uint16)
            return _from_array(data if mode != "I" else _int32_to_16(data), source)
        if mode == "La":
            image = image.convert("LA")
        if image.mode != "RGB":
            image = image.convert("RGB")
        return np.asarray(image, dtype=np.uint8).copy()
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageError(f"cannot read {source} (mode {mode}): {_one_line(exc)}") from None


def _int32_to_16(data: np.ndarray) -> np.ndarray:
    # Pillow opens 16-bit grayscale PNGs as mode "I" (int32 holding 0..65535); values
    # outside that range (an "I" image built in memory) saturate instead of wrapping.
    return np.clip(data, 0, 65535).astype(np.uint16)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _from_array(array: np.ndarray, source: str) -> np.ndarray:
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    if array.ndim != 3 or array.shape[2] not in (3, 4):
        raise ImageError(
            f"{source} has shape {array.shape}; expected H x W, H x W x 3 (RGB) or H x W x 4"
        )
    _check_size(array.shape[0], array.shape[1], source)
    array = array[:, :, :3]
    if array.dtype == np.uint8:
        return np.ascontiguousarray(array)
    if array.dtype == np.uint16:
        return ((array.astype(np.uint32) + 128) // 257).astype(np.uint8)
    raise ImageError(
        f"{source} has dtype {array.dtype}; convert it to uint8 (0..255) or uint16 first"
    )


def load_image(image: ImageLike, color: Literal["RGB", "BGR"] = "RGB") -> np.ndarray:
    """Read ``image`` as a contiguous ``H x W x 3`` uint8 RGB array.

    Args:
        image: path, PIL image or NumPy array (see the module docstring).
        color: channel order of a NumPy array input; ``"BGR"`` flips it to RGB.
            Ignored for paths and PIL images, which are always decoded as RGB.

    Raises:
        ImageError: missing, unreadable, empty, oversized or unsupported image.
    """
    if isinstance(image, np.ndarray):
        array = _from_array(image, "image array")
        return np.ascontiguousarray(array[:, :, ::-1]) if color == "BGR" else array
    if isinstance(image, (str, os.PathLike)):
        return read_image_file(Path(image))
    if hasattr(image, "mode") and hasattr(image, "convert"):
        return _from_pil(image, "PIL image")
    raise ImageError(
        f"cannot read an image from {type(image).__name__}; "
        f"pass a file path, a PIL image or an H x W x 3 uint8 array"
    )


def read_image_file(path: Path) -> np.ndarray:
    """Decode the image file at ``path`` (see :func:`load_image`)."""
    from PIL import Image, UnidentifiedImageError

    try:
        if not path.exists():
            raise ImageError(f"image not found: {path}")
        if not path.is_file():
            raise ImageError(f"not a file: {path}")
    except OSError as exc:  # e.g. a name longer than the file system allows
        raise ImageError(f"cannot read image {path}: {exc.strerror or exc}") from None
    try:
        with _PILLOW_LIMIT_OFF, Image.open(path) as im:
            _check_size(im.height, im.width, str(path))
            im.load()
            return _from_pil(im, str(path))
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError(f"not an image (or a format Pillow cannot read): {path}") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageError(f"cannot read image {path}: {_one_line(exc)}") from None


class _PillowLimitOff:
    """Pillow's decompression-bomb limit switched off while samedge's own applies (with a
    message naming the fix). The limit is a module global shared by every thread: the first
    reader in saves it and the last one out restores it. Each reader saving and restoring
    it alone left it off for the whole process after two overlapping reads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._readers = 0
        self._saved: int | None = None

    def __enter__(self) -> None:
        from PIL import Image

        with self._lock:
            if self._readers == 0:
                self._saved = Image.MAX_IMAGE_PIXELS
                Image.MAX_IMAGE_PIXELS = None
            self._readers += 1

    def __exit__(self, *exc: object) -> None:
        from PIL import Image

        with self._lock:
            self._readers -= 1
            if self._readers == 0:
                Image.MAX_IMAGE_PIXELS = self._saved


_PILLOW_LIMIT_OFF = _PillowLimitOff()
