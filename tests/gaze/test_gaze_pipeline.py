"""The pipeline with the real (seed-0) SAM 2.1 tiny export and simple stand-in stages.

Stages are swappable objects; here the face, gaze and detector stages return fixed results
so that the selection, batching, hold and JSONL logic are checked exactly. The SAM model is
real (random weights: masks are meaningless, so ``min_iou`` is 0).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from samedge.gaze.gaze import make_gaze
from samedge.gaze.pipeline import GazeConfig, GazePipeline, annotate, result_record
from samedge.gaze.select import SelectionConfig
from samedge.gaze.types import Detections, Face
from samedge.maskutils import rle_decode

H, W = 240, 320
FACE = Face(box=np.array([40.0, 60.0, 90.0, 120.0]), score=0.99)


class FixedFaces:
    def __init__(self, faces):
        self.faces = faces

    def detect(self, image):
        return list(self.faces)


class FixedGaze:
    """Looks along ``vectors`` in turn (camera frame)."""

    def __init__(self, *vectors):
        self.vectors = [np.asarray(v, float) for v in vectors]
        self.calls = 0

    def estimate(self, image, face):
        v = self.vectors[self.calls % len(self.vectors)]
        self.calls += 1
        return make_gaze(face, v)


class Script:
    """Returns the given detections frame after frame (the last one repeats)."""

    def __init__(self, *frames):
        self.frames = list(frames)
        self.calls = 0

    def detect(self, image):
        d = self.frames[min(self.calls, len(self.frames) - 1)]
        self.calls += 1
        return d


def dets(*boxes):
    b = np.array(boxes, float).reshape(-1, 4)
    n = len(b)
    return Detections(b, np.linspace(0.9, 0.5, n), np.arange(n), tuple(f"c{i}" for i in range(n)))


@pytest.fixture(scope="module")
def predictor(export_test_model):
    from samedge import Predictor

    return Predictor.from_pretrained(export_test_model("sam2.1_hiera_tiny"), threads=2)


@pytest.fixture(scope="module")
def frame():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (H, W, 3), dtype=np.uint8)
    image[70:150, 180:260] = (200, 30, 30)
    return image


CONFIG = GazeConfig(one_euro=None, selection=SelectionConfig(min_iou=0.0))
RIGHT = [1.0, 0.0, -0.2]  # looking to the image right


@pytest.mark.slow
def test_boxes_mode_selects_segments_holds_then_clears(predictor, frame):
    frames = Script(
        dets(
            [20, 30, 120, 239],  # the person: contains the face -> dropped
            [180, 70, 330, 150],  # on the ray, runs past the right border -> clipped
            [150, 180, 200, 230],  # below the ray -> dropped
        ),
        Detections.empty(),
    )
    pipe = GazePipeline(predictor, FixedFaces([FACE]), FixedGaze(RIGHT), frames, config=CONFIG)
    first = pipe.process(frame, timestamp=0.0)
    assert first.kept.tolist() == [1]
    assert first.target is not None and not first.target.held
    assert first.target.box.tolist() == [180, 70, 320, 150]
    assert first.target.name == "c1" and first.target.mask.shape == (H, W)
    assert first.reason == "" and not first.depth_used
    assert {"face", "gaze", "detect", "select", "encode", "decode", "total"} <= set(
        first.latency_ms
    )

    second = pipe.process(frame, timestamp=1 / 30)
    assert second.target is not None and second.target.held
    assert np.array_equal(second.target.mask, first.target.mask)
    assert second.reason.startswith("held from the previous frame (no object detected")
    assert "encode" not in second.latency_ms  # nothing to segment: the encoder is skipped

    third = pipe.process(frame, timestamp=2 / 30)
    assert third.target is None and third.reason == "no object detected"

    record = json.loads(json.dumps(result_record(first, 0, 0.0)))
    assert np.array_equal(rle_decode(record["chosen"]["mask_rle"]), first.target.mask)
    assert record["chosen"]["name"] == "c1" and record["depth"] == "off (no depth model)"
    assert json.loads(json.dumps(result_record(third, 2, 0.1)))["chosen"] is None

    picture = annotate(frame, first)
    assert picture.shape == frame.shape and picture.dtype == np.uint8
    assert not np.array_equal(picture[first.target.mask], frame[first.target.mask])

    summary = pipe.stats.summary()
    assert summary["frames"] == 3 and summary["stages"]["encode"]["runs"] == 1
    assert summary["fps"] > 0
    assert sum(s["share"] for k, s in summary["stages"].items() if k != "total") <= 1.0001


@pytest.mark.slow
def test_all_candidate_boxes_go_to_one_batched_decoder_call(predictor, frame):
    calls = []

    class CountingPredictor:
        def encode(self, image):
            return predictor.encode(image)

        def predict(self, embedding, **kwargs):
            calls.append(kwargs)
            return predictor.predict(embedding, **kwargs)

    frames = Script(dets([120, 70, 160, 110], [200, 60, 250, 140], [260, 80, 300, 120]))
    pipe = GazePipeline(
        CountingPredictor(), FixedFaces([FACE]), FixedGaze(RIGHT), frames, config=CONFIG
    )
    result = pipe.process(frame, timestamp=0.0)
    assert len(calls) == 1 and calls[0]["boxes"].shape == (3, 4)
    assert calls[0]["multimask_output"] is False
    assert result.kept.tolist() == [0, 1, 2]  # nearest first along the ray
    assert result.target is not None


@pytest.mark.slow
def test_points_mode_prompts_along_the_ray(predictor, frame):
    config = GazeConfig(
        mode="points", num_points=5, one_euro=None, selection=SelectionConfig(min_iou=0.0)
    )
    pipe = GazePipeline(predictor, FixedFaces([FACE]), FixedGaze(RIGHT), config=config)
    result = pipe.process(frame, timestamp=0.0)
    pts = result.prompt_points
    assert pts.shape == (5, 2)
    assert np.all(pts[:, 0] > FACE.box[2]) and np.all(pts[:, 0] <= W)
    assert "decode" in result.latency_ms and len(result.detections) == 0
    assert result.target is not None or result.reason


def test_no_face_and_camera_gaze_skip_the_model(frame):
    no_face = GazePipeline(None, FixedFaces([]), FixedGaze(RIGHT), Script(dets()), config=CONFIG)
    result = no_face.process(frame, timestamp=0.0)
    assert result.reason == "no face" and result.face is None and "encode" not in result.latency_ms
    at_camera = GazePipeline(
        None, FixedFaces([FACE]), FixedGaze([0, 0, -1]), Script(dets()), config=CONFIG
    )
    result = at_camera.process(frame, timestamp=0.0)
    assert "into the camera" in result.reason


def test_one_euro_smooths_the_gaze_inside_the_pipeline(frame):
    jitter = FixedGaze([0.3, 0.0, -1.0], [-0.3, 0.0, -1.0])
    smooth = GazePipeline(
        None,
        FixedFaces([FACE]),
        jitter,
        Script(Detections.empty()),
        config=GazeConfig(one_euro=(0.5, 0.0, 1.0)),
    )
    yaws = [smooth.process(frame, timestamp=i / 30).gaze.yaw for i in range(30)]
    raw = np.degrees(np.arctan(0.3))
    assert abs(yaws[0]) == pytest.approx(raw, abs=0.01)  # first sample passes through
    swing = max(yaws[20:]) - min(yaws[20:])
    assert swing < 0.2 * (2 * raw)  # the frame-to-frame swing of the raw gaze is 2 * raw


def test_boxes_mode_needs_a_detector():
    with pytest.raises(ValueError, match="needs an object detector"):
        GazePipeline(None, FixedFaces([]), FixedGaze(RIGHT))


def test_depth_filter_runs_and_can_drop_every_box(frame):
    class FarAwayObjects:
        """Nearness map: the face region is near, everything else far behind it."""

        def estimate(self, image):
            near = np.zeros(image.shape[:2], np.float32)
            near[60:120, 40:90] = 1.0
            return near

    frames = Script(dets([180, 70, 300, 150]))
    pipe = GazePipeline(
        None, FixedFaces([FACE]), FixedGaze(RIGHT), frames, FarAwayObjects(), config=CONFIG
    )
    result = pipe.process(frame, timestamp=0.0)
    assert result.depth_used and "depth" in result.latency_ms
    assert result.kept.size == 0 and "1 behind the eyes" in result.reason
    assert "encode" not in result.latency_ms
    assert result_record(result, 0, 0.0)["depth"] == "on"
