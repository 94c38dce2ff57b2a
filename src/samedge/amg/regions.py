"""Removing small holes and islands from masks, as the official generators do.

* SAM (``SamAutomaticMaskGenerator``): after all other filtering, each final full-resolution
  mask loses holes and then islands smaller than ``min_area`` pixels (8-connectivity);
  :func:`remove_small_regions` is that step for one mask.
* SAM 2 (``SAM2AutomaticMaskGenerator``): the predictor fills holes and removes sprinkles of
  at most ``min_area`` pixels in the 256 x 256 low-resolution logits, before upscaling
  (:func:`fill_low_res`). The official code needs its compiled CUDA extension for this and
  skips the step, with a warning, where the extension is missing (e.g. CPU-only installs).
"""

from __future__ import annotations

import cv2
import numpy as np


def remove_small_regions(mask: np.ndarray, min_area: float, mode: str) -> tuple[np.ndarray, bool]:
    """Fill holes (``mode="holes"``) or drop islands (``"islands"``) below ``min_area`` pixels.

    Args:
        mask: bool ``(H, W)``.
        min_area: regions with fewer pixels than this change.
        mode: ``"holes"`` or ``"islands"``.

    Returns:
        ``(mask, changed)``: the new bool mask and whether anything changed. When every
        island is small, the largest one is kept.
    """
    if mode not in ("holes", "islands"):
        raise ValueError(f"mode must be 'holes' or 'islands', got {mode!r}")
    holes = mode == "holes"
    work = (mask != holes).astype(np.uint8)  # the regions whose small components change
    count, labels, stats, _ = cv2.connectedComponentsWithStats(work, connectivity=8)
    sizes = stats[1:, cv2.CC_STAT_AREA]
    small = np.flatnonzero(sizes < min_area) + 1
    if small.size == 0:
        return mask, False
    if holes:
        fill = np.concatenate(([0], small))
    else:
        fill = np.setdiff1d(np.arange(1, count), small)
        if fill.size == 0:
            fill = np.array([int(np.argmax(sizes)) + 1])
    lut = np.zeros(count, dtype=bool)
    lut[fill] = True
    return lut[labels], True


def fill_low_res(logits: np.ndarray, max_area: int, threshold: float) -> np.ndarray:
    """SAM 2's hole and sprinkle removal on low-resolution logits.

    Background components (``logit <= threshold``, 8-connectivity) of at most ``max_area``
    pixels are set to ``threshold + 10``; then foreground components of at most
    ``max_area`` pixels are set to ``threshold - 10``. Both sets of components are found in
    the input logits (the official code labels both before changing anything).

    Args:
        logits: float32 ``(N, h, w)``; not modified.

    Returns:
        float32 ``(N, h, w)``.
    """
    source = np.asarray(logits, dtype=np.float32)
    out = np.array(source, copy=True)
    for i in range(out.shape[0]):
        for background, value in ((True, threshold + 10.0), (False, threshold - 10.0)):
            binary = (source[i] <= threshold) if background else (source[i] > threshold)
            _, labels, stats, _ = cv2.connectedComponentsWithStats(
                binary.astype(np.uint8), connectivity=8
            )
            areas = stats[:, cv2.CC_STAT_AREA].copy()
            areas[0] = max_area + 1  # label 0 is the complement, never changed here
            small = (labels > 0) & (areas[labels] <= max_area)
            out[i][small] = value
    return out
