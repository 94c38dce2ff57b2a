"""The five-click rule on maps whose answer is known."""

from __future__ import annotations

import numpy as np
import pytest

from samedge.errors import SamedgeError
from samedge.saliency import NoSalientObjectError, auto_prompt, five_clicks
from samedge.saliency.prompt import threshold_of


def _disc(h: int, w: int, cx: float, cy: float, r: float) -> np.ndarray:
    yy, xx = np.mgrid[:h, :w]
    return (xx - cx) ** 2 + (yy - cy) ** 2 <= r**2


def test_five_clicks_on_a_disc() -> None:
    sal = np.where(_disc(200, 300, 150, 100, 40), 0.9, 0.05).astype(np.float32)
    p = five_clicks(sal, backend="test")
    assert p.sections == ("blob", "top-left", "top-right", "bottom-left", "bottom-right")
    assert p.points.shape == (5, 2) and p.labels.tolist() == [1] * 5
    np.testing.assert_allclose(p.points[0], (150, 100), atol=0.01)
    # Quadrant centroids of a disc sit 4r/(3 pi) from the centre on each axis (+ the
    # half-pixel from assigning the dividing lines to the left/top sections).
    d = 4 * 40 / (3 * np.pi)
    for (x, y), sx, sy in zip(p.points[1:], (-1, 1, -1, 1), (-1, -1, 1, 1), strict=True):
        assert abs(x - (150 + sx * d)) < 1.0 and abs(y - (100 + sy * d)) < 1.0
    assert p.area == int(_disc(200, 300, 150, 100, 40).sum()) and p.backend == "test"
    assert all(p.blob[round(y), round(x)] for x, y in p.points)


def test_summed_saliency_picks_the_large_subject_over_a_bright_speck() -> None:
    sal = np.full((200, 300), 0.02, np.float32)
    sal[_disc(200, 300, 80, 100, 50)] = 0.7  # large, fairly salient
    sal[20:40, 250:270] = 1.0  # small, brightest (mean 1.0 beats 0.7)
    p = five_clicks(sal)
    assert p.blob[100, 80] and not p.blob[30, 260]


def test_minimum_area_drops_specks() -> None:
    sal = np.zeros((100, 100), np.float32)
    sal[10:13, 10:13] = 1.0  # 9 px < 0.5 % of 10,000 = 50 px
    with pytest.raises(NoSalientObjectError, match="no salient object") as err:
        five_clicks(sal)
    assert isinstance(err.value, SamedgeError) and "\n" not in str(err.value)
    assert five_clicks(sal, min_area=9).area == 9


def test_threshold_is_otsu_with_a_floor() -> None:
    sal = np.where(_disc(100, 100, 50, 50, 20), 0.8, 0.2).astype(np.float32)
    assert 0.2 <= threshold_of(sal) < 0.8
    dark = np.where(_disc(100, 100, 50, 50, 20), 0.2, 0.0).astype(np.float32)
    assert threshold_of(dark) == 0.25  # Otsu would split at ~0.1: the floor wins
    with pytest.raises(NoSalientObjectError):
        five_clicks(dark)


def test_ring_centre_moves_onto_the_blob() -> None:
    ring = _disc(200, 200, 100, 100, 60) & ~_disc(200, 200, 100, 100, 40)
    p = five_clicks(ring.astype(np.float32))
    assert all(p.blob[int(y), int(x)] for x, y in p.points)
    assert np.hypot(*(p.points[0] - 100)) >= 39  # not the hole's centre


def test_thin_blob_gets_fewer_clicks() -> None:
    sal = np.zeros((100, 200), np.float32)
    sal[50, 20:180] = 1.0
    p = five_clicks(sal, min_area=10)
    assert p.sections == ("blob", "top-left", "top-right") and len(p.points) == 3


def test_auto_prompt_on_an_image_and_no_blob() -> None:
    # A bright patch on a dark, slightly noisy background (a noise-free synthetic image
    # has exact spectral zeros, whose log the spectral residual cannot use).
    rng = np.random.default_rng(0)
    gray = np.full((240, 320), 40.0)
    gray[100:140, 180:220] = 230
    gray = np.clip(gray + rng.normal(0, 4, gray.shape), 0, 255).astype(np.uint8)
    p = auto_prompt(np.repeat(gray[..., None], 3, axis=2), "classic")
    assert p.backend == "classic" and p.saliency.shape == (240, 320)
    assert len(p.points) == 5 and p.blob[100:140, 180:220].all()
    x0, y0 = p.points.min(axis=0)
    x1, y1 = p.points.max(axis=0)
    assert x0 >= 170 and x1 <= 230 and y0 >= 90 and y1 <= 150
    with pytest.raises(NoSalientObjectError):
        auto_prompt(np.zeros((50, 50, 3), np.uint8))


def test_unknown_backend_is_one_line() -> None:
    with pytest.raises(SamedgeError, match="choose from classic, u2netp"):
        auto_prompt(np.zeros((8, 8, 3), np.uint8), "nope")
