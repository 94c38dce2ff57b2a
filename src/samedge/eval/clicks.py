"""Prompt points derived from masks: the centre point and the simulated user's next click.

Distances are Euclidean (OpenCV's exact ``DIST_MASK_PRECISE`` transform) to the nearest
pixel outside the region, with everything beyond the image border counting as outside, so a
region touching the border has its farthest point away from the border too. When several
pixels share the largest distance (a plateau, e.g. along the middle of a rectangle), the one
nearest to their mean position is taken, then the first in row-major order.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class Click:
    """A simulated click: ``(x, y)`` pixel in the original image; ``positive`` = object."""

    x: int
    y: int
    positive: bool

    @property
    def label(self) -> int:
        return 1 if self.positive else 0


def distance_to_border(region: np.ndarray) -> np.ndarray:
    """float32 ``(H, W)``: each pixel of bool ``region`` to the nearest pixel outside it
    (the image border counts as outside); 0 outside the region."""
    padded = np.pad(region.astype(np.uint8), 1)
    dist = cv2.distanceTransform(padded, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    return dist[1:-1, 1:-1]


def _deepest(dist: np.ndarray) -> tuple[int, int]:
    ys, xs = np.nonzero(dist == dist.max())
    d2 = (xs - xs.mean()) ** 2 + (ys - ys.mean()) ** 2
    i = int(np.argmin(d2))
    return int(xs[i]), int(ys[i])


def center_point(mask: np.ndarray) -> tuple[int, int]:
    """``(x, y)`` of the mask pixel farthest from the mask's border (max distance transform).

    Raises:
        ValueError: empty mask.
    """
    if not mask.any():
        raise ValueError("center_point of an empty mask")
    return _deepest(distance_to_border(mask))


def error_regions(
    gt: np.ndarray, pred: np.ndarray, ignore: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """bool ``(H, W)`` false negatives (object missed) and false positives, outside ``ignore``."""
    valid = ~ignore if ignore is not None else True
    return gt & ~pred & valid, pred & ~gt & valid


def _largest_component(region: np.ndarray) -> tuple[int, np.ndarray | None]:
    if not region.any():
        return 0, None
    _, labels, stats, _ = cv2.connectedComponentsWithStats(region.astype(np.uint8), connectivity=8)
    areas = stats[1:, cv2.CC_STAT_AREA]
    best = int(np.argmax(areas)) + 1  # first of equal areas
    return int(areas[best - 1]), labels == best


def next_click(gt: np.ndarray, pred: np.ndarray, ignore: np.ndarray | None = None) -> Click | None:
    """The simulated user's next click, or ``None`` when there is no error left.

    The error pixels (outside ``ignore``) are split into 8-connected regions: missed object
    (``gt & ~pred``) and false positives (``pred & ~gt``). The click goes to the pixel of
    the largest region (by area; a missed region wins a tie) that is farthest from that
    region's border; it is positive in a missed region and negative in a false-positive one.

    Args:
        gt: bool ``(H, W)`` ground truth.
        pred: bool ``(H, W)`` current prediction (all False before the first click).
        ignore: bool ``(H, W)`` pixels that are neither object nor background, or ``None``.
    """
    if gt.shape != pred.shape or (ignore is not None and ignore.shape != gt.shape):
        raise ValueError(f"shapes differ: gt {gt.shape}, pred {pred.shape}")
    fn, fp = error_regions(gt, pred, ignore)
    fn_area, fn_region = _largest_component(fn)
    fp_area, fp_region = _largest_component(fp)
    if fn_region is None and fp_region is None:
        return None
    positive = fn_area >= fp_area
    region = fn_region if positive else fp_region
    assert region is not None
    x, y = _deepest(distance_to_border(region))
    return Click(x, y, positive)
