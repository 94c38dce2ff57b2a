"""Point grids and crop boxes of automatic mask generation ("segment everything").

The layouts are the official generators' (``segment_anything.utils.amg``): a grid of
``n x n`` points at the centres of equal cells, and crop layer ``i`` cutting the image into
``2**i x 2**i`` overlapping crops. Everything here is plain NumPy.
"""

from __future__ import annotations

import math

import numpy as np


def point_grid(n_per_side: int) -> np.ndarray:
    """``(n*n, 2)`` float64 XY points in ``[0, 1]``, cell centres, x varying fastest."""
    if n_per_side < 1:
        raise ValueError(f"points per side must be >= 1, got {n_per_side}")
    half = 1.0 / (2 * n_per_side)
    side = np.linspace(half, 1.0 - half, n_per_side)
    xs, ys = np.meshgrid(side, side)
    return np.stack([xs.ravel(), ys.ravel()], axis=-1)


def layer_grids(n_per_side: int, n_layers: int, downscale: int) -> list[np.ndarray]:
    """One normalised grid per crop layer; layer ``i`` has ``int(n / downscale**i)`` per side."""
    return [point_grid(int(n_per_side / downscale**i)) for i in range(n_layers + 1)]


def crop_boxes(
    size: tuple[int, int], n_layers: int, overlap_ratio: float
) -> tuple[list[tuple[int, int, int, int]], list[int]]:
    """Crop boxes (XYXY pixels, exclusive end) and their layer indices.

    Layer 0 is the whole image; layer ``i >= 1`` has ``2**i`` crops per side that overlap by
    ``overlap_ratio * short_side * 2 / 2**i`` pixels. Crops are listed column by column
    (x outer, y inner), as the official generator lists them; a crop that would be empty
    (an image a few pixels thin) is left out.
    """
    height, width = size
    boxes: list[tuple[int, int, int, int]] = [(0, 0, width, height)]
    layers = [0]
    short = min(height, width)
    for layer in range(1, n_layers + 1):
        per_side = 2**layer
        overlap = int(overlap_ratio * short * (2 / per_side))
        crop_w = math.ceil((overlap * (per_side - 1) + width) / per_side)
        crop_h = math.ceil((overlap * (per_side - 1) + height) / per_side)
        x0s = [int((crop_w - overlap) * i) for i in range(per_side)]
        y0s = [int((crop_h - overlap) * i) for i in range(per_side)]
        for x0 in x0s:
            for y0 in y0s:
                if x0 >= width or y0 >= height:
                    continue  # only on images a few pixels thin (the official code fails)
                boxes.append((x0, y0, min(x0 + crop_w, width), min(y0 + crop_h, height)))
                layers.append(layer)
    return boxes, layers


def near_crop_edge(
    boxes: np.ndarray, crop: tuple[int, int, int, int], size: tuple[int, int], tol: float = 20.0
) -> np.ndarray:
    """Which XYXY boxes (original frame) touch an edge of ``crop`` that is not an image edge.

    A side counts as touching when it lies within ``tol`` pixels of the crop's side.
    Returns bool ``(N,)``.
    """
    crop_arr = np.asarray(crop, dtype=np.float64)[None]
    image = np.array([[0, 0, size[1], size[0]]], dtype=np.float64)
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    at_crop = np.abs(b - crop_arr) <= tol
    at_image = np.abs(b - image) <= tol
    return np.any(at_crop & ~at_image, axis=1)


def box_nms(boxes: np.ndarray, scores: np.ndarray, iou_thresh: float) -> np.ndarray:
    """Greedy non-maximum suppression, the semantics of ``torchvision.ops.nms``.

    Args:
        boxes: ``(N, 4)`` XYXY; areas are ``(x1 - x0) * (y1 - y0)`` (no +1).
        scores: ``(N,)``; higher first, ties in index order.
        iou_thresh: a box is dropped when its IoU with a kept box is strictly greater.

    Returns:
        int64 indices of the kept boxes, by decreasing score.
    """
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if len(b) == 0:
        return np.zeros(0, dtype=np.int64)
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    b = b[order]
    areas = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    alive = np.ones(len(b), dtype=bool)
    keep = []
    for i in range(len(b)):
        if not alive[i]:
            continue
        keep.append(i)
        rest = np.flatnonzero(alive[i + 1 :]) + i + 1
        if rest.size == 0:
            break
        w = np.clip(np.minimum(b[i, 2], b[rest, 2]) - np.maximum(b[i, 0], b[rest, 0]), 0, None)
        h = np.clip(np.minimum(b[i, 3], b[rest, 3]) - np.maximum(b[i, 1], b[rest, 1]), 0, None)
        inter = w * h
        with np.errstate(divide="ignore", invalid="ignore"):
            iou = inter / (areas[i] + areas[rest] - inter)
        alive[rest[iou > iou_thresh]] = False
    return order[np.asarray(keep, dtype=np.int64)]


def mask_boxes(masks: np.ndarray) -> np.ndarray:
    """``(N, 4)`` int64 XYXY boxes of bool ``(N, H, W)`` masks, inclusive max corner.

    ``x1``/``y1`` are the last column/row of the mask (the official generators' convention);
    an empty mask gets ``[0, 0, 0, 0]``.
    """
    n = masks.shape[0]
    out = np.zeros((n, 4), dtype=np.int64)
    for i in range(n):
        rows = np.flatnonzero(masks[i].any(axis=1))
        if rows.size == 0:
            continue
        cols = np.flatnonzero(masks[i].any(axis=0))
        out[i] = (cols[0], rows[0], cols[-1], rows[-1])
    return out
