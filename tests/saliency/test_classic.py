"""Spectral residual against the paper's own MATLAB definition (Hou & Zhang, CVPR 2007)."""

from __future__ import annotations

import numpy as np
import pytest

from samedge.imageio import load_image
from samedge.saliency.classic import SpectralResidual, gaussian_kernel, spectral_residual_small
from tests.conftest import shared_path


def _matlab_reference(gray: np.ndarray) -> np.ndarray:
    """The paper's listing in plain NumPy, written independently of the implementation:
    3x3 average with replicated border, 10x10 Gaussian (sigma 2.5) correlated with a zero
    border and MATLAB's even-kernel anchor (1-based centre 5), then mat2gray."""
    f = np.fft.fft2(gray)
    amp = np.log(np.abs(f) + 1e-12)
    padded = np.pad(amp, 1, mode="edge")
    h, w = amp.shape
    avg = sum(padded[dy : dy + h, dx : dx + w] for dy in range(3) for dx in range(3)) / 9
    s = np.abs(np.fft.ifft2(np.exp(amp - avg + 1j * np.angle(f)))) ** 2
    r = np.arange(10) - 4.5
    k = np.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2 * 2.5**2))
    k /= k.sum()
    # Output (y, x) = sum_{i,j} k[i, j] * s[y + i - 4, x + j - 4], zero outside.
    z = np.pad(s, ((4, 5), (4, 5)))
    out = np.zeros_like(s)
    for i in range(10):
        for j in range(10):
            out += k[i, j] * z[i : i + h, j : j + w]
    return (out - out.min()) / (out.max() - out.min())


def test_gaussian_kernel_is_fspecial() -> None:
    k = gaussian_kernel()
    assert k.shape == (10, 10) and np.isclose(k.sum(), 1.0)
    assert np.allclose(k, k.T) and np.allclose(k, k[::-1, ::-1])
    # fspecial's two middle entries are the largest and equal (even size).
    assert k[4, 4] == k.max() == k[5, 5]


def test_matches_published_definition_on_a_photo() -> None:
    image = load_image(shared_path("data", "interactive", "GrabCut", "data_GT", "person1.jpg"))
    rng = np.random.default_rng(0)
    gray = image[::7, ::7].mean(axis=2)[:40, :64] / 255.0
    for g in (gray, rng.random((48, 64))):
        np.testing.assert_allclose(spectral_residual_small(g), _matlab_reference(g), atol=1e-9)


def test_anchor_matters() -> None:
    """The reference is sensitive to the Gaussian's anchor: a shifted kernel differs."""
    rng = np.random.default_rng(1)
    g = rng.random((40, 64))
    ref = _matlab_reference(g)
    assert np.abs(np.roll(ref, 1, axis=0) - spectral_residual_small(g)).max() > 1e-3


def test_map_contract_and_odd_object() -> None:
    """Full resolution float32 in [0, 1]; a lone patch on a regular texture is salient."""
    h, w = 300, 400
    yy, xx = np.mgrid[:h, :w]
    texture = 128 + 60 * np.sin(xx / 3.0) * np.sin(yy / 3.0)
    image = np.repeat(texture[..., None], 3, axis=2)
    image[200:240, 90:140] = (250, 30, 30)
    sal = SpectralResidual().saliency(image.astype(np.uint8))
    assert sal.shape == (h, w) and sal.dtype == np.float32
    assert sal.min() >= 0 and sal.max() <= 1
    assert sal[200:240, 90:140].mean() > 3 * sal[:100, 250:].mean()


def test_flat_image_has_no_saliency() -> None:
    sal = SpectralResidual().saliency(np.full((60, 80, 3), 77, np.uint8))
    assert sal.shape == (60, 80) and not sal.any()


def test_a_tall_thin_image_keeps_the_map_small(monkeypatch: pytest.MonkeyPatch) -> None:
    """The map is 64 pixels wide, so a 2 x 6000 image asked for a 64 x 192000 map (1.3 GB,
    10 s of FFTs; a web upload plus one Auto click stalled the server): its longest side is
    now at most MAX_SIDE, and a photo's map is as the method defines it."""
    from samedge.saliency import classic

    sizes: list[tuple[int, int]] = []
    real = classic.spectral_residual_small

    def spy(small: np.ndarray) -> np.ndarray:
        sizes.append(small.shape)
        return real(small)

    monkeypatch.setattr(classic, "spectral_residual_small", spy)
    image = np.random.default_rng(0).integers(0, 255, (6000, 2, 3), dtype=np.uint8)
    sal = SpectralResidual().saliency(image)
    assert sal.shape == (6000, 2) and sizes[-1] == (classic.MAX_SIDE, 1)
    SpectralResidual().saliency(image[:240, :].repeat(40, axis=1))  # 80 x 240: 4:1 or wider
    assert sizes[-1] == (192, 64)
