"""Real models from ../shared/models on real photos: face, gaze, objects; ORT vs OpenVINO.

The L2CS-Net and Depth-Anything adapters are exercised on small ONNX graphs built here with
the same input/output contract (no such model is available to the project).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from samedge.errors import SamedgeError
from samedge.gaze.backend import load_network
from samedge.gaze.detect import YoloxDetector
from samedge.gaze.face import UltraFaceDetector, YuNetDetector
from samedge.gaze.types import Face
from samedge.imageio import load_image

from ..conftest import shared_path

GAZE_NETS = (
    "landmarks-regression-retail-0009",
    "head-pose-estimation-adas-0001",
    "gaze-estimation-adas-0002",
)


def person1() -> np.ndarray:
    return load_image(shared_path("data", "interactive", "GrabCut", "data_GT", "person1.jpg"))


def box_iou(a, b) -> float:
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0, x1 - x0) * max(0, y1 - y0)
    area = lambda r: (r[2] - r[0]) * (r[3] - r[1])  # noqa: E731
    return inter / (area(a) + area(b) - inter)


@pytest.fixture(scope="module")
def yunet_face() -> Face:
    detector = YuNetDetector(shared_path("models", "face", "yunet_n_640_640.onnx"), threads=1)
    faces = detector.detect(person1())
    assert len(faces) == 1
    return faces[0]


def test_yunet_finds_the_face_with_landmarks(yunet_face):
    # person1.jpg (600x450): one frontal face in the upper middle of the picture.
    x0, y0, x1, y1 = yunet_face.box
    assert yunet_face.score > 0.9
    assert 250 < x0 < 300 and 380 < x1 < 440 and 100 < y0 < 150 and 300 < y1 < 360
    eyes = yunet_face.landmarks[:2]
    assert eyes[0, 0] < eyes[1, 0]  # image-left eye first
    assert np.all((eyes[:, 0] > x0) & (eyes[:, 0] < x1) & (eyes[:, 1] > y0) & (eyes[:, 1] < y1))
    assert np.all(yunet_face.landmarks[2:, 1] > eyes[:, 1].max())  # nose, mouth below eyes


def test_ultraface_agrees_with_yunet(yunet_face):
    detector = UltraFaceDetector(shared_path("models", "face", "ultraface-RFB-320.onnx"), threads=1)
    faces = detector.detect(person1())
    assert len(faces) == 1 and faces[0].landmarks is None
    assert box_iou(faces[0].box, yunet_face.box) > 0.8


def test_yunet_dynamic_variant_matches_fixed():
    image = person1()
    fixed = YuNetDetector(shared_path("models", "face", "yunet_n_640_640.onnx"), threads=1)
    dynamic = YuNetDetector(shared_path("models", "face", "yunet_n_dynamic.onnx"), threads=1)
    assert dynamic.input_size == (640, 640)
    assert np.allclose(fixed.detect(image)[0].box, dynamic.detect(image)[0].box, atol=1.0)


def test_gaze_chain_returns_a_finite_unit_vector(yunet_face):
    pytest.importorskip("openvino", reason="needs the [gaze] extra: pip install 'samedge[gaze]'")
    from samedge.gaze.gaze import OpenVINOGazeEstimator

    folder = shared_path("models", "gaze")
    paths = [folder / n / "FP16" / f"{n}.xml" for n in GAZE_NETS]
    gaze = OpenVINOGazeEstimator(*paths, threads=1).estimate(person1(), yunet_face)
    assert np.all(np.isfinite(gaze.vector)) and np.isclose(np.linalg.norm(gaze.vector), 1.0)
    # The eyes from the landmarks network agree with YuNet's to a few pixels.
    assert np.abs(gaze.eyes - yunet_face.landmarks[:2]).max() < 8
    assert np.allclose(gaze.origin, gaze.eyes.mean(axis=0))
    # He looks at the camera: the gaze points mostly towards it (z < 0), head nearly frontal.
    assert gaze.vector[2] < -0.8
    assert all(abs(a) < 15 for a in gaze.head_pose)
    assert np.isclose(np.linalg.norm(gaze.direction), 1.0)


def test_ir_models_refuse_onnx_runtime():
    xml = shared_path("models", "gaze", GAZE_NETS[0], "FP16", f"{GAZE_NETS[0]}.xml")
    with pytest.raises(SamedgeError, match="runs with backend 'openvino' only"):
        load_network(xml, "ort")


@pytest.fixture(scope="module")
def truck_detections():
    detector = YoloxDetector(shared_path("models", "detection", "yolox_nano.onnx"), threads=1)
    return detector.detect(load_image(shared_path("data", "images", "truck.jpg")))


def test_yolox_nano_finds_the_truck(truck_detections):
    assert truck_detections.names[0] == "truck" and truck_detections.scores[0] > 0.8
    # truck.jpg (1800x1200): the pick-up truck spans most of the width, in the middle band.
    x0, y0, x1, y1 = truck_detections.boxes[0]
    assert x0 < 200 and x1 > 1600 and 200 < y0 < 350 and 800 < y1 < 950


def test_openvino_runs_the_onnx_stages_like_onnx_runtime(truck_detections, yunet_face):
    pytest.importorskip("openvino", reason="needs the [gaze] extra: pip install 'samedge[gaze]'")
    ov_det = YoloxDetector(
        shared_path("models", "detection", "yolox_nano.onnx"), backend="openvino", threads=1
    ).detect(load_image(shared_path("data", "images", "truck.jpg")))
    assert ov_det.names[0] == "truck"
    assert box_iou(ov_det.boxes[0], truck_detections.boxes[0]) > 0.98
    ov_face = YuNetDetector(
        shared_path("models", "face", "yunet_n_640_640.onnx"), backend="openvino", threads=1
    ).detect(person1())[0]
    assert np.abs(ov_face.landmarks - yunet_face.landmarks).max() < 2


def _constant_graph(tmp_path, name, input_shape, outputs):
    """A graph with one image input and constant outputs (plus a real dependency on it)."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    nodes, outs = [], []
    # mean of the input, times zero, added to every output: the input is really consumed
    nodes.append(helper.make_node("ReduceMean", ["image"], ["m"], keepdims=0))
    nodes.append(helper.make_node("Mul", ["m", "zero"], ["z"]))
    inits = [numpy_helper.from_array(np.zeros((), np.float32), "zero")]
    for i, value in enumerate(outputs):
        inits.append(numpy_helper.from_array(value.astype(np.float32), f"c{i}"))
        nodes.append(helper.make_node("Add", [f"c{i}", "z"], [f"out{i}"]))
        outs.append(helper.make_tensor_value_info(f"out{i}", TensorProto.FLOAT, value.shape))
    graph = helper.make_graph(
        nodes,
        name,
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, input_shape)],
        outs,
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path / f"{name}.onnx"
    onnx.save(model, path)
    return path


def test_l2cs_adapter_decodes_bins(tmp_path, yunet_face):
    from samedge.gaze.gaze import L2CSGazeEstimator

    horizontal = np.full((1, 90), -20.0)
    horizontal[0, 52] = 20.0  # bin 52 -> 52 * 4 - 180 = 28 degrees
    vertical = np.full((1, 90), -20.0)
    vertical[0, 45] = 20.0  # 0 degrees
    path = _constant_graph(tmp_path, "l2cs", [1, 3, 448, 448], [horizontal, vertical])
    gaze = L2CSGazeEstimator(path, threads=1).estimate(person1(), yunet_face)
    assert np.isclose(np.linalg.norm(gaze.vector), 1)
    # L2CS demo convention: positive horizontal angle points to the image left.
    assert gaze.direction[0] == pytest.approx(-1.0, abs=1e-6)
    assert gaze.yaw == pytest.approx(-28.0, abs=0.01)
    assert L2CSGazeEstimator.decode_angle(np.array([0.3])) == 0.3
    assert L2CSGazeEstimator.decode_angle(np.zeros(90)) == pytest.approx(math.radians(-2.0))


def test_depth_adapter_resizes_and_normalises(tmp_path):
    from samedge.gaze.depth import DepthAnythingEstimator

    disparity = np.tile(np.linspace(0, 5, 518, dtype=np.float32), (518, 1))[None]
    path = _constant_graph(tmp_path, "depth", [1, 3, 518, 518], [disparity])
    near = DepthAnythingEstimator(path, threads=1).estimate(np.zeros((120, 200, 3), np.uint8))
    assert near.shape == (120, 200) and near.dtype == np.float32
    assert near.min() == 0 and near.max() == pytest.approx(1)
    assert np.all(np.diff(near[0]) >= 0)  # larger disparity = nearer: kept increasing
    far = DepthAnythingEstimator(path, threads=1, inverse=False).estimate(
        np.zeros((120, 200, 3), np.uint8)
    )
    assert np.all(np.diff(far[0]) <= 0)
