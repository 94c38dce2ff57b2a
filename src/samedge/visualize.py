"""Pictures a person can look at: masks, points and boxes drawn over the image."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

#: Distinct colours (RGB) cycled for successive masks.
PALETTE = np.array(
    [
        (30, 144, 255),
        (255, 99, 71),
        (50, 205, 50),
        (255, 215, 0),
        (186, 85, 211),
        (0, 206, 209),
        (255, 140, 0),
        (199, 21, 133),
        (124, 252, 0),
        (70, 130, 180),
        (244, 164, 96),
        (154, 205, 50),
    ],
    dtype=np.uint8,
)


def color_for(index: int) -> tuple[int, int, int]:
    r, g, b = PALETTE[index % len(PALETTE)]
    return int(r), int(g), int(b)


def overlay(
    image: np.ndarray,
    masks: Sequence[np.ndarray] | np.ndarray,
    points: np.ndarray | None = None,
    labels: np.ndarray | None = None,
    boxes: np.ndarray | None = None,
    alpha: float = 0.5,
    outline: bool = True,
    colors: Sequence[tuple[int, int, int]] | None = None,
) -> np.ndarray:
    """The image with each mask tinted in its own colour and outlined, plus prompts.

    Args:
        image: ``H x W x 3`` uint8 RGB.
        masks: bool masks ``H x W`` (a list, or an array ``M x H x W``).
        points: ``(N, 2)`` XY pixels; drawn green (label 1) or red (label 0) with a white rim.
        labels: ``(N,)`` point labels.
        boxes: ``(B, 4)`` XYXY boxes, drawn in the colour of the mask with the same index.
        alpha: opacity of the mask tint.
        colors: RGB colour of each mask (default ``color_for(i)`` for the ``i``-th), e.g.
            a tracked object's own colour whatever objects came before it.

    Returns:
        A new ``H x W x 3`` uint8 RGB image.
    """
    palette = [color_for(i) for i in range(len(masks))] if colors is None else list(colors)
    out = image.astype(np.float32)
    for i, mask in enumerate(masks):
        tint = np.array(palette[i], dtype=np.float32)
        out[mask] = out[mask] * (1 - alpha) + tint * alpha
    out_u8 = np.clip(out + 0.5, 0, 255).astype(np.uint8)
    thickness = max(1, round(max(image.shape[:2]) / 400))
    if outline:
        for i, mask in enumerate(masks):
            contours, _ = cv2.findContours(
                mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE
            )
            cv2.drawContours(out_u8, contours, -1, palette[i], thickness)
    if boxes is not None:
        for i, (x0, y0, x1, y1) in enumerate(np.asarray(boxes, dtype=np.float64).reshape(-1, 4)):
            cv2.rectangle(
                out_u8,
                (round(x0), round(y0)),
                (round(x1), round(y1)),
                palette[i] if i < len(palette) else color_for(i),
                thickness + 1,
            )
    if points is not None:
        pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        lbl = np.ones(len(pts)) if labels is None else np.asarray(labels).reshape(-1)
        radius = max(4, round(max(image.shape[:2]) / 120))
        for (x, y), label in zip(pts, lbl, strict=True):
            centre = (round(x), round(y))
            colour = (0, 200, 0) if label == 1 else (220, 0, 0)
            cv2.circle(out_u8, centre, radius + thickness, (255, 255, 255), -1, cv2.LINE_AA)
            cv2.circle(out_u8, centre, radius, colour, -1, cv2.LINE_AA)
    return out_u8
