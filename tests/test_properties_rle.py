"""Property tests of COCO RLE (:mod:`samedge.maskutils`): any bool mask round-trips
exactly, the encoding is byte-for-byte pycocotools', and a malformed RLE is one ValueError.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from samedge.maskutils import mask_area, mask_to_box, rle_decode, rle_encode

FAST = settings(max_examples=80, deadline=None)
# pycocotools' decode passes copy=False to a NumPy 2 array protocol it predates.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


@st.composite
def masks(draw: st.DrawFn) -> np.ndarray:
    """Bool masks: random pixels, or a few rectangles (long runs, like real masks)."""
    shape = draw(hnp.array_shapes(min_dims=2, max_dims=2, min_side=0, max_side=70))
    if draw(st.booleans()):
        return draw(hnp.arrays(np.bool_, shape))
    mask = np.zeros(shape, dtype=bool)
    for _ in range(draw(st.integers(0, 3))):
        y0, y1 = sorted(draw(st.integers(0, shape[0])) for _ in range(2))
        x0, x1 = sorted(draw(st.integers(0, shape[1])) for _ in range(2))
        mask[y0:y1, x0:x1] = True
    return mask


@FAST
@given(mask=masks(), layout=st.sampled_from(["C", "F", "strided"]))
@example(mask=np.ones((1, 1), dtype=bool), layout="C")
@example(mask=np.zeros((0, 5), dtype=bool), layout="C")  # pycocotools writes "0", we wrote ""
@example(mask=np.ones((3000, 1), dtype=bool), layout="C")  # one run needing many 5-bit groups
def test_round_trip(mask: np.ndarray, layout: str) -> None:
    if layout == "F":
        mask = np.asfortranarray(mask)
    elif layout == "strided":
        mask = np.repeat(mask, 2, axis=1)[:, ::2]
    rle = rle_encode(mask)
    assert rle["size"] == list(mask.shape) and isinstance(rle["counts"], str)
    decoded = rle_decode(rle)
    assert decoded.dtype == np.bool_
    np.testing.assert_array_equal(decoded, mask)


@FAST
@given(mask=masks())
@example(mask=np.zeros((0, 0), dtype=bool))  # pycocotools writes "0", we wrote ""
def test_agrees_with_pycocotools(mask: np.ndarray) -> None:
    coco = pytest.importorskip("pycocotools.mask")
    ours = rle_encode(mask)
    theirs = coco.encode(np.asfortranarray(mask.astype(np.uint8)))
    assert ours["counts"] == theirs["counts"].decode("ascii")
    assert ours["size"] == [int(v) for v in theirs["size"]]
    # Each side decodes the other's encoding.
    np.testing.assert_array_equal(coco.decode(theirs).astype(bool), rle_decode(ours))
    np.testing.assert_array_equal(rle_decode({**ours, "counts": theirs["counts"]}), mask)
    if mask.size:
        assert mask_area(mask) == int(coco.area(theirs))
        x, y, w, h = mask_to_box(mask)
        assert [x, y, w, h] == [int(v) for v in coco.toBbox(theirs)]


@FAST
@given(mask=masks())
def test_uncompressed_counts(mask: np.ndarray) -> None:
    coco = pytest.importorskip("pycocotools.mask")
    height, width = mask.shape
    flat = mask.ravel(order="F")
    # Uncompressed COCO counts: alternating runs, starting with zeros.
    counts, value, run = [], False, 0
    for pixel in flat:
        if pixel != value:
            counts.append(run)
            value, run = pixel, 0
        run += 1
    counts.append(run)
    np.testing.assert_array_equal(rle_decode({"size": [height, width], "counts": counts}), mask)
    if mask.size:
        compressed = coco.frPyObjects({"size": [height, width], "counts": counts}, height, width)
        assert rle_encode(mask)["counts"] == compressed["counts"].decode("ascii")


@FAST
@given(
    size=st.lists(st.integers(-2, 40), min_size=0, max_size=3) | st.text(max_size=3),
    counts=st.text(max_size=30) | st.lists(st.integers(-5, 2**70), max_size=6) | st.none(),
)
@example(size=[2, 2], counts="P")  # ends inside a number: was IndexError
@example(size=[2, 2], counts="\x00")  # a byte outside pycocotools' alphabet
@example(size=[2, 2], counts=[2**70])  # was OverflowError
@example(size=[1, 1], counts=None)  # was TypeError
@example(size=[100000, 100000], counts="0")  # checked before allocating 10**10 pixels
def test_malformed_rle_is_one_value_error(size: object, counts: object) -> None:
    try:
        mask = rle_decode({"size": size, "counts": counts})  # type: ignore[arg-type]
    except ValueError as exc:
        assert "\n" not in str(exc)
        return
    height, width = (int(v) for v in size)  # type: ignore[union-attr]
    assert mask.shape == (height, width) and mask.dtype == np.bool_
    np.testing.assert_array_equal(rle_decode(rle_encode(mask)), mask)


def test_not_a_mapping_is_a_value_error() -> None:
    for rle in (None, [], "abc", {"size": [1, 1]}):
        with pytest.raises(ValueError, match="not a COCO RLE"):
            rle_decode(rle)  # type: ignore[arg-type]
