"""Frame and mask arithmetic of the official video predictor, in NumPy, Pillow and OpenCV.

* :func:`preprocess_frame`: a frame as ``SAM2VideoPredictor`` loads a JPEG folder: Pillow's
  default (bicubic) resize of the uint8 frame to 1024 x 1024, ``/ 255`` and the ImageNet
  normalisation. (The image predictor filters differently, antialiased bilinear on floats;
  the video predictor's MP4 path resizes with decord. samedge uses the JPEG folder's rule
  for every frame source, so a video gives what its frames extracted to JPEG would, up to
  the JPEG coding.)
* :func:`resize_matrix`: PyTorch's antialiased bilinear ``F.interpolate`` along one axis
  as a matrix (weights computed as ``upsample_bilinear2d_aa`` computes them), with which a
  mask prompt is resized to 1024 x 1024 and its logits to 256 x 256
  (``add_new_mask``, ``_use_mask_as_output``).
* :func:`fill_holes`: ``fill_holes_in_mask_scores``: background regions of a 256 x 256
  logit map up to ``max_area`` pixels (8-connected, as the official CUDA kernel labels
  them) become foreground with logit 0.1.
* :func:`upscale`: low-res logits to the frame's size, bilinear without antialiasing
  (``_get_orig_video_res_output``).
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np
from PIL import Image

from ..specs import ModelSpec

#: Logits the official predictor gives a mask prompt's pixels (``_use_mask_as_output``).
MASK_OUT_SCALE, MASK_OUT_BIAS = 20.0, -10.0
#: Logit of a filled hole (``fill_holes_in_mask_scores``).
HOLE_LOGIT = 0.1


def preprocess_frame(frame: np.ndarray, spec: ModelSpec) -> np.ndarray:
    """Encoder input ``(1, 3, S, S)`` float32 for an ``H x W x 3`` uint8 RGB frame, as the
    official video predictor prepares a JPEG frame (``_load_img_as_tensor``)."""
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"expected an H x W x 3 uint8 RGB frame, got {frame.dtype} {frame.shape}")
    side = spec.image_size
    resized = np.asarray(Image.fromarray(frame).resize((side, side)))  # Pillow's BICUBIC
    out = np.empty((1, 3, side, side), dtype=np.float32)
    mean = np.asarray(spec.pixel_mean, dtype=np.float32)
    std = np.asarray(spec.pixel_std, dtype=np.float32)
    for c in range(3):
        # The official divides the uint8 array by 255.0 in float64, then stores float32.
        channel = (resized[:, :, c] / 255.0).astype(np.float32)
        np.subtract(channel, mean[c], out=out[0, c])
        out[0, c] /= std[c]
    return out


@lru_cache(maxsize=16)
def resize_matrix(size_in: int, size_out: int) -> np.ndarray:
    """``(size_out, size_in)`` float32: antialiased bilinear resampling along one axis, as
    ``F.interpolate(..., mode="bilinear", align_corners=False, antialias=True)``."""
    scale = size_in / size_out
    support = scale if scale >= 1.0 else 1.0
    invscale = 1.0 / scale if scale >= 1.0 else 1.0
    out = np.zeros((size_out, size_in), dtype=np.float64)
    for i in range(size_out):
        center = scale * (i + 0.5)
        lo = max(int(center - support + 0.5), 0)
        hi = min(int(center + support + 0.5), size_in)
        taps = np.arange(lo, hi)
        w = np.clip(1.0 - np.abs((taps - center + 0.5) * invscale), 0.0, None)
        total = w.sum()
        if total > 0:
            out[i, lo:hi] = w / total
    out.flags.writeable = False
    return out.astype(np.float32)


def resize_aa(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """A 2-D float map resampled to ``height x width`` (:func:`resize_matrix`, width
    first, as PyTorch's separable passes)."""
    rows = resize_matrix(image.shape[0], height)
    cols = resize_matrix(image.shape[1], width)
    return rows @ (np.asarray(image, dtype=np.float32) @ cols.T)


def mask_prompt(mask: np.ndarray, side: int, low_res: int) -> tuple[np.ndarray, np.ndarray]:
    """A mask prompt as the official predictor takes it: the ``side x side`` binary mask
    (``add_new_mask``: resized, ``>= 0.5``) and its ``low_res x low_res`` output logits
    (``_use_mask_as_output``: ``20 m - 10`` resized).

    Args:
        mask: ``H x W`` bool (or 0/1) at the frame's size.

    Returns:
        ``(full, logits)``: float32 ``(side, side)`` of 0/1 and ``(low_res, low_res)``.
    """
    m = np.asarray(mask).astype(np.float32)
    if m.shape != (side, side):
        m = (resize_aa(m, side, side) >= 0.5).astype(np.float32)
    logits = resize_aa(m * np.float32(MASK_OUT_SCALE) + np.float32(MASK_OUT_BIAS), low_res, low_res)
    return m, logits.astype(np.float32)


def fill_holes(logits: np.ndarray, max_area: int) -> np.ndarray:
    """``logits`` (2-D) with each 8-connected region of ``logits <= 0`` of at most
    ``max_area`` pixels set to :data:`HOLE_LOGIT` (a copy; ``logits`` itself where none)."""
    if max_area <= 0:
        return logits
    background = (logits <= 0).astype(np.uint8)
    _, labels, stats, _ = cv2.connectedComponentsWithStats(background, connectivity=8)
    small = np.flatnonzero(stats[:, cv2.CC_STAT_AREA] <= max_area)
    small = small[small > 0]  # label 0 is the foreground
    if small.size == 0:
        return logits
    out = np.array(logits, dtype=np.float32, copy=True)
    out[np.isin(labels, small)] = np.float32(HOLE_LOGIT)
    return out


def upscale(logits: np.ndarray, height: int, width: int) -> np.ndarray:
    """``(..., h, w)`` logits at ``height x width``, bilinear (``align_corners=False``)."""
    flat = np.ascontiguousarray(logits, dtype=np.float32).reshape(-1, *logits.shape[-2:])
    out = np.empty((flat.shape[0], height, width), dtype=np.float32)
    for i, plane in enumerate(flat):
        cv2.resize(plane, (width, height), dst=out[i], interpolation=cv2.INTER_LINEAR)
    return out.reshape(*logits.shape[:-2], height, width)
