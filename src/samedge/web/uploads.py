"""Checking what a browser uploads before anything else touches it.

An upload is accepted only if it is small enough (bytes and pixels) and decodes as an image;
otherwise :class:`~samedge.errors.ImageError` says which limit was hit, in one line that
names the file as the user called it (never the server's temporary path).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from ..errors import ImageError

#: Upload sizes are in MB of 2**20 bytes, as browsers and Gradio count them.
MB = 1 << 20
DEFAULT_MAX_UPLOAD_MB = 20.0
DEFAULT_MAX_UPLOAD_PIXELS = 50_000_000

_FORMATS = "JPEG, PNG, WebP, BMP or TIFF"


def display_name(original_name: str | None) -> str:
    """The base name of what the user uploaded, for messages (at most 80 characters)."""
    name = os.path.basename((original_name or "").replace("\\", "/")).strip()
    name = "".join(ch for ch in name if ch.isprintable())
    return (name[:77] + "...") if len(name) > 80 else (name or "the upload")


def safe_stem(original_name: str | None) -> str:
    """A file-name-safe stem for download names: ``[A-Za-z0-9._-]``, at most 40 characters."""
    stem = Path(display_name(original_name)).stem
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._-")
    return stem[:40] or "image"


def read_upload(
    path: str | os.PathLike[str],
    original_name: str | None = None,
    max_bytes: int = int(DEFAULT_MAX_UPLOAD_MB * MB),
    max_pixels: int = DEFAULT_MAX_UPLOAD_PIXELS,
) -> np.ndarray:
    """Decode an uploaded file as ``H x W x 3`` uint8 RGB after checking it.

    Args:
        path: where the server stored the upload.
        original_name: the file name the browser reported (only used in messages).
        max_bytes: largest accepted file.
        max_pixels: largest accepted ``width * height``, checked from the header before
            the pixels are decoded.

    Raises:
        ImageError: too large, too many pixels, not an image, or a corrupt image.
    """
    from PIL import Image, UnidentifiedImageError

    from ..imageio import load_image

    name = display_name(original_name)
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError:
        raise ImageError(f"{name} could not be received; upload it again") from None
    if size > max_bytes:
        raise ImageError(
            f"{name} is {size / MB:.1f} MB, more than this server's upload limit of "
            f"{max_bytes / MB:g} MB; upload a smaller image"
        )
    if size == 0:
        raise ImageError(f"{name} is empty; upload a {_FORMATS} image")
    try:
        with Image.open(path) as im:
            width, height = im.size
            if width * height > max_pixels:
                raise ImageError(_too_many_pixels(name, width, height, max_pixels))
            im.load()
            return load_image(im)
    except ImageError as exc:
        if str(exc).startswith(name):
            raise
        raise ImageError(f"{name}: {exc}") from None
    except Image.DecompressionBombError:
        raise ImageError(
            f"{name} has more pixels than Pillow decodes safely; downscale it"
        ) from None
    except UnidentifiedImageError:
        raise ImageError(f"{name} is not an image; upload a {_FORMATS} file") from None
    except (OSError, ValueError, SyntaxError) as exc:
        reason = str(exc).replace(os.fspath(path), name)
        raise ImageError(
            f"{name} is not a readable image ({reason}); upload a {_FORMATS} file"
        ) from None


def _too_many_pixels(name: str, width: int, height: int, max_pixels: int) -> str:
    return (
        f"{name} is {width}x{height} ({width * height / 1e6:.0f} megapixels), more than this "
        f"server's limit of {max_pixels / 1e6:.0f} megapixels; downscale it"
    )
