"""Measures: IoU with an ignore region, COCO size buckets, NoC, summary statistics."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: COCO's object size buckets by area in pixels: small < 32², medium < 96², large.
SMALL_AREA = 32**2
MEDIUM_AREA = 96**2
SIZE_BUCKETS = ("small", "medium", "large")


def iou(pred: np.ndarray, gt: np.ndarray, ignore: np.ndarray | None = None) -> float:
    """Jaccard index of two bool ``(H, W)`` masks over the pixels outside ``ignore``.

    Two masks that are both empty there have IoU 1.
    """
    if pred.shape != gt.shape:
        raise ValueError(f"mask shapes differ: {pred.shape} vs {gt.shape}")
    if ignore is not None:
        valid = ~ignore
        pred, gt = pred & valid, gt & valid
    union = np.count_nonzero(pred | gt)
    return 1.0 if union == 0 else float(np.count_nonzero(pred & gt) / union)


def size_bucket(area: int) -> str:
    """``"small"``, ``"medium"`` or ``"large"`` for an object of ``area`` pixels (COCO)."""
    return "small" if area < SMALL_AREA else "medium" if area < MEDIUM_AREA else "large"


def number_of_clicks(ious: Sequence[float], threshold: float, max_clicks: int) -> int | None:
    """The first click count (1-based) whose IoU reaches ``threshold``, or ``None`` if none
    of the first ``max_clicks`` does (a failure)."""
    for k, value in enumerate(ious[:max_clicks], start=1):
        if value >= threshold:
            return k
    return None


def mean_noc(nocs: Sequence[int | None], max_clicks: int) -> float:
    """Mean NoC with failures counted as ``max_clicks`` (the standard convention)."""
    if not nocs:
        return float("nan")
    return float(np.mean([max_clicks if n is None else n for n in nocs]))


def fidelity_stats(ious: Sequence[float]) -> dict[str, float | int]:
    """Agreement of two models over prompts: mean, 1st percentile, minimum, share above
    0.9 / 0.95 / 0.99 (of the per-prompt IoU between their masks)."""
    values = np.asarray(ious, dtype=np.float64)
    if values.size == 0:
        return {"prompts": 0}
    return {
        "prompts": int(values.size),
        "mean_iou": float(values.mean()),
        "p1_iou": float(np.percentile(values, 1)),
        "min_iou": float(values.min()),
        "share_above_0.9": float(np.mean(values > 0.9)),
        "share_above_0.95": float(np.mean(values > 0.95)),
        "share_above_0.99": float(np.mean(values > 0.99)),
    }


def embedding_error(ours: object, reference: object) -> float | None:
    """Relative L2 error ``|a - b| / |b|`` of two image embeddings (``image_embeddings`` of
    :class:`samedge.ImageEmbedding`), or ``None`` when either has none (the official
    PyTorch reference keeps its embedding inside its predictor) or their shapes differ."""
    a = getattr(ours, "image_embeddings", None)
    b = getattr(reference, "image_embeddings", None)
    if not isinstance(a, np.ndarray) or not isinstance(b, np.ndarray) or a.shape != b.shape:
        return None
    return relative_l2(a, b)


def relative_l2(ours: np.ndarray, reference: np.ndarray) -> float:
    """``|ours - reference| / |reference|`` in float64 (0 when both are zero)."""
    diff = np.linalg.norm((ours - reference).astype(np.float64))
    return float(diff / max(float(np.linalg.norm(reference.astype(np.float64))), 1e-12))


def embedding_error_stats(errors: Sequence[float]) -> dict[str, float | int] | None:
    """Mean and maximum of per-image :func:`embedding_error` values; ``None`` for none."""
    if not errors:
        return None
    values = np.asarray(errors, dtype=np.float64)
    return {"images": int(values.size), "mean": float(values.mean()), "max": float(values.max())}
