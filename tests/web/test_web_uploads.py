"""Upload validation: real images pass; oversized files and non-images get one clear line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from samedge.errors import ImageError
from samedge.web.uploads import display_name, read_upload, safe_stem


def _png(path: Path, width: int, height: int, mode: str = "RGB") -> Path:
    Image.new(mode, (width, height), color=0).save(path, format="PNG")
    return path


def test_a_real_photo_is_decoded_as_rgb(tmp_path: Path) -> None:
    path = _png(tmp_path / "upload", 64, 48, "RGBA")  # servers store uploads under any name
    pixels = read_upload(path, "holiday.png")
    assert pixels.shape == (48, 64, 3) and pixels.dtype == np.uint8


def test_a_non_image_is_rejected_by_name_without_the_server_path(tmp_path: Path) -> None:
    path = tmp_path / "secret-server-dir" / "x.bin"
    path.parent.mkdir()
    path.write_text("name,score\nalice,3\n")
    with pytest.raises(ImageError) as err:
        read_upload(path, "C:\\Users\\me\\scores.csv")
    message = str(err.value)
    assert message == "scores.csv is not an image; upload a JPEG, PNG, WebP, BMP or TIFF file"
    assert "secret-server-dir" not in message


def test_an_oversized_file_is_rejected_before_decoding(tmp_path: Path) -> None:
    path = tmp_path / "big.bin"
    path.write_bytes(
        b"\0" * (5 << 19)
    )  # 2.5 MB of 2**20 bytes  # not even an image: the size check comes first
    with pytest.raises(
        ImageError,
        match=r"^big\.jpg is 2\.5 MB, more than this server's "
        r"upload limit of 2 MB; upload a smaller image$",
    ):
        read_upload(path, "big.jpg", max_bytes=2 << 20)


def test_too_many_pixels_is_rejected_from_the_header(tmp_path: Path) -> None:
    path = _png(tmp_path / "wide.png", 4000, 3000)  # compresses to a few KB
    assert path.stat().st_size < 200_000
    with pytest.raises(
        ImageError,
        match=r"wide\.png is 4000x3000 \(12 megapixels\), more than "
        r"this server's limit of 10 megapixels; downscale it",
    ):
        read_upload(path, "wide.png", max_pixels=10_000_000)


def test_a_truncated_image_and_an_empty_file_get_clear_messages(tmp_path: Path) -> None:
    good = tmp_path / "photo.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (200, 200, 3), np.uint8)).save(
        good, quality=90
    )
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(good.read_bytes()[:2000])
    with pytest.raises(ImageError, match=r"^cut\.jpg is not a readable image \(.*\); upload a"):
        read_upload(cut, "cut.jpg")
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(ImageError, match=r"^empty\.png is empty"):
        read_upload(empty, "empty.png")


def test_names_from_the_browser_are_reduced_to_a_safe_base_name() -> None:
    assert display_name("../../etc/passwd") == "passwd"
    assert display_name(None) == "the upload"
    assert safe_stem("../../my photo (1).JPG") == "my_photo_1"
    assert safe_stem("....") == "image"
    assert len(safe_stem("x" * 500 + ".png")) == 40
