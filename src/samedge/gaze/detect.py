"""Object detection stage: YOLOX-Nano (or any YOLOX-style ONNX) decoded in NumPy.

An object detector is any object with ``detect(image) -> Detections`` taking an
``H x W x 3`` uint8 RGB frame.
"""

from __future__ import annotations

import os
from typing import Protocol

import numpy as np

from .backend import load_network
from .geometry import letterbox, nms
from .types import Detections

COCO_NAMES = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat",
    "dog", "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack",
    "umbrella", "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball",
    "kite", "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket",
    "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple",
    "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair",
    "couch", "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse",
    "remote", "keyboard", "cell phone", "microwave", "oven", "toaster", "sink",
    "refrigerator", "book", "clock", "vase", "scissors", "teddy bear", "hair drier",
    "toothbrush",
)  # fmt: skip


class ObjectDetector(Protocol):
    def detect(self, image: np.ndarray) -> Detections: ...


class YoloxDetector:
    """A YOLOX ONNX export (``decode_in_inference=False``), e.g. YOLOX-Nano at 416x416.

    Input: the frame letterboxed into the top-left of the square input, padded with 114,
    BGR 0-255 NCHW (no normalisation). Output ``(1, A, 5 + C)``: per anchor point of the
    stride-8/16/32 grids, ``(dx, dy, log w, log h)``, objectness and ``C`` class
    probabilities; ``xy = (d + grid) * stride``, ``wh = exp(log wh) * stride``. Score =
    objectness x class probability; class-aware NMS.

    Args:
        path: the ONNX file.
        class_names: names of the ``C`` classes (default COCO-80).
        score_threshold: minimum score.
        nms_threshold: IoU above which same-class boxes are suppressed.
        classes: only keep these class indices (``None``: all).
    """

    STRIDES = (8, 16, 32)

    def __init__(
        self,
        path: str | os.PathLike[str],
        backend: str = "ort",
        threads: int | None = None,
        class_names: tuple[str, ...] = COCO_NAMES,
        score_threshold: float = 0.3,
        nms_threshold: float = 0.45,
        classes: tuple[int, ...] | None = None,
    ) -> None:
        self.net = load_network(path, backend, threads=threads)
        self.input_name = next(iter(self.net.inputs))
        shape = self.net.inputs[self.input_name]
        self.input_size = (int(shape[2]), int(shape[3]))
        self.class_names = class_names
        self.score_threshold = score_threshold
        self.nms_threshold = nms_threshold
        self.classes = classes
        h, w = self.input_size
        grids, strides = [], []
        for s in self.STRIDES:
            ys, xs = np.meshgrid(np.arange(h // s), np.arange(w // s), indexing="ij")
            grids.append(np.stack([xs, ys], -1).reshape(-1, 2))
            strides.append(np.full((grids[-1].shape[0], 1), s))
        self._grid = np.concatenate(grids).astype(np.float32)
        self._stride = np.concatenate(strides).astype(np.float32)

    def decode(self, raw: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Boxes XYXY (input frame), scores and labels of one raw ``(A, 5 + C)`` output."""
        if raw.shape[0] != self._grid.shape[0]:
            raise ValueError(
                f"YOLOX output has {raw.shape[0]} anchors; a {self.input_size} input gives "
                f"{self._grid.shape[0]} with strides {self.STRIDES}"
            )
        xy = (raw[:, :2] + self._grid) * self._stride
        wh = np.exp(raw[:, 2:4]) * self._stride
        cls = raw[:, 5:] * raw[:, 4:5]
        labels = np.argmax(cls, axis=1)
        scores = cls[np.arange(len(cls)), labels]
        boxes = np.concatenate([xy - wh / 2, xy + wh / 2], axis=1)
        return boxes, scores, labels

    def detect(self, image: np.ndarray) -> Detections:
        bgr = np.ascontiguousarray(image[:, :, ::-1])
        canvas, scale = letterbox(bgr, self.input_size, 114)
        tensor = np.ascontiguousarray(canvas.transpose(2, 0, 1)[None], dtype=np.float32)
        raw = self.net({self.input_name: tensor})[self.net.outputs[0]][0]
        boxes, scores, labels = self.decode(raw)
        keep = scores >= self.score_threshold
        if self.classes is not None:
            keep &= np.isin(labels, self.classes)
        boxes = boxes[keep].astype(np.float64) / scale
        scores, labels = scores[keep].astype(np.float64), labels[keep].astype(np.int64)
        height, width = image.shape[:2]
        boxes[:, 0::2] = np.clip(boxes[:, 0::2], 0, width)
        boxes[:, 1::2] = np.clip(boxes[:, 1::2], 0, height)
        # Class-aware NMS: shift each class's boxes apart so they never overlap.
        offset = labels[:, None] * (max(width, height) + 1.0)
        order = nms(boxes + offset, scores, self.nms_threshold)
        names = tuple(
            self.class_names[i] if i < len(self.class_names) else str(i) for i in labels[order]
        )
        return Detections(boxes[order], scores[order], labels[order], names)
