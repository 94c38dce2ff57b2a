"""A picture of "segment everything" results: one distinct colour per mask."""

from __future__ import annotations

import colorsys

import cv2
import numpy as np


def mask_colors(count: int) -> np.ndarray:
    """``(count, 3)`` uint8 RGB colours, well separated in hue (golden-ratio steps)."""
    out = np.zeros((count, 3), dtype=np.uint8)
    for i in range(count):
        hue = (i * 0.618033988749895) % 1.0
        sat = 0.65 + 0.35 * ((i // 7) % 2)
        val = 0.95 - 0.25 * ((i // 3) % 2)
        out[i] = np.round(np.array(colorsys.hsv_to_rgb(hue, sat, val)) * 255)
    return out


def everything_overlay(
    image: np.ndarray, masks: np.ndarray, alpha: float = 0.55, outline: bool = True
) -> np.ndarray:
    """The image with every mask filled in its own colour, largest first.

    Args:
        image: ``H x W x 3`` uint8 RGB.
        masks: bool ``(N, H, W)``.
        alpha: opacity of the fill.

    Returns:
        A new ``H x W x 3`` uint8 RGB image. Smaller masks are drawn over larger ones, so
        parts stay visible on top of whole objects.
    """
    out = image.astype(np.float32)
    if len(masks) == 0:
        return image.copy()
    order = np.argsort(-masks.reshape(len(masks), -1).sum(axis=1), kind="stable")
    colors = mask_colors(len(masks)).astype(np.float32)
    for rank, i in enumerate(order):
        m = masks[i]
        out[m] = out[m] * (1 - alpha) + colors[rank] * alpha
    out_u8 = np.clip(out + 0.5, 0, 255).astype(np.uint8)
    if outline:
        thickness = max(1, round(max(image.shape[:2]) / 600))
        for i in order:
            contours, _ = cv2.findContours(
                masks[i].astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE
            )
            cv2.drawContours(out_u8, contours, -1, (255, 255, 255), thickness)
    return out_u8
