"""The weights-free saliency backend: spectral residual (Hou & Zhang, CVPR 2007).

Why this method, implemented here, rather than OpenCV contrib's ``cv2.saliency``: the
contrib module ships only in ``opencv-contrib-python-headless``, which replaces samedge's
``opencv-python-headless`` (both provide ``cv2``; installed together they overwrite each
other's files). Switching the dependency would change every user's ``cv2`` for one stage,
and any environment that already has the plain wheel (a common case) would break. The
published method is a few array operations on OpenCV core and NumPy, so samedge implements
it and tests it against the paper's own MATLAB definition (tests/saliency/test_classic.py).

The paper's definition, reproduced step by step by :func:`spectral_residual_small`::

    inImg = imresize(rgb2gray(img), 64 / width)          % 64 px wide, aspect kept
    A = log(abs(fft2(inImg)));  P = angle(fft2(inImg));
    R = A - imfilter(A, fspecial('average', 3), 'replicate');
    S = abs(ifft2(exp(R + i*P))).^2;
    S = mat2gray(imfilter(S, fspecial('gaussian', [10 10], 2.5)));   % zero border

The only departure is the down-sampling filter (OpenCV's area average instead of MATLAB's
anti-aliased bicubic). The 64-px map is then resized bilinearly to the image's resolution.
"""

from __future__ import annotations

import cv2
import numpy as np

WIDTH = 64
#: The map's longest side: the method's 64-pixel width holds up to 4:1 portrait images;
#: taller ones are scaled to 256 rows instead (a 2 x 6000 image asked for 192000 rows,
#: 1.3 GB and 10 s of FFTs).
MAX_SIDE = 4 * WIDTH
GAUSS_SIZE = 10
GAUSS_SIGMA = 2.5
_EPS = 1e-12


def gaussian_kernel(size: int = GAUSS_SIZE, sigma: float = GAUSS_SIGMA) -> np.ndarray:
    """MATLAB's ``fspecial('gaussian', [size size], sigma)``: float64, sums to 1."""
    r = np.arange(size, dtype=np.float64) - (size - 1) / 2
    g = np.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2 * sigma**2))
    return g / g.sum()


def spectral_residual_small(gray: np.ndarray) -> np.ndarray:
    """The spectral-residual map of an already down-sampled grey image.

    Args:
        gray: float ``(h, w)`` grey levels in [0, 1] (64 px wide in the paper).

    Returns:
        float64 ``(h, w)`` in [0, 1] (``mat2gray``: min-max scaled). An image with less
        than one 8-bit grey level of contrast has no spectrum beyond its mean (the log of
        zero amplitudes is undefined) and gets all zeros.
    """
    if gray.size == 0 or float(np.ptp(gray)) < 1.0 / 255:
        return np.zeros(gray.shape, dtype=np.float64)
    spectrum = np.fft.fft2(gray.astype(np.float64))
    log_amplitude = np.log(np.abs(spectrum) + _EPS)
    phase = np.angle(spectrum)
    average = cv2.blur(log_amplitude, (3, 3), borderType=cv2.BORDER_REPLICATE)
    residual = log_amplitude - average
    saliency = np.abs(np.fft.ifft2(np.exp(residual + 1j * phase))) ** 2
    # MATLAB's imfilter correlates with zero padding and, for an even kernel, anchors at
    # index size // 2 - 1 (1-based floor((size + 1) / 2)).
    anchor = (GAUSS_SIZE + 1) // 2 - 1
    smoothed = cv2.filter2D(
        saliency,
        cv2.CV_64F,
        gaussian_kernel(),
        anchor=(anchor, anchor),
        borderType=cv2.BORDER_CONSTANT,
    )
    low, high = float(smoothed.min()), float(smoothed.max())
    if high - low <= _EPS * max(1.0, abs(high)):
        return np.zeros_like(smoothed)
    return (smoothed - low) / (high - low)


class SpectralResidual:
    """:class:`samedge.saliency.SaliencyBackend` of the spectral-residual method (no
    weights, no network; about 2 ms per image)."""

    name = "classic"

    def saliency(self, image: np.ndarray) -> np.ndarray:
        """float32 ``(H, W)`` in [0, 1] for a uint8 ``(H, W, 3)`` RGB image."""
        height, width = image.shape[:2]
        gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float64) / 255.0
        small_w, small_h = WIDTH, max(1, round(height * WIDTH / width))
        if small_h > MAX_SIDE:  # a tall, thin image: its map would have ~64 x H/W rows
            small_w, small_h = max(1, round(width * MAX_SIDE / height)), MAX_SIDE
        small = cv2.resize(gray, (small_w, small_h), interpolation=cv2.INTER_AREA)
        sal = spectral_residual_small(small).astype(np.float32)
        full = cv2.resize(sal, (width, height), interpolation=cv2.INTER_LINEAR)
        return np.clip(full, 0.0, 1.0)
