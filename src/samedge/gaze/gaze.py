"""Gaze stage: from a face to a gaze ray in the image.

A gaze estimator is any object with ``estimate(image, face) -> Gaze`` (``image`` ``H x W x 3``
uint8 RGB, ``face`` a :class:`~samedge.gaze.types.Face`).

* :class:`OpenVINOGazeEstimator` chains three Open Model Zoo networks on OpenVINO:
  ``landmarks-regression-retail-0009`` (eye centres), ``head-pose-estimation-adas-0001``
  (yaw, pitch, roll) and ``gaze-estimation-adas-0002`` (gaze vector from two eye crops and
  the head pose).
* :class:`L2CSGazeEstimator` runs an L2CS-Net ONNX model a user exported themselves.

Camera frame of gaze vectors (that of ``gaze-estimation-adas-0002``'s output): x to the image
right, y up, z away from the camera, so a person looking into the camera has ``z ~ -1``.
"""

from __future__ import annotations

import math
import os
from typing import Protocol

import cv2
import numpy as np

from ..errors import SamedgeError
from .backend import load_network
from .types import Face, Gaze

#: Side of the square eye crop, as a share of the distance between the eye centres.
EYE_CROP_SCALE = 0.75


class GazeEstimator(Protocol):
    def estimate(self, image: np.ndarray, face: Face) -> Gaze: ...


def angles_to_vector(yaw: float, pitch: float) -> np.ndarray:
    """Unit camera-frame gaze vector from ``yaw = atan2(x, -z)`` and ``pitch = asin(y)`` (deg)."""
    y, p = math.radians(yaw), math.radians(pitch)
    return np.array([math.cos(p) * math.sin(y), math.sin(p), -math.cos(p) * math.cos(y)])


def vector_to_angles(vector: np.ndarray) -> tuple[float, float]:
    """``(yaw, pitch)`` in degrees of a camera-frame vector (normalised first)."""
    v = np.asarray(vector, dtype=np.float64)
    v = v / max(float(np.linalg.norm(v)), 1e-12)
    return math.degrees(math.atan2(v[0], -v[2])), math.degrees(math.asin(np.clip(v[1], -1, 1)))


def image_direction(vector: np.ndarray) -> np.ndarray:
    """Unit 2-D direction (x right, y down) of a camera-frame vector projected on the image.

    Zero when the vector points straight at (or away from) the camera.
    """
    d = np.array([vector[0], -vector[1]], dtype=np.float64)
    norm = float(np.linalg.norm(d))
    return d / norm if norm > 1e-6 else np.zeros(2)


def make_gaze(
    face: Face,
    vector: np.ndarray,
    eyes: np.ndarray | None = None,
    head_pose: tuple[float, float, float] | None = None,
) -> Gaze:
    """A :class:`Gaze` from a camera-frame vector: origin at the eye midpoint (or face centre)."""
    v = np.asarray(vector, dtype=np.float64).reshape(3)
    norm = float(np.linalg.norm(v))
    if not np.isfinite(norm) or norm < 1e-9:
        raise SamedgeError("the gaze network returned a zero or non-finite vector")
    v = v / norm
    if eyes is not None:
        origin = np.asarray(eyes, dtype=np.float64).reshape(2, 2).mean(axis=0)
    elif face.landmarks is not None:
        origin = face.landmarks[:2].mean(axis=0)
    else:
        origin = np.array([(face.box[0] + face.box[2]) / 2, (face.box[1] + face.box[3]) / 2])
    yaw, pitch = vector_to_angles(v)
    return Gaze(
        origin=origin,
        direction=image_direction(v),
        vector=v,
        yaw=yaw,
        pitch=pitch,
        head_pose=head_pose,
        eyes=None if eyes is None else np.asarray(eyes, dtype=np.float64),
    )


def crop(image: np.ndarray, box: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``box`` (XYXY, may extend past the image: zero padding) resized to ``size = (h, w)``."""
    x0, y0, x1, y1 = (float(v) for v in box)
    h, w = size
    sx, sy = w / max(x1 - x0, 1e-6), h / max(y1 - y0, 1e-6)
    matrix = np.array([[sx, 0, -x0 * sx], [0, sy, -y0 * sy]], dtype=np.float64)
    return cv2.warpAffine(image, matrix, (w, h), flags=cv2.INTER_LINEAR, borderValue=0)


def _nchw(bgr: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(bgr.transpose(2, 0, 1)[None], dtype=np.float32)


class OpenVINOGazeEstimator:
    """Landmarks -> eye crops, head pose -> gaze vector, with the Open Model Zoo networks.

    Inputs of all three networks are BGR 0-255 crops: the face box resized to 48x48
    (landmarks) and 60x60 (head pose), and a square around each eye centre of side
    ``EYE_CROP_SCALE`` x the eye distance, resized to 60x60. The head pose angles are
    given to the gaze network as ``(yaw, pitch, roll)``.

    Args:
        landmarks, head_pose, gaze: the three IR ``.xml`` files.
        threads: OpenVINO inference threads.
    """

    def __init__(
        self,
        landmarks: str | os.PathLike[str],
        head_pose: str | os.PathLike[str],
        gaze: str | os.PathLike[str],
        threads: int | None = None,
        backend: str = "openvino",
    ) -> None:
        self.landmarks_net = load_network(landmarks, backend, threads=threads)
        self.head_pose_net = load_network(head_pose, backend, threads=threads)
        self.gaze_net = load_network(gaze, backend, threads=threads)
        self._lm_in = next(iter(self.landmarks_net.inputs))
        self._lm_out = self.landmarks_net.outputs[0]
        self._hp_in = next(iter(self.head_pose_net.inputs))

    def landmarks(self, bgr: np.ndarray, face: Face) -> np.ndarray:
        """Five landmarks ``(5, 2)`` XY pixels of ``face`` (pairs ordered left to right)."""
        x0, y0, x1, y1 = face.box
        out = self.landmarks_net({self._lm_in: _nchw(crop(bgr, face.box, (48, 48)))})
        pts = out[self._lm_out].reshape(5, 2).astype(np.float64)
        pts = np.stack([x0 + pts[:, 0] * (x1 - x0), y0 + pts[:, 1] * (y1 - y0)], axis=1)
        for a, b in ((0, 1), (3, 4)):
            if pts[a, 0] > pts[b, 0]:
                pts[[a, b]] = pts[[b, a]]
        return pts

    def head_pose(self, bgr: np.ndarray, face: Face) -> tuple[float, float, float]:
        """``(yaw, pitch, roll)`` of the head in degrees."""
        out = self.head_pose_net({self._hp_in: _nchw(crop(bgr, face.box, (60, 60)))})
        return (
            float(out["angle_y_fc"].reshape(-1)[0]),
            float(out["angle_p_fc"].reshape(-1)[0]),
            float(out["angle_r_fc"].reshape(-1)[0]),
        )

    def estimate(self, image: np.ndarray, face: Face) -> Gaze:
        bgr = np.ascontiguousarray(image[:, :, ::-1])
        pts = self.landmarks(bgr, face)
        eyes = pts[:2]
        pose = self.head_pose(bgr, face)
        half = max(EYE_CROP_SCALE * float(np.linalg.norm(eyes[1] - eyes[0])), 8.0) / 2
        crops = [
            _nchw(crop(bgr, np.array([x - half, y - half, x + half, y + half]), (60, 60)))
            for x, y in eyes
        ]
        out = self.gaze_net(
            {
                "left_eye_image": crops[0],
                "right_eye_image": crops[1],
                "head_pose_angles": np.array([pose], dtype=np.float32),
            }
        )
        return make_gaze(face, out[self.gaze_net.outputs[0]].reshape(3), eyes=eyes, head_pose=pose)


class L2CSGazeEstimator:
    """Adapter for an L2CS-Net ONNX export (the user supplies the model).

    Expected I/O (that of the L2CS-Net demo): one input, the face crop resized to 448x448,
    RGB, ImageNet mean/std; two outputs in the order (horizontal, vertical), each either 90
    bin logits (4 degree bins from -180) decoded as the softmax expectation, or one angle in
    radians. Following the L2CS-Net demo's drawing, horizontal angle ``a`` and vertical
    ``b`` map to the image direction ``(-sin a cos b, -sin b)``.

    Not verified against a released L2CS-Net model (none is available to the project); the
    decoding is tested on a synthetic ONNX graph with the same I/O.
    """

    MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
    STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)

    def __init__(
        self, path: str | os.PathLike[str], backend: str = "ort", threads: int | None = None
    ) -> None:
        self.net = load_network(path, backend, threads=threads)
        self.input_name = next(iter(self.net.inputs))
        shape = self.net.inputs[self.input_name]
        self.size = (
            (int(shape[2]), int(shape[3]))
            if all(isinstance(s, int) and s > 0 for s in shape[2:])
            else (448, 448)
        )
        if len(self.net.outputs) < 2:
            raise SamedgeError(
                f"{self.net.path.name} has {len(self.net.outputs)} output(s); an L2CS-Net model "
                f"has two (horizontal and vertical gaze)"
            )

    @staticmethod
    def decode_angle(output: np.ndarray) -> float:
        """Radians from 90 bin logits (softmax expectation, 4-degree bins) or one angle."""
        flat = np.asarray(output, dtype=np.float64).reshape(-1)
        if flat.size == 1:
            return float(flat[0])
        if flat.size != 90:
            raise SamedgeError(f"L2CS output has {flat.size} values; expected 90 bins or 1 angle")
        p = np.exp(flat - flat.max())
        p /= p.sum()
        return math.radians(float(np.sum(p * np.arange(90)) * 4 - 180))

    def estimate(self, image: np.ndarray, face: Face) -> Gaze:
        patch = crop(image, face.box, self.size).astype(np.float32) / 255.0
        tensor = ((patch - self.MEAN) / self.STD).transpose(2, 0, 1)[None]
        out = self.net({self.input_name: np.ascontiguousarray(tensor, dtype=np.float32)})
        a = self.decode_angle(out[self.net.outputs[0]])
        b = self.decode_angle(out[self.net.outputs[1]])
        vector = np.array([-math.sin(a) * math.cos(b), math.sin(b), -math.cos(a) * math.cos(b)])
        return make_gaze(face, vector)
