"""Property tests of the image readers: whatever the bytes, the result is an ``H x W x 3``
uint8 RGB array or one :class:`~samedge.errors.ImageError` line, never another exception.

Covers :func:`samedge.imageio.load_image` (paths, PIL images, arrays: what the CLI, the
library and the Gaze tab read) and :func:`samedge.web.uploads.read_upload` (what the web UI
reads). Inputs are random bytes, real photos from ../shared cut short or with bytes flipped,
every Pillow mode, and headers that claim 100000 x 100000 pixels.
"""

from __future__ import annotations

import io
import struct
import threading
import warnings
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from PIL import Image

from samedge.errors import ImageError, SamedgeError
from samedge.imageio import load_image
from samedge.web.uploads import read_upload

from .conftest import shared_path

FAST = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
#: Every mode Pillow creates images in (``Image.new``).
MODES = (
    "1", "L", "LA", "La", "P", "PA", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr", "LAB",
    "HSV", "I", "F", "I;16", "I;16L", "I;16B", "I;16N",
)  # fmt: skip
#: Formats that store most modes, for files written from odd-mode images.
FORMATS = ("PNG", "TIFF", "BMP", "GIF", "WEBP", "JPEG")


def readers(tmp_path: Path) -> dict[str, Callable[[bytes], np.ndarray]]:
    """The ways a file reaches samedge: CLI / library path, PIL image, web upload."""
    path = tmp_path / "input.bin"

    def via_path(data: bytes) -> np.ndarray:
        path.write_bytes(data)
        return load_image(path)

    def via_pil(data: bytes) -> np.ndarray:
        # Image.open only reads the header: load_image must cope with what fails later.
        try:
            image = Image.open(io.BytesIO(data))
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
            # Pillow's own header check: not an image, or over its bomb limit in pixels.
            raise ImageError(" ".join(str(exc).split())) from None
        return load_image(image)

    def via_upload(data: bytes) -> np.ndarray:
        path.write_bytes(data)
        return read_upload(path, "photo.jpg")

    return {"path": via_path, "pil": via_pil, "upload": via_upload}


def assert_rgb_or_one_error(read: Callable[[bytes], np.ndarray], data: bytes) -> None:
    try:
        out = read(data)
    except ImageError as exc:
        message = str(exc)
        assert message and "\n" not in message and "Traceback" not in message, message
        return
    # Any other exception type (OSError, ValueError, IndexError, ...) fails the test.
    assert isinstance(out, np.ndarray) and out.dtype == np.uint8, out.dtype
    assert out.ndim == 3 and out.shape[2] == 3 and out.shape[0] >= 1 and out.shape[1] >= 1
    assert out.flags.c_contiguous


@pytest.fixture(scope="module")
def photos() -> list[bytes]:
    """A real JPEG, and the same photo (shrunk, to keep decoding fast) as PNG and WebP."""
    jpeg = shared_path("data", "images", "dog.jpg").read_bytes()
    small = Image.open(io.BytesIO(jpeg)).convert("RGB").resize((96, 64))
    out = [jpeg]
    for fmt in ("PNG", "WEBP"):
        buf = io.BytesIO()
        small.save(buf, fmt)
        out.append(buf.getvalue())
    return out


@pytest.mark.parametrize("how", ["path", "pil", "upload"])
@FAST
@given(data=st.binary(max_size=512))
@example(data=b"")
@example(data=b"\x89PNG\r\n\x1a\n")
@example(data=b"\xff\xd8\xff\xe0")
def test_random_bytes(tmp_path: Path, how: str, data: bytes) -> None:
    assert_rgb_or_one_error(readers(tmp_path)[how], data)


@pytest.mark.parametrize("how", ["path", "pil", "upload"])
@FAST
@given(which=st.integers(0, 2), cut=st.floats(0.0, 1.0))
@example(which=0, cut=0.5)  # a PIL image of a cut JPEG decodes in load_image: was OSError
def test_truncated_photos(
    tmp_path: Path, photos: list[bytes], how: str, which: int, cut: float
) -> None:
    data = photos[which]
    assert_rgb_or_one_error(readers(tmp_path)[how], data[: int(len(data) * cut)])


@pytest.mark.parametrize("how", ["path", "upload"])
@FAST
@given(
    which=st.integers(0, 2),
    flips=st.lists(st.tuples(st.floats(0.0, 1.0), st.integers(0, 255)), min_size=1, max_size=8),
)
def test_corrupted_photos(
    tmp_path: Path, photos: list[bytes], how: str, which: int, flips: list[tuple[float, int]]
) -> None:
    data = bytearray(photos[which])
    for where, value in flips:
        data[min(int(where * len(data)), len(data) - 1)] = value
    assert_rgb_or_one_error(readers(tmp_path)[how], bytes(data))


def _odd_image(mode: str, height: int, width: int, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    rgb = Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
    if mode.startswith("I;16"):
        gray = rng.integers(0, 65536, (height, width), dtype=np.uint16)
        return Image.fromarray(gray).convert(mode) if mode != "I;16" else Image.fromarray(gray)
    if mode == "I":
        # Signed 32-bit: values below 0 and above 65535 must saturate, not wrap around.
        values = rng.integers(-70000, 140000, (height, width), dtype=np.int32)
        return Image.fromarray(values)
    if mode == "F":
        return Image.fromarray(rng.random((height, width), dtype=np.float32))
    if mode == "La":
        return rgb.convert("LA").convert("La")
    return rgb.convert(mode)


@FAST
@given(
    mode=st.sampled_from(MODES),
    height=st.integers(1, 24),
    width=st.integers(1, 24),
    seed=st.integers(0, 2**16),
)
@example(mode="La", height=2, width=3, seed=0)  # Pillow converts La only to LA: was ValueError
@example(mode="I", height=2, width=3, seed=0)  # negative values used to wrap to white
def test_every_pil_mode(mode: str, height: int, width: int, seed: int) -> None:
    image = _odd_image(mode, height, width, seed)
    if mode == "F":
        with pytest.raises(ImageError, match="floating-point image"):
            load_image(image)
        return
    out = load_image(image)
    assert out.shape == (height, width, 3) and out.dtype == np.uint8
    if mode == "I":
        expected = (np.clip(np.asarray(image, dtype=np.int64), 0, 65535) + 128) // 257
        np.testing.assert_array_equal(out[:, :, 0], expected)


@pytest.mark.parametrize("how", ["path", "upload"])
@FAST
@given(mode=st.sampled_from(MODES), fmt=st.sampled_from(FORMATS), seed=st.integers(0, 99))
def test_every_mode_through_a_file(
    tmp_path: Path, how: str, mode: str, fmt: str, seed: int
) -> None:
    buf = io.BytesIO()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # Pillow 12: I mode as PNG
            _odd_image(mode, 9, 13, seed).save(buf, fmt)
    except (OSError, ValueError, KeyError):
        return  # this format cannot store this mode: nothing to read back
    assert_rgb_or_one_error(readers(tmp_path)[how], buf.getvalue())


def png_header(width: int, height: int, color_type: int = 2, bit_depth: int = 8) -> bytes:
    """A valid PNG signature and IHDR chunk claiming ``width x height``, with one tiny
    IDAT of compressed zeros: a decompression bomb's header without the bomb."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 4096, 9)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
@pytest.mark.parametrize("how", ["path", "pil", "upload"])
@FAST
@given(
    # Either small enough to decode quickly or past the 100-megapixel limit on both sides.
    size=st.tuples(st.integers(1, 1500), st.integers(1, 1500))
    | st.tuples(st.integers(10_001, 2**31 - 1), st.integers(10_001, 2**31 - 1)),
    color_type=st.sampled_from([0, 2, 3, 4, 6]),
)
@example(size=(100_000, 100_000), color_type=2)
def test_huge_dimensions(tmp_path: Path, how: str, size: tuple[int, int], color_type: int) -> None:
    width, height = size
    data = png_header(width, height, color_type)
    if width * height > 100_000_000:
        # Refused from the header, before any pixel memory is allocated.
        with pytest.raises(ImageError) as err:
            readers(tmp_path)[how](data)
        assert "\n" not in str(err.value)
        assert "pixels" in str(err.value) or "megapixels" in str(err.value)
    else:
        assert_rgb_or_one_error(readers(tmp_path)[how], data)


@FAST
@given(
    shape=st.lists(st.integers(0, 5), min_size=0, max_size=4).map(tuple),
    dtype=st.sampled_from(["uint8", "uint16", ">u2", "int32", "float32", "bool", "object"]),
    color=st.sampled_from(["RGB", "BGR"]),
)
def test_arrays(shape: tuple[int, ...], dtype: str, color: str) -> None:
    array = np.zeros(shape, dtype=dtype)
    try:
        out = load_image(array, color=color)  # type: ignore[arg-type]
    except SamedgeError as exc:
        assert isinstance(exc, ImageError) and "\n" not in str(exc)
        return
    assert out.dtype == np.uint8 and out.shape == (*shape[:2], 3)


@FAST
@given(name=st.text(min_size=1, max_size=300))
@example(name="a" * 5000)  # longer than a file name may be: was OSError (ENAMETOOLONG)
def test_paths_that_are_not_images(tmp_path: Path, name: str) -> None:
    # One path component (no "/"), so the name cannot reach outside tmp_path.
    with pytest.raises(ImageError) as err:
        load_image(str(tmp_path / name.replace("/", "_")))
    assert str(err.value)


def test_concurrent_reads_restore_pillows_bomb_limit(tmp_path: Path) -> None:
    """Each read used to save and restore Pillow's global limit alone; two overlapping
    reads could leave it off (None) for the whole process."""
    path = tmp_path / "small.png"
    Image.fromarray(np.zeros((8, 8, 3), dtype=np.uint8)).save(path)
    before = Image.MAX_IMAGE_PIXELS
    errors: list[BaseException] = []

    def read_many() -> None:
        try:
            for _ in range(200):
                load_image(path)
        except BaseException as exc:  # reported below, not lost in the thread
            errors.append(exc)

    threads = [threading.Thread(target=read_many) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors and not any(t.is_alive() for t in threads)
    assert before == Image.MAX_IMAGE_PIXELS
