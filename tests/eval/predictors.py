"""Honest implementations of the evaluation's predictor protocol for tests.

``OraclePredictor`` knows the ground truth of a dataset: ``encode`` looks the image up, and
``predict`` returns the ground-truth instance that agrees best with the prompt (positive
points inside it, negative points outside it, box closest to its box). ``EmptyPredictor``
always predicts nothing. Both return :class:`samedge.MaskPrediction` like the real
predictor, with low-res logits the interactive protocol feeds back.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from samedge.eval.datasets import Dataset
from samedge.eval.protocols import gt_box
from samedge.runtime.types import MaskPrediction


def _key(image: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(image).tobytes()).hexdigest()


def _low_res(mask: np.ndarray) -> np.ndarray:
    small = cv2.resize(mask.astype(np.float32), (256, 256), interpolation=cv2.INTER_AREA)
    return np.where(small > 0.5, 10.0, -10.0).astype(np.float32)


def _prediction(mask: np.ndarray, k: int) -> MaskPrediction:
    masks = np.repeat(mask[None, None], k, axis=1)
    low = np.repeat(_low_res(mask)[None, None], k, axis=1)
    return MaskPrediction(masks=masks, scores=np.ones((1, k), np.float32), low_res_logits=low)


@dataclass
class OracleEmbedding:
    masks: list[np.ndarray]
    shape: tuple[int, int]


class OraclePredictor:
    def __init__(self, dataset: Dataset) -> None:
        self.masks: dict[str, list[np.ndarray]] = {}
        self.encode_calls = 0
        self.predict_calls = 0
        for sample in dataset:
            if sample.image is not None:
                self.masks[_key(sample.image)] = [i.mask for i in sample.instances]

    def encode(self, image: np.ndarray) -> OracleEmbedding:
        self.encode_calls += 1
        return OracleEmbedding(self.masks[_key(image)], image.shape[:2])

    def predict(
        self,
        embedding: OracleEmbedding,
        points: Any = None,
        labels: Any = None,
        box: Any = None,
        mask_input: Any = None,
        multimask_output: bool = True,
    ) -> MaskPrediction:
        self.predict_calls += 1

        def agreement(mask: np.ndarray) -> float:
            score = 0.0
            if points is not None:
                for (x, y), label in zip(np.asarray(points), np.asarray(labels), strict=True):
                    score += float(mask[int(y), int(x)] == bool(label))
            if box is not None:
                score -= float(np.abs(gt_box(mask) - np.asarray(box)).sum())
            return score

        best = max(embedding.masks, key=agreement)
        return _prediction(best, 3 if multimask_output else 1)


class EmptyPredictor:
    def encode(self, image: np.ndarray) -> tuple[int, int]:
        return image.shape[:2]

    def predict(
        self,
        embedding: tuple[int, int],
        points: Any = None,
        labels: Any = None,
        box: Any = None,
        mask_input: Any = None,
        multimask_output: bool = True,
    ) -> MaskPrediction:
        return _prediction(np.zeros(embedding, bool), 3 if multimask_output else 1)
