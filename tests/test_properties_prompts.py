"""Property tests of prompt parsing: the CLI's ``--point`` / ``--box`` values and
:func:`samedge.runtime.prompts.normalize_prompts`. Anything a user can pass gives either
decoder inputs that make sense (shapes agree, labels in {-1, 0, 1, 2, 3}, finite
coordinates inside the encoder frame) or one :class:`~samedge.errors.PromptError` line.
"""

from __future__ import annotations

import argparse
import math

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from samedge.cli.segment import _box, _point
from samedge.errors import PromptError
from samedge.registry import get_spec
from samedge.runtime.prompts import DecoderPrompts, normalize_prompts
from samedge.specs import ModelSpec

FAST = settings(max_examples=60, deadline=None)
#: One spec per family: they order boxes and padding points differently.
SPECS = [get_spec("sam_vit_b"), get_spec("sam2.1_hiera_tiny")]
ORIGINAL = (480, 640)  # H, W
INPUT = (768, 1024)  # the encoder frame ORIGINAL maps to

numbers = st.floats(allow_nan=True, allow_infinity=True, width=64) | st.integers(
    -(10**400), 10**400
)
#: Ragged nests of numbers, strings, None: what a caller might pass instead of an array.
ragged = st.recursive(
    numbers | st.text(max_size=4) | st.none() | st.booleans(),
    lambda children: st.lists(children, max_size=4),
    max_leaves=12,
)


def check_prompts(out: DecoderPrompts, spec: ModelSpec) -> None:
    """What the decoder may rely on."""
    batch, count = out.point_coords.shape[:2]
    assert batch >= 1 and count >= 1 and out.point_coords.shape == (batch, count, 2)
    assert out.point_coords.dtype == np.float32 and out.point_labels.dtype == np.float32
    assert out.point_labels.shape == (batch, count)
    assert set(np.unique(out.point_labels).tolist()) <= {-1.0, 0.0, 1.0, 2.0, 3.0}
    assert np.all(np.isfinite(out.point_coords))
    real = out.point_labels >= 0  # padding points sit at (0, 0)
    assert np.all(out.point_coords[real] >= 0)
    assert np.all(out.point_coords[real][:, 0] <= INPUT[1] + 1e-3)
    assert np.all(out.point_coords[real][:, 1] <= INPUT[0] + 1e-3)
    side = spec.low_res_size  # 256 for every registered model
    assert out.mask_input.shape == (batch, 1, side, side)
    assert np.all(np.isfinite(out.mask_input))
    assert out.has_mask_input.shape == (batch,)


def normalize_or_error(spec_index: int, **prompts: object) -> DecoderPrompts | None:
    try:
        out = normalize_prompts(SPECS[spec_index], ORIGINAL, INPUT, **prompts)
    except PromptError as exc:
        message = str(exc)
        assert message and "\n" not in message and len(message) < 300, message
        return None
    check_prompts(out, SPECS[spec_index])
    return out


float_arrays = hnp.arrays(
    dtype=st.sampled_from([np.float64, np.float32]),
    shape=hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=3),
    elements=st.floats(-50, 700, width=32) | st.sampled_from([0.0, 1.0, math.nan, math.inf]),
)


@FAST
@given(
    spec=st.integers(0, 1),
    points=st.none() | float_arrays,
    labels=st.none() | float_arrays,
    box=st.none() | float_arrays,
    boxes=st.none() | float_arrays,
)
@example(spec=0, points=np.zeros((0, 3, 2)), labels=np.zeros((0, 3)), box=None, boxes=None)
def test_arrays_give_valid_prompts_or_one_error(
    spec: int,
    points: np.ndarray | None,
    labels: np.ndarray | None,
    box: np.ndarray | None,
    boxes: np.ndarray | None,
) -> None:
    # (0, N, 2) points were accepted as a batch of no prompt sets, which the decoder
    # cannot run: now "no prompt".
    normalize_or_error(spec, points=points, labels=labels, box=box, boxes=boxes)


@FAST
@given(spec=st.integers(0, 1), points=ragged, labels=ragged, box=ragged | st.none())
@example(spec=0, points=[[10**400, 1]], labels=[1], box=None)  # was OverflowError
@example(spec=0, points=[["a", "b"], ["c", "d"]], labels=[1, 1], box=None)  # message over 2 lines
@example(spec=0, points=[[1, 2]], labels=[1], box=[1, 2, 3, 10**400])  # was OverflowError
def test_python_objects_give_valid_prompts_or_one_error(
    spec: int, points: object, labels: object, box: object
) -> None:
    normalize_or_error(spec, points=points, labels=labels, box=box)


@FAST
@given(
    mask=hnp.arrays(
        np.float32,
        st.sampled_from([(256, 256), (1, 256, 256), (1, 1, 256, 256), (2, 256, 256), (0, 256)]),
        elements=st.floats(-20, 20, width=32) | st.sampled_from([math.nan, math.inf]),
    )
)
@example(mask=np.full((256, 256), np.nan, dtype=np.float32))  # NaN logits were fed to the decoder
def test_mask_input_is_checked(mask: np.ndarray) -> None:
    normalize_or_error(1, points=[[10, 20]], labels=[1], mask_input=mask)


@FAST
@given(
    spec=st.integers(0, 1),
    xy=st.lists(
        st.tuples(st.floats(0, ORIGINAL[1]), st.floats(0, ORIGINAL[0])), min_size=1, max_size=5
    ),
    labels=st.data(),
    with_box=st.booleans(),
)
def test_valid_prompts_map_to_the_encoder_frame(
    spec: int, xy: list[tuple[float, float]], labels: st.DataObject, with_box: bool
) -> None:
    lbl = labels.draw(st.lists(st.sampled_from([0, 1]), min_size=len(xy), max_size=len(xy)))
    box = [10.0, 20.0, 300.0, 400.0] if with_box else None
    out = normalize_prompts(SPECS[spec], ORIGINAL, INPUT, points=xy, labels=lbl, box=box)
    check_prompts(out, SPECS[spec])
    scale = np.array([INPUT[1] / ORIGINAL[1], INPUT[0] / ORIGINAL[0]])
    user = np.isin(out.point_labels[0], (0, 1))
    np.testing.assert_allclose(
        out.point_coords[0][user], np.array(xy) * scale, rtol=1e-6, atol=1e-3
    )
    assert out.point_labels[0][user].tolist() == lbl
    assert (out.point_labels[0] == 2).sum() == (out.point_labels[0] == 3).sum() == int(with_box)


@FAST
@given(text=st.text(max_size=40) | st.lists(numbers.map(str), max_size=5).map(",".join))
@example(text="nan,5")  # float() reads nan and inf: used to pass the parser
@example(text="1e999,2,1")
@example(text="\n")  # the message names the value on one line
def test_cli_point_and_box_values(text: str) -> None:
    for parse, sizes in ((_point, (3,)), (_box, (4,))):
        try:
            values = parse(text)
        except argparse.ArgumentTypeError as exc:
            assert "\n" not in str(exc) and repr(text) in str(exc)
            continue
        assert len(values) in sizes and all(math.isfinite(v) for v in values)
        if parse is _point:
            assert values[2] in (0.0, 1.0)


@pytest.mark.parametrize("flag", ["--point", "--box"])
@settings(max_examples=15, deadline=None)
@given(text=st.text(min_size=1, max_size=20).filter(lambda t: not t.startswith("-")))
def test_cli_rejects_bad_prompts_with_a_usage_error(flag: str, text: str) -> None:
    from samedge.cli.main import build_parser

    argv = ["segment", "img.jpg", "--model", "m", "--out", "o.png", flag, text]
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit_:
        assert exit_.code == 2  # argparse's usage error, never a traceback
        return
    values = args.point[0] if flag == "--point" else args.box[0]
    assert all(math.isfinite(v) for v in values)
