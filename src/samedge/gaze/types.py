"""Typed results of the gaze pipeline's stages.

All coordinates are pixels in the frame the pipeline was given (x right, y down); boxes are
``(x0, y0, x1, y1)`` float arrays; images are ``H x W x 3`` uint8 RGB.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True, eq=False)
class Face:
    """One detected face.

    Attributes:
        box: float ``(4,)`` XYXY pixels.
        score: detector confidence in ``[0, 1]``.
        landmarks: float ``(5, 2)`` XY pixels (two eyes, nose tip, two mouth corners, in
            image-left-to-right order for the pairs), or ``None`` when the detector has none.
    """

    box: np.ndarray
    score: float
    landmarks: np.ndarray | None = None

    @property
    def area(self) -> float:
        x0, y0, x1, y1 = self.box
        return float(max(0.0, x1 - x0) * max(0.0, y1 - y0))


@dataclass(frozen=True, eq=False)
class Gaze:
    """Where a face looks.

    Attributes:
        origin: float ``(2,)`` XY pixels where the gaze ray starts (eye midpoint when
            landmarks exist, else the face-box centre).
        direction: float ``(2,)`` unit vector of the ray in the image plane (x right,
            y down); zero when the person looks straight at the camera.
        vector: float ``(3,)`` unit 3-D gaze vector in the camera frame (x right, y up,
            z away from the camera: looking into the camera is ``z ~ -1``).
        yaw: horizontal gaze angle in degrees (``atan2(x, -z)``): 0 looking at the camera,
            positive towards the image right.
        pitch: vertical gaze angle in degrees (``asin(y)``), positive up.
        head_pose: ``(yaw, pitch, roll)`` of the head in degrees, or ``None``.
        eyes: float ``(2, 2)`` XY of the two eye centres used, or ``None``.
    """

    origin: np.ndarray
    direction: np.ndarray
    vector: np.ndarray
    yaw: float
    pitch: float
    head_pose: tuple[float, float, float] | None = None
    eyes: np.ndarray | None = None


@dataclass(frozen=True, eq=False)
class Detections:
    """Object detections of one frame.

    Attributes:
        boxes: float ``(N, 4)`` XYXY pixels.
        scores: float ``(N,)`` confidences.
        labels: int ``(N,)`` class indices.
        names: class name of each detection.
    """

    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray
    names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        n = len(self.boxes)
        if self.boxes.shape != (n, 4) or self.scores.shape != (n,) or self.labels.shape != (n,):
            raise ValueError(
                f"detections must be boxes (N, 4), scores (N,), labels (N,); got "
                f"{self.boxes.shape}, {self.scores.shape}, {self.labels.shape}"
            )

    def __len__(self) -> int:
        return len(self.boxes)

    def subset(self, index: np.ndarray) -> Detections:
        index = np.asarray(index, dtype=np.int64)
        return Detections(
            self.boxes[index],
            self.scores[index],
            self.labels[index],
            tuple(self.names[i] for i in index) if self.names else (),
        )

    @staticmethod
    def empty() -> Detections:
        return Detections(np.zeros((0, 4)), np.zeros(0), np.zeros(0, dtype=np.int64))


@dataclass(frozen=True, eq=False)
class Target:
    """The object the person looks at.

    Attributes:
        box: float ``(4,)`` XYXY prompt box (or the mask's box in point mode).
        mask: bool ``(H, W)``.
        iou_pred: the decoder's predicted IoU of the mask.
        fill: share of the box covered by the mask, in ``[0, 1]``.
        label: class index, or ``-1`` (detector-free mode).
        name: class name, or ``""``.
        det_score: detector confidence, or ``nan`` (detector-free mode).
        held: ``True`` when this is the previous frame's target kept for one empty frame.
    """

    box: np.ndarray
    mask: np.ndarray
    iou_pred: float
    fill: float
    label: int = -1
    name: str = ""
    det_score: float = float("nan")
    held: bool = False


@dataclass(frozen=True, eq=False)
class GazeResult:
    """Everything the pipeline found in one frame.

    Attributes:
        frame_size: ``(H, W)``.
        face: the face used (the largest), or ``None``.
        gaze: the (filtered) gaze, or ``None``.
        detections: all object detections (empty in detector-free mode).
        kept: indices into ``detections`` that survived the selection filters.
        target: the chosen object, or ``None``.
        reason: why there is no target (``""`` when there is one).
        latency_ms: milliseconds per stage (``face``, ``gaze``, ``detect``, ``depth``,
            ``select``, ``encode``, ``decode``, ``total``); absent stages are omitted.
        depth_used: whether the depth filter ran.
        prompt_points: float ``(P, 2)`` points used in detector-free mode, else ``None``.
    """

    frame_size: tuple[int, int]
    face: Face | None
    gaze: Gaze | None
    detections: Detections
    kept: np.ndarray
    target: Target | None
    reason: str
    latency_ms: dict[str, float] = field(default_factory=dict)
    depth_used: bool = False
    prompt_points: np.ndarray | None = None
