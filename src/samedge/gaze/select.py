"""Selection logic: which detections can be the gazed-at object, and which mask wins.

1. Drop boxes that contain the whole face box (they would segment the person themself).
2. Keep boxes the gaze ray crosses (on the box edges, see :mod:`.geometry`).
3. With a depth map, keep boxes whose pixels lie mostly in front of the eyes' depth
   (nearness >= eye nearness - margin).
4. After the batched decoder call, choose the mask that fills the largest share of its box,
   among masks whose predicted IoU reaches ``min_iou`` and (with depth) that contain enough
   in-front pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .geometry import box_area, contains, ray_box_intersections
from .types import Detections, Gaze


@dataclass(frozen=True)
class SelectionConfig:
    """Thresholds of the selection logic.

    Attributes:
        min_iou: minimum predicted IoU of a chosen mask.
        depth_margin: nearness margin (in the per-frame ``[0, 1]`` depth scale) below the
            eyes' nearness that still counts as "in front".
        depth_box_share: share of a box's pixels that must be in front to keep the box.
        depth_mask_share: share of a mask's pixels that must be in front to choose it.
    """

    min_iou: float = 0.5
    depth_margin: float = 0.05
    depth_box_share: float = 0.5
    depth_mask_share: float = 0.5


def eye_nearness(near: np.ndarray, origin: np.ndarray, radius: int = 3) -> float:
    """Median nearness in a ``(2 * radius + 1)``-pixel square around ``origin`` (XY)."""
    height, width = near.shape
    x = int(np.clip(round(float(origin[0])), 0, width - 1))
    y = int(np.clip(round(float(origin[1])), 0, height - 1))
    patch = near[max(0, y - radius) : y + radius + 1, max(0, x - radius) : x + radius + 1]
    return float(np.median(patch))


def in_front(near: np.ndarray, eye_near: float, margin: float) -> np.ndarray:
    """Bool ``H x W``: pixels at least as near as the eyes, less ``margin``."""
    return near >= eye_near - margin


def filter_candidates(
    detections: Detections,
    face_box: np.ndarray,
    gaze: Gaze,
    front: np.ndarray | None = None,
    config: SelectionConfig = SelectionConfig(),
) -> tuple[np.ndarray, dict[str, int]]:
    """Indices of the detections that can be the gazed-at object.

    Args:
        detections: all detections of the frame.
        face_box: ``(4,)`` XYXY of the face the gaze belongs to.
        gaze: the gaze ray (``origin``, ``direction``).
        front: optional bool ``H x W`` in-front map (see :func:`in_front`).

    Returns:
        ``kept`` int indices into ``detections`` (ray order: nearest entry first), and how
        many boxes each rule dropped (``self``, ``ray``, ``depth``).
    """
    dropped = {"self": 0, "ray": 0, "depth": 0}
    if len(detections) == 0:
        return np.zeros(0, dtype=np.int64), dropped
    boxes = detections.boxes
    not_self = ~contains(boxes, face_box)
    dropped["self"] = int(np.count_nonzero(~not_self))
    hit, t_enter, _ = ray_box_intersections(gaze.origin, gaze.direction, boxes)
    if not np.any(gaze.direction):
        hit[:] = False  # looking into the camera: the ray has no direction in the image
    dropped["ray"] = int(np.count_nonzero(not_self & ~hit))
    keep = not_self & hit
    if front is not None:
        for i in np.flatnonzero(keep):
            x0, y0, x1, y1 = (int(np.rint(v)) for v in boxes[i])
            region = front[max(0, y0) : max(0, y1), max(0, x0) : max(0, x1)]
            share = float(region.mean()) if region.size else 0.0
            if share < config.depth_box_share:
                keep[i] = False
                dropped["depth"] += 1
    kept = np.flatnonzero(keep)
    return kept[np.argsort(t_enter[kept], kind="stable")], dropped


def box_fill(masks: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Share of each box ``(B, 4)`` covered by its mask ``(B, H, W)``, in ``[0, 1]``."""
    fills = np.zeros(len(boxes))
    areas = box_area(boxes)
    for i, (mask, box) in enumerate(zip(masks, boxes, strict=True)):
        x0, y0 = int(np.floor(box[0])), int(np.floor(box[1]))
        x1, y1 = int(np.ceil(box[2])), int(np.ceil(box[3]))
        inside = np.count_nonzero(mask[max(0, y0) : y1, max(0, x0) : x1])
        fills[i] = min(1.0, inside / areas[i]) if areas[i] > 0 else 0.0
    return fills


def choose_mask(
    masks: np.ndarray,
    iou_pred: np.ndarray,
    boxes: np.ndarray,
    front: np.ndarray | None = None,
    config: SelectionConfig = SelectionConfig(),
) -> tuple[int | None, np.ndarray, str]:
    """The mask that fills the largest share of its box among acceptable ones.

    Args:
        masks: bool ``(B, H, W)``, one per prompt box.
        iou_pred: float ``(B,)`` predicted IoU.
        boxes: float ``(B, 4)`` the prompt boxes.
        front: optional bool ``H x W`` in-front map.

    Returns:
        ``(index or None, fill (B,), reason)``; ``reason`` says why nothing was chosen.
    """
    fills = box_fill(masks, boxes)
    ok = (np.asarray(iou_pred) >= config.min_iou) & np.array([m.any() for m in masks], bool)
    if not np.any(ok):
        return None, fills, f"no mask reached the minimum predicted IoU {config.min_iou:g}"
    if front is not None:
        for i in np.flatnonzero(ok):
            area = np.count_nonzero(masks[i])
            share = np.count_nonzero(masks[i] & front) / area if area else 0.0
            ok[i] = share >= config.depth_mask_share
        if not np.any(ok):
            return None, fills, "no mask lies in front of the eyes"
    candidates = np.flatnonzero(ok)
    return int(candidates[np.argmax(fills[candidates])]), fills, ""
