"""Face detection stage: YuNet (default, with 5 landmarks) or UltraFace.

A face detector is any object with ``detect(image) -> list[Face]`` taking an ``H x W x 3``
uint8 RGB frame and returning faces in frame pixels, best first.
"""

from __future__ import annotations

import os
from typing import Protocol

import cv2
import numpy as np

from .backend import Network, load_network
from .geometry import letterbox, nms
from .types import Face


class FaceDetector(Protocol):
    def detect(self, image: np.ndarray) -> list[Face]: ...


class YuNetDetector:
    """YuNet (libfacedetection) ONNX: face boxes and five landmarks.

    Input: the frame letterboxed (top-left, zero padding) into the network's square input,
    BGR 0-255 NCHW. Output per stride ``s`` in (8, 16, 32): for each grid cell
    ``cls``, ``obj`` (probabilities), ``bbox`` ``(dx, dy, log w, log h)`` in stride units and
    ``kps`` five ``(dx, dy)`` landmark offsets. Score = ``sqrt(cls * obj)``.

    Args:
        path: ``yunet_n_640_640.onnx`` or the dynamic variant (then ``input_size`` is used,
            rounded up to a multiple of 32).
        score_threshold: minimum face score.
        nms_threshold: IoU above which overlapping faces are suppressed.
    """

    STRIDES = (8, 16, 32)

    def __init__(
        self,
        path: str | os.PathLike[str],
        backend: str = "ort",
        threads: int | None = None,
        score_threshold: float = 0.6,
        nms_threshold: float = 0.3,
        input_size: tuple[int, int] = (640, 640),
    ) -> None:
        self.net: Network = load_network(path, backend, threads=threads)
        self.input_name = next(iter(self.net.inputs))
        shape = self.net.inputs[self.input_name]
        if isinstance(shape[2], int) and shape[2] > 0 and isinstance(shape[3], int):
            self.input_size = (int(shape[2]), int(shape[3]))
        else:
            self.input_size = tuple(-(-v // 32) * 32 for v in input_size)  # type: ignore[assignment]
        self.score_threshold = score_threshold
        self.nms_threshold = nms_threshold

    def detect(self, image: np.ndarray) -> list[Face]:
        bgr = np.ascontiguousarray(image[:, :, ::-1])
        canvas, scale = letterbox(bgr, self.input_size, 0)
        tensor = canvas.transpose(2, 0, 1)[None].astype(np.float32)
        out = self.net({self.input_name: tensor})
        h, w = self.input_size
        all_boxes, all_scores, all_kps = [], [], []
        for s in self.STRIDES:
            rows, cols = h // s, w // s
            cls = out[f"cls_{s}"].reshape(-1)
            obj = out[f"obj_{s}"].reshape(-1)
            score = np.sqrt(np.clip(cls, 0, 1) * np.clip(obj, 0, 1))
            keep = np.flatnonzero(score >= self.score_threshold)
            if keep.size == 0:
                continue
            r, c = np.divmod(keep, cols)
            assert rows * cols == cls.size, f"unexpected YuNet output size for stride {s}"
            bbox = out[f"bbox_{s}"].reshape(-1, 4)[keep]
            kps = out[f"kps_{s}"].reshape(-1, 10)[keep]
            cx = (c + bbox[:, 0]) * s
            cy = (r + bbox[:, 1]) * s
            bw = np.exp(bbox[:, 2]) * s
            bh = np.exp(bbox[:, 3]) * s
            all_boxes.append(np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], 1))
            pts = kps.reshape(-1, 5, 2)
            pts = np.stack([(pts[..., 0] + c[:, None]) * s, (pts[..., 1] + r[:, None]) * s], -1)
            all_kps.append(pts)
            all_scores.append(score[keep])
        if not all_boxes:
            return []
        boxes = np.concatenate(all_boxes) / scale
        scores = np.concatenate(all_scores)
        kps = np.concatenate(all_kps) / scale
        return _faces(boxes, scores, kps, image.shape[:2], self.nms_threshold)


class UltraFaceDetector:
    """Ultra-Light-Fast-Generic-Face-Detector (RFB-320) ONNX: face boxes, no landmarks.

    Input: the frame resized to 320x240 (stretched), RGB, ``(x - 127) / 128``. Output:
    ``scores`` ``(1, 4420, 2)`` (background, face) and ``boxes`` ``(1, 4420, 4)``
    normalised XYXY.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        backend: str = "ort",
        threads: int | None = None,
        score_threshold: float = 0.7,
        nms_threshold: float = 0.3,
    ) -> None:
        self.net = load_network(path, backend, threads=threads)
        self.input_name = next(iter(self.net.inputs))
        shape = self.net.inputs[self.input_name]
        self.input_size = (int(shape[2]), int(shape[3]))
        self.score_threshold = score_threshold
        self.nms_threshold = nms_threshold

    def detect(self, image: np.ndarray) -> list[Face]:
        h, w = self.input_size
        resized = cv2.resize(image, (w, h), interpolation=cv2.INTER_LINEAR)
        tensor = ((resized.astype(np.float32) - 127.0) / 128.0).transpose(2, 0, 1)[None]
        out = self.net({self.input_name: np.ascontiguousarray(tensor)})
        scores = out["scores"].reshape(-1, 2)[:, 1]
        boxes = out["boxes"].reshape(-1, 4)
        keep = scores >= self.score_threshold
        height, width = image.shape[:2]
        boxes = boxes[keep] * np.array([width, height, width, height], dtype=np.float64)
        return _faces(boxes, scores[keep], None, image.shape[:2], self.nms_threshold)


def _faces(
    boxes: np.ndarray,
    scores: np.ndarray,
    kps: np.ndarray | None,
    size: tuple[int, int],
    nms_threshold: float,
) -> list[Face]:
    height, width = size
    boxes = boxes.astype(np.float64)
    boxes[:, 0::2] = np.clip(boxes[:, 0::2], 0, width)
    boxes[:, 1::2] = np.clip(boxes[:, 1::2], 0, height)
    keep = nms(boxes, scores, nms_threshold)
    faces = [
        Face(
            box=boxes[i],
            score=float(scores[i]),
            landmarks=None if kps is None else _ordered_landmarks(kps[i].astype(np.float64)),
        )
        for i in keep
        if boxes[i, 2] > boxes[i, 0] and boxes[i, 3] > boxes[i, 1]
    ]
    return sorted(faces, key=lambda f: f.area, reverse=True)


def _ordered_landmarks(pts: np.ndarray) -> np.ndarray:
    """Five landmarks with each pair (eyes, mouth corners) in image-left-to-right order."""
    pts = pts.copy()
    for a, b in ((0, 1), (3, 4)):
        if pts[a, 0] > pts[b, 0]:
            pts[[a, b]] = pts[[b, a]]
    return pts


def load_face_detector(
    kind: str, path: str | os.PathLike[str], backend: str = "ort", threads: int | None = None
) -> YuNetDetector | UltraFaceDetector:
    """``kind`` ``yunet`` or ``ultraface`` loaded from ``path``."""
    from ..errors import SamedgeError

    if kind == "yunet":
        return YuNetDetector(path, backend, threads)
    if kind == "ultraface":
        return UltraFaceDetector(path, backend, threads)
    raise SamedgeError(f"unknown face detector '{kind}': use yunet or ultraface")
