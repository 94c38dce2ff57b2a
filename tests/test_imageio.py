"""Image inputs: paths, PIL, arrays; grayscale, RGBA, 16-bit, EXIF rotation, bad files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from samedge.errors import ImageError, SamedgeError
from samedge.imageio import load_image


def _rgb(h: int = 30, w: int = 40) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_array_path_and_pil_agree(tmp_path: Path) -> None:
    rgb = _rgb()
    path = tmp_path / "a.png"
    Image.fromarray(rgb).save(path)
    for source in (rgb, path, str(path), Image.open(path)):
        out = load_image(source)
        assert out.dtype == np.uint8 and out.shape == (30, 40, 3)
        np.testing.assert_array_equal(out, rgb)


def test_bgr_arrays_are_flipped() -> None:
    rgb = _rgb()
    np.testing.assert_array_equal(load_image(rgb[:, :, ::-1], color="BGR"), rgb)


def test_grayscale_and_rgba(tmp_path: Path) -> None:
    gray = _rgb()[:, :, 0]
    Image.fromarray(gray).save(tmp_path / "g.png")
    out = load_image(tmp_path / "g.png")
    assert out.shape == (30, 40, 3)
    for c in range(3):
        np.testing.assert_array_equal(out[:, :, c], gray)
    rgba = np.dstack([_rgb(), np.full((30, 40), 7, np.uint8)])
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    np.testing.assert_array_equal(load_image(tmp_path / "a.png"), rgba[:, :, :3])


def test_16_bit_png_is_scaled_to_8_bit(tmp_path: Path) -> None:
    data = np.array([[0, 257, 65535], [128, 32896, 1000]], dtype=np.uint16)
    Image.fromarray(data).save(tmp_path / "d.png")
    out = load_image(tmp_path / "d.png")
    np.testing.assert_array_equal(out[:, :, 0], [[0, 1, 255], [0, 128, 4]])
    np.testing.assert_array_equal(load_image(data)[:, :, 1], out[:, :, 1])


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    rgb = np.zeros((20, 60, 3), np.uint8)
    rgb[:, :10] = 255  # white band on the left of the stored pixels
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    Image.fromarray(rgb).save(tmp_path / "r.jpg", exif=exif, quality=95)
    out = load_image(tmp_path / "r.jpg")
    assert out.shape == (60, 20, 3)  # displayed portrait
    assert out[:10].mean() > 200 and out[-10:].mean() < 50  # band now at the top


def test_bad_inputs_have_clear_messages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ImageError, match="image not found"):
        load_image(tmp_path / "missing.jpg")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ImageError, match="not an image"):
        load_image(tmp_path / "notes.txt")
    (tmp_path / "cut.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    with pytest.raises(ImageError):
        load_image(tmp_path / "cut.png")
    with pytest.raises(ImageError, match="dtype float64"):
        load_image(np.zeros((4, 4, 3)))
    with pytest.raises(ImageError, match="shape"):
        load_image(np.zeros((4, 4, 2), np.uint8))
    monkeypatch.setenv("SAMEDGE_MAX_PIXELS", "1000")
    Image.fromarray(_rgb()).save(tmp_path / "big.png")
    with pytest.raises(ImageError, match=r"megapixels.*SAMEDGE_MAX_PIXELS"):
        load_image(tmp_path / "big.png")
    monkeypatch.setenv("SAMEDGE_MAX_PIXELS", "1e9")  # written as a float: fine
    assert load_image(tmp_path / "big.png").shape == _rgb().shape
    for bad in ("lots", "0", "nan", "inf"):  # blamed the image ("invalid literal for int()")
        monkeypatch.setenv("SAMEDGE_MAX_PIXELS", bad)
        with pytest.raises(SamedgeError, match=f"SAMEDGE_MAX_PIXELS must be .* got '{bad}'"):
            load_image(tmp_path / "big.png")
