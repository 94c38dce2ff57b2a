"""The track CLI's prompt syntax: --point FRAME:X,Y[,LABEL][@OBJ], --box
FRAME:X0,Y0,X1,Y1[@OBJ], --mask FRAME:PNG[@OBJ]. Anything a user can type gives a typed
record or one PromptError line; records are checked against the video in group_prompts."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from PIL import Image

from samedge.errors import PromptError
from samedge.video.prompts import (
    BoxPrompt,
    MaskPrompt,
    PointPrompt,
    group_prompts,
    parse_box,
    parse_mask,
    parse_point,
)

FAST = settings(max_examples=150, deadline=None)
SIZE = (640, 480)  # width, height

coords = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)
frames = st.integers(0, 10**6)
objects = st.integers(1, 10**4)


def test_examples_of_the_documented_syntax() -> None:
    assert parse_point("0:410,200") == PointPrompt(0, 410.0, 200.0, 1, 1)
    assert parse_point("12:80.5,95,0@2") == PointPrompt(12, 80.5, 95.0, 0, 2)
    assert parse_point(" 3 : 1e2 , 5 @ 7") == PointPrompt(3, 100.0, 5.0, 1, 7)
    assert parse_box("30:10,20,200,240@3") == BoxPrompt(30, (10.0, 20.0, 200.0, 240.0), 3)
    assert parse_mask("0:first.png") == MaskPrompt(0, Path("first.png"), 1)
    # The frame is split at the first colon and the object at a final @digits only.
    assert parse_mask("4:C:/masks/a@b.png@2") == MaskPrompt(4, Path("C:/masks/a@b.png"), 2)
    assert parse_mask("4:mask@home.png").path == Path("mask@home.png")


@pytest.mark.parametrize(
    ("parse", "text", "message"),
    [
        (parse_point, "410,200", "expected FRAME:X,Y"),
        (parse_point, "-1:4,5", "expected FRAME:X,Y"),
        (parse_point, "0:4", "expected FRAME:X,Y"),
        (parse_point, "0:4,5,2", "LABEL must be 1"),
        (parse_point, "0:nan,5", "expected FRAME:X,Y"),
        (parse_point, "0:4,5@0", "object ids start at 1"),
        (parse_point, "0:4,5@x", "expected FRAME:X,Y"),
        (parse_box, "0:10,10,5,20", "X0 <= X1"),
        (parse_box, "0:1,2,3", "expected FRAME:X0,Y0,X1,Y1"),
        (parse_mask, "0:", "expected FRAME:PNG"),
        (parse_mask, "a.png", "expected FRAME:PNG"),
    ],
)
def test_syntax_errors_name_the_value_and_the_syntax(parse, text: str, message: str) -> None:
    with pytest.raises(PromptError, match=message) as err:
        parse(text)
    assert "\n" not in str(err.value) and repr(text.strip())[1:4] in str(err.value)


def _one_line_or_record(parse, text: str) -> None:
    try:
        record = parse(text)
    except PromptError as exc:
        message = str(exc)
        assert message and "\n" not in message and len(message) < 300
        return
    assert record.frame >= 0 and record.obj >= 1


@FAST
@given(text=st.text(max_size=40))
@example("0:1,2@")
@example("\n0:1,2")
@example("0:1,2,1@1\n")
@example("9" * 400 + ":1,2")
def test_any_text_is_a_record_or_one_line(text: str) -> None:
    for parse in (parse_point, parse_box, parse_mask):
        _one_line_or_record(parse, text)


@FAST
@given(frame=frames, x=coords, y=coords, label=st.sampled_from([None, 0, 1]), obj=objects)
def test_points_round_trip(frame: int, x: float, y: float, label: int | None, obj: int) -> None:
    text = f"{frame}:{x!r},{y!r}" + ("" if label is None else f",{label}") + f"@{obj}"
    assert parse_point(text) == PointPrompt(frame, x, y, 1 if label is None else label, obj)
    if obj == 1:  # @1 is the default
        assert parse_point(text.rsplit("@", 1)[0]) == parse_point(text)


@FAST
@given(frame=frames, a=coords, b=coords, c=coords, d=coords, obj=objects)
def test_boxes_round_trip_or_say_the_corner_order(frame, a, b, c, d, obj) -> None:
    text = f"{frame}:{a!r},{b!r},{c!r},{d!r}@{obj}"
    if c < a or d < b:
        with pytest.raises(PromptError, match="X0 <= X1 and Y0 <= Y1"):
            parse_box(text)
    else:
        assert parse_box(text) == BoxPrompt(frame, (a, b, c, d), obj)


@FAST
@given(
    points=st.lists(st.tuples(st.integers(0, 20), coords, coords, objects), max_size=6),
    boxes=st.lists(st.tuples(st.integers(0, 20), coords, coords, objects), max_size=3),
)
def test_grouping_checks_frames_and_bounds_or_gives_one_record_per_frame_and_object(
    points, boxes
) -> None:
    pts = [PointPrompt(f, x, y, 1, o) for f, x, y, o in points]
    bxs = [BoxPrompt(f, (min(x, 0.0), min(y, 0.0), abs(x), abs(y)), o) for f, x, y, o in boxes]
    try:
        grouped = group_prompts(pts, bxs, frames=10, size=SIZE)
    except PromptError as exc:
        assert "\n" not in str(exc)
        return
    keys = [(g.frame, g.obj) for g in grouped]
    assert keys == sorted(set(keys)) and keys  # sorted, unique, not empty
    assert sum(0 if g.points is None else len(g.points) for g in grouped) == len(pts)
    for g in grouped:
        assert 0 <= g.frame < 10
        if g.points is not None:
            assert g.points.shape == (len(g.labels), 2) and g.points.dtype == np.float32
            assert np.all(g.points >= 0) and np.all(g.points <= SIZE)
        if g.box is not None:
            assert g.box.shape == (4,) and np.all(g.box >= 0) and np.all(g.box[2:] <= SIZE)
        assert g.points is not None or g.box is not None


def test_grouping_combines_points_of_one_object_and_frame() -> None:
    grouped = group_prompts(
        [parse_point("3:10,20@2"), parse_point("3:30,40,0@2"), parse_point("0:5,5")],
        [parse_box("3:1,2,300,400@2")],
        frames=5,
        size=SIZE,
    )
    assert [(g.frame, g.obj) for g in grouped] == [(0, 1), (3, 2)]
    two = grouped[1]
    assert two.points.tolist() == [[10, 20], [30, 40]] and two.labels.tolist() == [1, 0]
    assert two.box.tolist() == [1, 2, 300, 400] and two.mask is None
    assert two.to_json() == {
        "frame": 3, "object": 2, "points": [[10.0, 20.0], [30.0, 40.0]], "labels": [1, 0],
        "box": [1.0, 2.0, 300.0, 400.0],
    }  # fmt: skip


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "no prompt"),
        ({"points": [parse_point("5:1,1")]}, r"point 5:1,1 is on frame 5, past the end .*0\.\.4"),
        ({"points": [parse_point("0:641,1")]}, "outside the 640x480 frame"),
        ({"boxes": [parse_box("0:0,0,10,481")]}, "outside the 640x480 frame"),
        ({"boxes": [parse_box("1:0,0,1,1"), parse_box("1:2,2,3,3")]}, "has 2 boxes"),
    ],
)
def test_grouping_errors(kwargs, message: str) -> None:
    with pytest.raises(PromptError, match=message) as err:
        group_prompts(**kwargs, frames=5, size=SIZE)
    assert "\n" not in str(err.value)


def test_mask_prompts_are_read_and_checked(tmp_path: Path) -> None:
    mask = np.zeros((480, 640), np.uint8)
    mask[100:200, 50:150] = 255
    good = tmp_path / "m.png"
    cv2.imwrite(str(good), mask)
    (grouped,) = group_prompts(masks=[parse_mask(f"2:{good}@4")], frames=5, size=SIZE)
    assert grouped.obj == 4 and grouped.mask.dtype == bool
    assert np.array_equal(grouped.mask, mask > 0) and grouped.points is None
    # With an (opaque) alpha channel, as image editors save masks: alpha is not the object.
    opaque = np.full_like(mask, 255)
    for name, pixels in (("la.png", [mask, opaque]), ("rgba.png", [mask, mask, mask, opaque])):
        Image.fromarray(np.dstack(pixels)).save(tmp_path / name)
        (grouped,) = group_prompts(masks=[parse_mask(f"0:{tmp_path / name}")], frames=5, size=SIZE)
        assert np.array_equal(grouped.mask, mask > 0), name
    small = tmp_path / "small.png"
    cv2.imwrite(str(small), mask[:100])
    empty = tmp_path / "empty.png"
    cv2.imwrite(str(empty), np.zeros_like(mask))
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    cases = [
        ([parse_mask(f"0:{small}")], [], "is 640x100, the video's frames are 640x480"),
        ([parse_mask(f"0:{empty}")], [], "is empty"),
        ([parse_mask(f"0:{broken}")], [], "cannot read mask"),
        ([parse_mask(f"0:{tmp_path / 'none.png'}")], [], "mask file not found"),
        ([parse_mask(f"9:{good}")], [], "past the end"),
        ([parse_mask(f"0:{good}")], [parse_point("0:1,1")], "a mask and points or a box"),
    ]
    for masks, points, message in cases:
        with pytest.raises(PromptError, match=message) as err:
            group_prompts(points, masks=masks, frames=5, size=SIZE)
        assert "\n" not in str(err.value)
