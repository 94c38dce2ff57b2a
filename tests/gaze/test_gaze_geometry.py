"""Ray-box geometry on box edges, NMS and letterboxing."""

from __future__ import annotations

import numpy as np
import pytest

from samedge.gaze.geometry import (
    clip_boxes,
    contains,
    letterbox,
    nms,
    points_along_ray,
    ray_box_intersections,
)

BOX = np.array([[10.0, 10.0, 20.0, 20.0]])


def hit(origin, direction, boxes=BOX):
    return ray_box_intersections(np.array(origin, float), np.array(direction, float), boxes)


def test_ray_hits_box_ahead_with_entry_and_exit_distances():
    h, t0, t1 = hit([0, 15], [1, 0])
    assert h.tolist() == [True]
    assert t0[0] == pytest.approx(10) and t1[0] == pytest.approx(20)


def test_ray_starting_inside_box_crosses_it_from_zero():
    h, t0, t1 = hit([15, 15], [0.6, -0.8])
    assert h[0] and t0[0] == 0.0 and t1[0] == pytest.approx(5 / 0.8)


def test_box_behind_the_face_is_not_crossed():
    h, t0, _ = hit([30, 15], [1, 0])
    assert not h[0] and np.isinf(t0[0])
    assert not hit([15, 30], [0, 1])[0][0]


@pytest.mark.parametrize(
    ("origin", "direction", "expected"),
    [
        ([0, 15], [1, 0], True),  # parallel to the top/bottom edges, between them
        ([0, 25], [1, 0], False),  # parallel, above the box
        ([0, 20], [1, 0], True),  # along the bottom edge: touching counts
        ([15, 0], [0, 1], True),  # vertical, between the side edges
        ([25, 0], [0, 1], False),  # vertical, right of the box
        ([0, 0], [1, 1], True),  # through both corners
        ([0, 30], [1, -1], True),  # touches the corner (10, 20)
        ([0, 40], [1, -1], True),  # touches the corner (20, 20)
        ([0, 41], [1, -1], False),  # misses past the corner (20, 20)
    ],
)
def test_rays_parallel_to_edges_and_through_corners(origin, direction, expected):
    assert hit(origin, direction)[0][0] is np.bool_(expected)


def test_many_boxes_at_once():
    boxes = np.array([[10, 10, 20, 20], [30, 0, 40, 5], [-20, 10, -10, 20], [50, 12, 60, 18]])
    h, t0, _ = hit([0, 15], [1, 0], boxes)
    assert h.tolist() == [True, False, False, True]
    assert t0[0] < t0[3]


def test_zero_direction_only_hits_boxes_containing_the_origin():
    assert hit([15, 15], [0, 0])[0][0]
    assert not hit([0, 0], [0, 0])[0][0]


def test_contains_whole_face_box_only():
    boxes = np.array([[0, 0, 100, 100], [0, 0, 20, 100], [10, 10, 30, 30]])
    assert contains(boxes, np.array([10, 10, 30, 30])).tolist() == [True, False, True]


def test_clip_boxes_to_image():
    out = clip_boxes(np.array([[-5, -5, 700, 90]]), (100, 640))
    assert out.tolist() == [[0, 0, 640, 90]]


def test_points_along_ray_stay_inside_image_past_start():
    pts = points_along_ray(np.array([10.0, 50.0]), np.array([1.0, 0.0]), (100, 110), 4, start=20)
    assert pts.shape == (4, 2)
    assert np.all(pts[:, 0] > 30) and np.all(pts[:, 0] < 110) and np.all(pts[:, 1] == 50)
    assert np.all(np.diff(pts[:, 0]) > 0)
    backwards = points_along_ray(np.array([10.0, 50.0]), np.array([-1.0, 0]), (100, 110), 4, 20)
    assert backwards.size == 0


def test_nms_suppresses_overlaps_and_keeps_order():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30]], float)
    assert nms(boxes, np.array([0.5, 0.9, 0.7]), 0.5).tolist() == [1, 2]


def test_letterbox_keeps_aspect_in_top_left():
    image = np.full((50, 100, 3), 7, np.uint8)
    canvas, scale = letterbox(image, (64, 64), 114)
    assert scale == pytest.approx(0.64)
    assert canvas.shape == (64, 64, 3)
    assert np.all(canvas[:32] == 7) and np.all(canvas[33:] == 114)


def test_importing_the_gaze_package_loads_no_runtime():
    import subprocess
    import sys

    code = (
        "import sys; import samedge.gaze.pipeline, samedge.gaze.factory, samedge.gaze.io.video,"
        " samedge.cli.gaze; bad = [m for m in ('onnxruntime', 'openvino', 'torch')"
        " if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
