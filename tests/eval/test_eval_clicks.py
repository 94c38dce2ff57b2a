"""The click simulator and centre point: properties checked with hypothesis."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from samedge.eval.clicks import center_point, distance_to_border, next_click

shapes = st.tuples(st.integers(1, 24), st.integers(1, 24))


@st.composite
def cases(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    shape = draw(shapes)
    gt = draw(arrays(bool, shape))
    pred = draw(arrays(bool, shape))
    ignore = draw(st.none() | arrays(bool, shape))
    return gt, pred, ignore


@settings(max_examples=300, deadline=None)
@given(cases())
def test_click_is_inside_the_error_region_and_the_image(case) -> None:
    gt, pred, ignore = case
    valid = ~ignore if ignore is not None else np.ones_like(gt)
    missed, extra = gt & ~pred & valid, pred & ~gt & valid
    click = next_click(gt, pred, ignore)
    if not (missed.any() or extra.any()):
        assert click is None
        return
    assert click is not None
    assert 0 <= click.x < gt.shape[1] and 0 <= click.y < gt.shape[0]
    region = missed if click.positive else extra
    assert region[click.y, click.x]
    assert click.label == (1 if click.positive else 0)


@settings(max_examples=200, deadline=None)
@given(arrays(bool, shapes))
def test_center_point_is_the_deepest_mask_pixel(mask: np.ndarray) -> None:
    if not mask.any():
        return
    x, y = center_point(mask)
    assert mask[y, x]
    dist = distance_to_border(mask)
    assert dist[y, x] == dist.max()


def test_first_click_goes_to_the_middle_of_the_object() -> None:
    gt = np.zeros((30, 40), bool)
    gt[5:16, 10:31] = True  # 21 wide, 11 high: the middle is (20, 10)
    click = next_click(gt, np.zeros_like(gt))
    assert click is not None and (click.x, click.y, click.positive) == (20, 10, True)


def test_click_goes_to_the_largest_error_region() -> None:
    gt = np.zeros((40, 40), bool)
    gt[0:20, 0:20] = True
    pred = gt.copy()
    pred[2:4, 2:4] = False  # small miss (4 px)
    pred[25:35, 25:35] = True  # large false positive (100 px)
    click = next_click(gt, pred)
    assert click is not None and not click.positive
    assert 25 <= click.x < 35 and 25 <= click.y < 35
    # ignoring the false positive sends the click to the miss
    ignore = np.zeros_like(gt)
    ignore[24:36, 24:36] = True
    click = next_click(gt, pred, ignore)
    assert click is not None and click.positive and click.x in (2, 3) and click.y in (2, 3)


def test_border_counts_as_outside() -> None:
    region = np.ones((5, 9), bool)
    assert center_point(region) == (4, 2)
    assert distance_to_border(region)[0, 0] == 1.0
