"""Mask encodings and measurements shared by every output format.

COCO RLE here is byte-for-byte what ``pycocotools.mask.encode`` produces: run lengths over
the mask in column-major (Fortran) order, starting with a run of zeros, compressed into
pycocotools' ASCII string format.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def _runs(mask: np.ndarray) -> np.ndarray:
    flat = np.asarray(mask, dtype=bool).ravel(order="F")
    if flat.size == 0:
        return np.zeros(1, dtype=np.int64)  # pycocotools: one run of no zeros, counts "0"
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    bounds = np.concatenate(([0], change, [flat.size]))
    runs = np.diff(bounds)
    return np.concatenate(([0], runs)) if flat[0] else runs


def _compress(counts: np.ndarray) -> str:
    out = bytearray()
    for i, value in enumerate(counts.tolist()):
        x = value - counts[i - 2] if i > 2 else value
        more = True
        while more:
            c = x & 0x1F
            x >>= 5
            more = (x != -1) if (c & 0x10) else (x != 0)
            if more:
                c |= 0x20
            out.append(c + 48)
    return out.decode("ascii")


def _decompress(text: str) -> list[int]:
    counts: list[int] = []
    data = text.encode("ascii")
    pos = 0
    while pos < len(data):
        x = 0
        k = 0
        more = True
        while more:
            if pos == len(data):
                raise ValueError("RLE counts string ends inside a number (truncated)")
            c = data[pos] - 48
            if not 0 <= c < 64:
                raise ValueError(f"RLE counts string has {chr(data[pos])!r}, outside '0'..'o'")
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            pos += 1
            k += 1
            if not more and (c & 0x10):
                x |= -1 << (5 * k)
        if len(counts) > 2:
            x += counts[-2]
        counts.append(x)
    return counts


def rle_encode(mask: np.ndarray) -> dict[str, Any]:
    """COCO compressed RLE of a 2-D bool mask: ``{"size": [H, W], "counts": str}``."""
    if mask.ndim != 2:
        raise ValueError(f"rle_encode takes one H x W mask, got shape {mask.shape}")
    return {"size": [int(mask.shape[0]), int(mask.shape[1])], "counts": _compress(_runs(mask))}


def rle_decode(rle: dict[str, Any]) -> np.ndarray:
    """Bool ``H x W`` mask from a COCO RLE (compressed string or uncompressed list).

    Raises:
        ValueError: ``rle`` is not a well-formed RLE of its ``size`` (one line saying why).
    """
    try:
        height, width = (int(v) for v in rle["size"])
        counts = rle["counts"]
        if isinstance(counts, (bytes, str)):
            counts = _decompress(counts.decode() if isinstance(counts, bytes) else counts)
        runs = np.asarray(counts, dtype=np.int64)
    except (KeyError, TypeError, ValueError, OverflowError) as exc:
        raise ValueError(f"not a COCO RLE {{'size': [H, W], 'counts': ...}}: {exc}") from None
    if height < 0 or width < 0 or runs.ndim != 1 or np.any(runs < 0):
        raise ValueError("RLE size and counts must be non-negative, counts one list of runs")
    # Checked before np.repeat so a corrupt run length cannot allocate gigabytes (and each
    # run is at most H * W, so the int64 sum cannot wrap).
    if np.any(runs > height * width) or int(runs.sum()) != height * width:
        raise ValueError(f"RLE covers {int(sum(runs.tolist()))} pixels, expected {height * width}")
    values = np.zeros(len(runs), dtype=bool)
    values[1::2] = True
    return np.repeat(values, runs).reshape((height, width), order="F")


def mask_area(mask: np.ndarray) -> int:
    return int(np.count_nonzero(mask))


def mask_to_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    """Tight XYWH box of a bool mask (COCO convention, pixel units); zeros when empty."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return (0, 0, 0, 0)
    cols = np.flatnonzero(mask.any(axis=0))
    return (int(cols[0]), int(rows[0]), int(cols[-1] - cols[0] + 1), int(rows[-1] - rows[0] + 1))


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two bool masks of the same shape; two empty masks have IoU 1."""
    union = np.count_nonzero(a | b)
    return 1.0 if union == 0 else np.count_nonzero(a & b) / union


def colour_max(pixels: np.ndarray) -> np.ndarray:
    """``(H, W)``: the largest colour channel of a mask image's ``(H, W, C)`` pixels, its
    alpha channel ignored (grey + alpha: the grey; RGB(A): R, G, B), so that an editor's
    mask on an opaque black background is not the whole image. ``(H, W)`` as it is."""
    if pixels.ndim != 3:
        return pixels
    return pixels[:, :, : 1 if pixels.shape[2] == 2 else 3].max(axis=2)
