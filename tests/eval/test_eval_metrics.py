"""IoU with an ignore region, size buckets, NoC and fidelity statistics."""

from __future__ import annotations

import math

import numpy as np
import pytest

from samedge.eval.metrics import (
    embedding_error,
    embedding_error_stats,
    fidelity_stats,
    iou,
    mean_noc,
    number_of_clicks,
    size_bucket,
)


def test_iou_excludes_ignored_pixels() -> None:
    gt = np.zeros((4, 4), bool)
    gt[:2] = True
    pred = gt.copy()
    pred[2, 0] = True
    assert iou(pred, gt) == pytest.approx(8 / 9)
    ignore = np.zeros_like(gt)
    ignore[2, 0] = True
    assert iou(pred, gt, ignore) == 1.0
    assert iou(np.zeros_like(gt), gt) == 0.0
    assert iou(np.zeros_like(gt), np.zeros_like(gt)) == 1.0
    with pytest.raises(ValueError, match="shapes differ"):
        iou(gt, gt[:2])


def test_coco_size_buckets() -> None:
    assert [size_bucket(a) for a in (0, 1023, 1024, 9215, 9216)] == [
        "small", "small", "medium", "medium", "large"
    ]  # fmt: skip


def test_noc_and_failures() -> None:
    ious = [0.5, 0.86, 0.89, 0.91]
    assert number_of_clicks(ious, 0.85, 20) == 2
    assert number_of_clicks(ious, 0.90, 20) == 4
    assert number_of_clicks(ious, 0.90, 3) is None
    assert mean_noc([2, None], 20) == 11.0
    assert math.isnan(mean_noc([], 20))


def test_fidelity_stats() -> None:
    stats = fidelity_stats([1.0] * 97 + [0.95, 0.5, 0.0])
    assert stats["prompts"] == 100 and stats["min_iou"] == 0.0
    assert stats["mean_iou"] == pytest.approx((97 + 1.45) / 100)
    assert stats["share_above_0.99"] == 0.97 and stats["share_above_0.9"] == 0.98
    assert stats["p1_iou"] == pytest.approx(np.percentile([1.0] * 97 + [0.95, 0.5, 0.0], 1))
    assert fidelity_stats([]) == {"prompts": 0}


def test_embedding_error_is_relative_l2_of_the_image_embeddings() -> None:
    from types import SimpleNamespace

    reference = SimpleNamespace(image_embeddings=np.full((1, 4, 2, 2), 2.0, np.float32))
    ours = SimpleNamespace(image_embeddings=reference.image_embeddings * np.float32(1.1))
    assert embedding_error(ours, reference) == pytest.approx(0.1, rel=1e-6)
    assert embedding_error(reference, reference) == 0.0
    # No embedding to compare (the official predictor keeps it), or another model's shape.
    assert embedding_error(ours, SimpleNamespace(image=np.zeros(3))) is None
    other = SimpleNamespace(image_embeddings=np.zeros((1, 4, 4, 4), np.float32))
    assert embedding_error(ours, other) is None
    assert embedding_error_stats([0.1, 0.3]) == {
        "images": 2,
        "mean": pytest.approx(0.2),
        "max": pytest.approx(0.3),
    }
    assert embedding_error_stats([]) is None
