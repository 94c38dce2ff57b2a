"""Plane geometry of gaze rays and boxes, computed on box edges (no rasterising).

Coordinates are pixels (x right, y down); boxes are XYXY.
"""

from __future__ import annotations

import numpy as np


def ray_box_intersections(
    origin: np.ndarray, direction: np.ndarray, boxes: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Where the ray ``origin + t * direction`` (``t >= 0``) crosses each box.

    Slab method on the box edges: a ray parallel to an edge crosses the box only if its
    origin lies between that edge pair; a ray starting inside a box crosses it (entry at
    ``t = 0``); a box behind the origin (``t < 0`` only) is not crossed. Touching an edge
    or a corner counts as crossing.

    Args:
        origin: ``(2,)`` XY.
        direction: ``(2,)`` XY, any length (distances ``t`` are in its units).
        boxes: ``(N, 4)`` XYXY.

    Returns:
        ``hit`` bool ``(N,)``, ``t_enter`` and ``t_exit`` float ``(N,)`` (``inf`` when missed).
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    o = np.asarray(origin, dtype=np.float64).reshape(2)
    d = np.asarray(direction, dtype=np.float64).reshape(2)
    t_lo = np.zeros(len(boxes))
    t_hi = np.full(len(boxes), np.inf)
    inside_all = np.ones(len(boxes), dtype=bool)
    for axis in (0, 1):
        lo, hi = boxes[:, axis], boxes[:, axis + 2]
        if d[axis] == 0.0:
            inside_all &= (o[axis] >= lo) & (o[axis] <= hi)
            continue
        t1 = (lo - o[axis]) / d[axis]
        t2 = (hi - o[axis]) / d[axis]
        t_lo = np.maximum(t_lo, np.minimum(t1, t2))
        t_hi = np.minimum(t_hi, np.maximum(t1, t2))
    hit = inside_all & (t_hi >= t_lo)
    t_enter = np.where(hit, t_lo, np.inf)
    t_exit = np.where(hit, t_hi, np.inf)
    return hit, t_enter, t_exit


def contains(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """Whether each box of ``outer`` ``(N, 4)`` contains the whole box ``inner`` ``(4,)``."""
    outer = np.asarray(outer, dtype=np.float64).reshape(-1, 4)
    x0, y0, x1, y1 = np.asarray(inner, dtype=np.float64).reshape(4)
    return (outer[:, 0] <= x0) & (outer[:, 1] <= y0) & (outer[:, 2] >= x1) & (outer[:, 3] >= y1)


def clip_boxes(boxes: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Boxes ``(N, 4)`` clipped to an image of ``size = (H, W)``: x in [0, W], y in [0, H]."""
    height, width = size
    out = np.asarray(boxes, dtype=np.float64).reshape(-1, 4).copy()
    out[:, 0::2] = np.clip(out[:, 0::2], 0, width)
    out[:, 1::2] = np.clip(out[:, 1::2], 0, height)
    return out


def box_area(boxes: np.ndarray) -> np.ndarray:
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)


def ray_exit_distance(origin: np.ndarray, direction: np.ndarray, size: tuple[int, int]) -> float:
    """Distance ``t`` at which the ray leaves an image of ``size = (H, W)`` (0 if it starts out)."""
    height, width = size
    hit, _, t_exit = ray_box_intersections(
        origin, direction, np.array([[0.0, 0.0, float(width), float(height)]])
    )
    return float(t_exit[0]) if hit[0] and np.isfinite(t_exit[0]) else 0.0


def points_along_ray(
    origin: np.ndarray,
    direction: np.ndarray,
    size: tuple[int, int],
    count: int,
    start: float = 0.0,
) -> np.ndarray:
    """``count`` points evenly spaced on the ray between distance ``start`` and the image edge.

    Args:
        origin: ``(2,)`` XY; direction: ``(2,)`` unit XY.
        size: ``(H, W)`` of the image.
        start: distance from the origin of the first point (e.g. past the face).

    Returns:
        float ``(P, 2)`` XY points inside the image, ``P <= count`` (empty when the ray has
        no length inside the image past ``start``).
    """
    end = ray_exit_distance(origin, direction, size)
    if count < 1 or end <= start or not np.any(direction):
        return np.zeros((0, 2))
    # Points at the centres of ``count`` equal segments, never on the image border.
    ts = start + (np.arange(count) + 0.5) * (end - start) / count
    pts = np.asarray(origin, dtype=np.float64)[None] + ts[:, None] * np.asarray(direction)[None]
    height, width = size
    pts[:, 0] = np.clip(pts[:, 0], 0, width)
    pts[:, 1] = np.clip(pts[:, 1], 0, height)
    return pts


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Greedy non-maximum suppression; returns kept indices, highest score first."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    areas = box_area(boxes)
    keep: list[int] = []
    while order.size:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        xx0 = np.maximum(boxes[i, 0], boxes[rest, 0])
        yy0 = np.maximum(boxes[i, 1], boxes[rest, 1])
        xx1 = np.minimum(boxes[i, 2], boxes[rest, 2])
        yy1 = np.minimum(boxes[i, 3], boxes[rest, 3])
        inter = np.clip(xx1 - xx0, 0, None) * np.clip(yy1 - yy0, 0, None)
        iou = inter / np.maximum(areas[i] + areas[rest] - inter, 1e-9)
        order = rest[iou <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)


def letterbox(image: np.ndarray, size: tuple[int, int], pad_value: int) -> tuple[np.ndarray, float]:
    """Resize ``image`` keeping its aspect ratio into the top-left of a ``size = (h, w)`` canvas.

    Returns:
        The ``h x w x C`` canvas (same dtype) and the scale applied (canvas px per image px).
    """
    import cv2

    h, w = size
    scale = min(h / image.shape[0], w / image.shape[1])
    nh, nw = max(1, round(image.shape[0] * scale)), max(1, round(image.shape[1] * scale))
    canvas = np.full((h, w, image.shape[2]), pad_value, dtype=image.dtype)
    canvas[:nh, :nw] = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR)
    return canvas, scale
