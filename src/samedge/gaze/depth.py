"""Optional depth stage: a Depth-Anything-style ONNX model supplied by the user.

A depth estimator is any object with ``estimate(image) -> np.ndarray`` returning a float32
``H x W`` *nearness* map at the frame's resolution, scaled to ``[0, 1]`` per frame
(1 = closest to the camera). Depth-Anything predicts relative inverse depth (disparity),
which is already "larger = nearer", so it is only min-max normalised.
"""

from __future__ import annotations

import os
from typing import Protocol

import cv2
import numpy as np

from .backend import load_network


class DepthEstimator(Protocol):
    def estimate(self, image: np.ndarray) -> np.ndarray: ...


class DepthAnythingEstimator:
    """Depth-Anything-style ONNX: RGB, ImageNet mean/std, square input (default 518).

    The model's single input may be static (its size is used) or dynamic (``input_size``,
    a multiple of 14). Its first output, ``(1, h, w)`` or ``(1, 1, h, w)`` relative
    disparity, is resized to the frame and min-max normalised.

    Args:
        inverse: ``True`` (default) when the output is disparity (larger = nearer); ``False``
            for metric depth (larger = farther), which is then inverted.
    """

    MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
    STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)

    def __init__(
        self,
        path: str | os.PathLike[str],
        backend: str = "ort",
        threads: int | None = None,
        input_size: int = 518,
        inverse: bool = True,
    ) -> None:
        self.net = load_network(path, backend, threads=threads)
        self.input_name = next(iter(self.net.inputs))
        shape = self.net.inputs[self.input_name]
        static = all(isinstance(s, int) and s > 0 for s in shape[2:])
        self.size = (int(shape[2]), int(shape[3])) if static else (input_size, input_size)
        self.inverse = inverse

    def estimate(self, image: np.ndarray) -> np.ndarray:
        h, w = self.size
        resized = cv2.resize(image, (w, h), interpolation=cv2.INTER_CUBIC).astype(np.float32)
        tensor = ((resized / 255.0 - self.MEAN) / self.STD).transpose(2, 0, 1)[None]
        out = self.net({self.input_name: np.ascontiguousarray(tensor, dtype=np.float32)})
        raw = np.asarray(out[self.net.outputs[0]], dtype=np.float32)
        raw = raw.reshape(raw.shape[-2], raw.shape[-1])
        if not self.inverse:
            raw = -raw
        full = cv2.resize(raw, (image.shape[1], image.shape[0]), interpolation=cv2.INTER_LINEAR)
        lo, hi = float(full.min()), float(full.max())
        return ((full - lo) / (hi - lo) if hi > lo else np.zeros_like(full)).astype(np.float32)
