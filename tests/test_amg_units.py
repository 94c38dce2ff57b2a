"""Pieces of automatic mask generation, checked against the official helpers where they exist.

The official helpers are imported after ``ensure_torchvision()``: torchvision's compiled
NMS cannot load here, so a pure-PyTorch NMS with torchvision's semantics stands in for it.
"""

from __future__ import annotations

import numpy as np
import pytest

from samedge.amg import (
    GeneratedMasks,
    box_nms,
    crop_boxes,
    encode_mask,
    fill_low_res,
    layer_grids,
    mask_boxes,
    point_grid,
    remove_small_regions,
)
from samedge.errors import SamedgeError
from samedge.maskutils import rle_decode

from .conftest import requires_export


@pytest.fixture(scope="module")
def official_amg():
    pytest.importorskip("torch")
    from samedge.export.torch_compat import ensure_torchvision

    ensure_torchvision()
    import segment_anything.utils.amg as amg

    return amg


@requires_export
@pytest.mark.parametrize("n, layers, factor", [(32, 0, 1), (16, 2, 2), (5, 1, 1)])
def test_point_grids_match_official(official_amg, n, layers, factor):
    ours = layer_grids(n, layers, factor)
    ref = official_amg.build_all_layer_point_grids(n, layers, factor)
    assert len(ours) == len(ref)
    for a, b in zip(ours, ref, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-12)


@requires_export
@pytest.mark.parametrize("size", [(534, 800), (1200, 1800), (1500, 2250), (900, 600)])
@pytest.mark.parametrize("layers", [0, 1, 2])
def test_crop_boxes_match_official(official_amg, size, layers):
    ours = crop_boxes(size, layers, 512 / 1500)
    ref = official_amg.generate_crop_boxes(size, layers, 512 / 1500)
    assert [list(b) for b in ours[0]] == ref[0]
    assert ours[1] == ref[1]


def test_crop_boxes_of_a_thin_image_are_never_empty():
    """A 1 x 600 image gave an empty second crop per column, which failed (as the official
    generator does); empty crops are left out, the rest stay as the official ones."""
    boxes, layers = crop_boxes((1, 600), 2, 512 / 1500)
    assert all(x1 > x0 and y1 > y0 for x0, y0, x1, y1 in boxes)
    assert layers == [0, 1, 1, 2, 2, 2, 2] and boxes[0] == (0, 0, 600, 1)


@requires_export
def test_box_nms_matches_torchvision_semantics(official_amg):
    import torch
    from torchvision.ops import batched_nms

    rng = np.random.default_rng(0)
    xy = rng.integers(0, 300, size=(200, 2))
    wh = rng.integers(0, 150, size=(200, 2))
    boxes = np.concatenate([xy, xy + wh], axis=1)
    boxes[:20] = boxes[20:40]  # exact duplicates
    scores = rng.random(200).astype(np.float32)
    scores[50:60] = scores[60:70]  # ties
    for thresh in (0.0, 0.3, 0.7, 1.0):
        ref = batched_nms(
            torch.as_tensor(boxes).float(),
            torch.as_tensor(scores),
            torch.zeros(len(boxes)),
            iou_threshold=thresh,
        ).numpy()
        np.testing.assert_array_equal(box_nms(boxes, scores, thresh), ref)


@requires_export
def test_mask_boxes_match_official(official_amg):
    import torch

    rng = np.random.default_rng(1)
    masks = np.zeros((5, 40, 60), dtype=bool)
    masks[0, 3:9, 10:50] = True
    masks[1, 0, 0] = True
    masks[2] = rng.random((40, 60)) > 0.9
    masks[4, 39, 59] = True  # masks[3] stays empty
    ref = official_amg.batched_mask_to_box(torch.as_tensor(masks)).numpy()
    np.testing.assert_array_equal(mask_boxes(masks), ref)


@requires_export
@pytest.mark.parametrize("mode", ["holes", "islands"])
def test_remove_small_regions_matches_official(official_amg, mode):
    rng = np.random.default_rng(2)
    for _ in range(5):
        mask = rng.random((60, 80)) > 0.55
        mask[10:40, 10:50] = True
        for area in (1, 5, 30, 10_000):
            ours, changed = remove_small_regions(mask, area, mode)
            ref, ref_changed = official_amg.remove_small_regions(mask, area, mode)
            assert changed == ref_changed
            np.testing.assert_array_equal(ours, ref)


@requires_export
def test_uncompressed_rle_matches_official(official_amg):
    import torch

    rng = np.random.default_rng(3)
    masks = rng.random((3, 17, 23)) > 0.5
    masks[0, 0, 0] = True
    masks[1, 0, 0] = False
    ref = official_amg.mask_to_rle_pytorch(torch.as_tensor(masks))
    for mask, r in zip(masks, ref, strict=True):
        assert encode_mask(mask, "uncompressed_rle") == r
        np.testing.assert_array_equal(official_amg.rle_to_mask(r), mask)


def test_point_grid_layout():
    grid = point_grid(4)
    assert grid.shape == (16, 2)
    np.testing.assert_allclose(grid[:4, 0], [0.125, 0.375, 0.625, 0.875])
    np.testing.assert_allclose(grid[:4, 1], 0.125)  # x varies fastest
    with pytest.raises(ValueError):
        point_grid(0)


def test_fill_low_res_fills_holes_and_removes_sprinkles():
    logits = np.full((1, 32, 32), -5.0, dtype=np.float32)
    logits[0, 5:20, 5:20] = 3.0
    logits[0, 10:12, 10:12] = -2.0  # a 4-pixel hole
    logits[0, 28, 28] = 4.0  # a 1-pixel sprinkle
    out = fill_low_res(logits, max_area=4, threshold=0.0)
    assert np.all(out[0, 10:12, 10:12] == 10.0)
    assert out[0, 28, 28] == -10.0
    np.testing.assert_array_equal(out[0, 5:10, 5:20], 3.0)  # large regions untouched
    assert out[0, 0, 0] == -5.0
    assert np.array_equal(logits[0, 10, 10], -2.0)  # input not modified
    kept = fill_low_res(logits, max_area=3, threshold=0.0)
    assert np.all(kept[0, 10:12, 10:12] == -2.0)  # 4 pixels > max_area 3


def test_records_follow_official_conventions():
    masks = np.zeros((2, 10, 12), dtype=bool)
    masks[0, 2:5, 3:9] = True
    masks[1, 0:10, 0:1] = True
    result = GeneratedMasks(
        image_size=(10, 12),
        masks=masks,
        boxes=mask_boxes(masks),
        predicted_iou=np.array([0.9, 0.8], dtype=np.float32),
        stability_score=np.array([0.97, 0.96], dtype=np.float32),
        point_coords=np.array([[4.5, 3.0], [0.5, 5.0]]),
        crop_boxes=np.array([[0, 0, 12, 10], [0, 0, 12, 10]]),
    )
    recs = result.records("coco_rle")
    assert recs[0]["bbox"] == [3, 2, 5, 2]  # XYWH with W = x1 - x0, as the official
    assert recs[0]["area"] == 18
    assert recs[0]["crop_box"] == [0, 0, 12, 10]
    assert recs[1]["point_coords"] == [[0.5, 5.0]]
    np.testing.assert_array_equal(rle_decode(recs[0]["segmentation"]), masks[0])
    polys = result.records("polygons")[0]["segmentation"]
    assert len(polys) == 1 and len(polys[0]) >= 6
    xs, ys = np.array(polys[0][0::2]), np.array(polys[0][1::2])
    assert (xs.min(), xs.max(), ys.min(), ys.max()) == (3, 8, 2, 4)
    np.testing.assert_array_equal(result.records("binary_mask")[1]["segmentation"], masks[1])
    with pytest.raises(SamedgeError, match="unknown output mode"):
        result.records("png")


def test_nms_edge_cases():
    assert box_nms(np.zeros((0, 4)), np.zeros(0), 0.5).size == 0
    # empty boxes have IoU 0/0: never suppressed, as in torchvision
    keep = box_nms(np.zeros((3, 4)), np.array([0.1, 0.3, 0.2]), 0.5)
    np.testing.assert_array_equal(keep, [1, 2, 0])


def test_fast_mode_coarse_grid_is_a_subgrid():
    from samedge.amg.generator import _coarse_indices

    np.testing.assert_array_equal(_coarse_indices(16, 2), [0, 2, 8, 10])
    assert len(_coarse_indices(32 * 32, 2)) == 256
    assert len(_coarse_indices(32 * 32, 4)) == 64
    np.testing.assert_array_equal(_coarse_indices(10, 2), [0, 4, 8])  # not square: every 4th
