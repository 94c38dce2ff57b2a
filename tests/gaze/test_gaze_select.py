"""Selection on synthetic detections: self-segmentation, ray, depth and mask choice."""

from __future__ import annotations

import numpy as np

from samedge.gaze.gaze import angles_to_vector, image_direction, make_gaze, vector_to_angles
from samedge.gaze.select import (
    SelectionConfig,
    box_fill,
    choose_mask,
    eye_nearness,
    filter_candidates,
    in_front,
)
from samedge.gaze.types import Detections, Face, Gaze

FACE = np.array([100.0, 100.0, 160.0, 170.0])


def gaze_to(direction) -> Gaze:
    d = np.asarray(direction, float)
    d = d / np.linalg.norm(d)
    return Gaze(origin=np.array([130.0, 125.0]), direction=d, vector=np.r_[d, 0], yaw=0, pitch=0)


def detections(*boxes) -> Detections:
    b = np.array(boxes, float)
    n = len(b)
    return Detections(b, np.full(n, 0.9), np.arange(n), tuple(f"obj{i}" for i in range(n)))


def test_drops_self_box_off_ray_and_behind_and_orders_by_distance():
    dets = detections(
        [80, 80, 200, 400],  # the person: contains the face box -> dropped
        [400, 100, 450, 160],  # on the ray, far
        [250, 110, 300, 140],  # on the ray, near
        [250, 300, 300, 350],  # below the ray
        [0, 100, 50, 150],  # behind the face (ray goes right)
    )
    kept, dropped = filter_candidates(dets, FACE, gaze_to([1, 0]))
    assert kept.tolist() == [2, 1]
    assert dropped == {"self": 1, "ray": 2, "depth": 0}


def test_box_overlapping_face_but_not_containing_it_is_kept():
    dets = detections([120, 90, 220, 200])
    kept, _ = filter_candidates(dets, FACE, gaze_to([1, 0]))
    assert kept.tolist() == [0]


def test_looking_into_the_camera_keeps_nothing():
    dets = detections([120, 90, 220, 200])
    g = Gaze(np.array([130.0, 125.0]), np.zeros(2), np.array([0, 0, -1.0]), 0, 0)
    assert filter_candidates(dets, FACE, g)[0].size == 0


def test_depth_keeps_boxes_in_front_of_the_eyes():
    near = np.full((400, 600), 0.5, np.float32)
    near[100:160, 400:450] = 0.9  # far box region is nearer than the eyes: in front
    near[110:140, 250:300] = 0.1  # near box region is behind the eyes
    front = in_front(near, eye_nearness(near, np.array([130, 125])), 0.05)
    dets = detections([400, 100, 450, 160], [250, 110, 300, 140])
    kept, dropped = filter_candidates(dets, FACE, gaze_to([1, 0]), front)
    assert kept.tolist() == [0] and dropped["depth"] == 1


def test_choose_mask_prefers_fill_and_respects_min_iou_and_depth():
    h, w = 100, 100
    boxes = np.array([[0, 0, 50, 50], [50, 50, 100, 100], [0, 50, 50, 100]], float)
    masks = np.zeros((3, h, w), bool)
    masks[0, 0:25, 0:50] = True  # fills half its box
    masks[1, 50:100, 50:90] = True  # fills 80 %
    masks[2, 50:100, 0:50] = True  # fills all, but low predicted IoU
    iou = np.array([0.9, 0.8, 0.2])
    index, fills, reason = choose_mask(masks, iou, boxes, config=SelectionConfig(min_iou=0.5))
    assert index == 1 and reason == ""
    assert np.allclose(fills, [0.5, 0.8, 1.0])
    index, _, _ = choose_mask(masks, iou, boxes, config=SelectionConfig(min_iou=0.1))
    assert index == 2
    front = np.zeros((h, w), bool)
    front[:50, :50] = True  # only mask 0 lies in front
    index, _, _ = choose_mask(masks, iou, boxes, front, SelectionConfig(min_iou=0.5))
    assert index == 0
    index, _, reason = choose_mask(masks, iou, boxes, config=SelectionConfig(min_iou=0.95))
    assert index is None and "0.95" in reason


def test_box_fill_clips_to_box():
    mask = np.ones((1, 20, 20), bool)
    assert box_fill(mask, np.array([[5, 5, 10, 10]], float))[0] == 1.0


def test_gaze_angle_conventions_round_trip():
    for yaw, pitch in [(0, 0), (30, -10), (-45, 20)]:
        v = angles_to_vector(yaw, pitch)
        assert np.isclose(np.linalg.norm(v), 1)
        assert np.allclose(vector_to_angles(v), (yaw, pitch))
    # looking to the image right and up: arrow right and up (negative y in pixels)
    d = image_direction(angles_to_vector(30, 20))
    assert d[0] > 0 and d[1] < 0
    assert not np.any(image_direction(np.array([0, 0, -1.0])))


def test_make_gaze_origin_from_eyes_else_face_centre():
    face = Face(box=FACE, score=1.0)
    g = make_gaze(face, np.array([2.0, 0, 0]))
    assert np.allclose(g.origin, [130, 135]) and np.allclose(g.vector, [1, 0, 0])
    eyes = np.array([[120.0, 120], [140, 122]])
    assert np.allclose(make_gaze(face, np.array([1.0, 0, 0]), eyes=eyes).origin, [130, 121])
