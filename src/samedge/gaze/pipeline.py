"""The gaze-prompted segmentation pipeline: face -> gaze -> objects -> filters -> SAM -> choice.

    >>> pipe = GazePipeline(predictor, face_detector, gaze_estimator, object_detector)
    >>> result = pipe.process(frame_rgb, timestamp=t)   # GazeResult
    >>> picture = annotate(frame_rgb, result)

Every stage is an object with one method (see ``face.FaceDetector``, ``gaze.GazeEstimator``,
``detect.ObjectDetector``, ``depth.DepthEstimator``); any of them can be swapped.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any, Literal

import cv2
import numpy as np

from ..maskutils import rle_encode
from .filters import HoldLast, OneEuroFilter
from .gaze import angles_to_vector, image_direction
from .geometry import clip_boxes, contains, points_along_ray, ray_box_intersections
from .select import SelectionConfig, choose_mask, eye_nearness, filter_candidates, in_front
from .stats import LatencyStats, timed
from .types import Detections, Face, Gaze, GazeResult, Target


@dataclass(frozen=True)
class GazeConfig:
    """Pipeline settings.

    Attributes:
        mode: ``boxes`` (detector boxes as prompts) or ``points`` (detector-free: points
            sampled along the gaze ray, one prompt set each, for comparison).
        num_points: points sampled along the ray in ``points`` mode.
        one_euro: ``(min_cutoff, beta, d_cutoff)`` of the One-Euro filters on the gaze
            yaw and pitch; ``None`` disables smoothing.
        hold_frames: frames for which the last target is kept when a frame yields none.
        selection: thresholds of the selection logic.
    """

    mode: Literal["boxes", "points"] = "boxes"
    num_points: int = 8
    one_euro: tuple[float, float, float] | None = (1.0, 0.05, 1.0)
    hold_frames: int = 1
    selection: SelectionConfig = field(default_factory=SelectionConfig)


class GazePipeline:
    """Find the object a person looks at, frame after frame.

    Args:
        predictor: a :class:`samedge.Predictor` (the SAM model).
        face_detector: ``detect(rgb) -> list[Face]``; the largest face is used.
        gaze_estimator: ``estimate(rgb, face) -> Gaze``.
        object_detector: ``detect(rgb) -> Detections``; required in ``boxes`` mode.
        depth_estimator: optional ``estimate(rgb) -> nearness H x W``; without it the depth
            filter is off (``GazeResult.depth_used`` is ``False``).
        config: :class:`GazeConfig`.
    """

    def __init__(
        self,
        predictor: Any,
        face_detector: Any,
        gaze_estimator: Any,
        object_detector: Any = None,
        depth_estimator: Any = None,
        config: GazeConfig = GazeConfig(),
    ) -> None:
        if config.mode == "boxes" and object_detector is None:
            raise ValueError("mode 'boxes' needs an object detector (or use mode 'points')")
        if config.mode not in ("boxes", "points"):
            raise ValueError(f"unknown mode {config.mode!r}: use 'boxes' or 'points'")
        self.predictor = predictor
        self.face_detector = face_detector
        self.gaze_estimator = gaze_estimator
        self.object_detector = object_detector
        self.depth_estimator = depth_estimator
        self.config = config
        self.stats = LatencyStats()
        self._filters = (
            None
            if config.one_euro is None
            else (OneEuroFilter(*config.one_euro), OneEuroFilter(*config.one_euro))
        )
        self._hold: HoldLast[Target] = HoldLast(config.hold_frames)
        self._clock = 0.0

    def reset(self) -> None:
        """Forget the temporal state (filters, held target, statistics)."""
        if self._filters:
            for f in self._filters:
                f.reset()
        self._hold.reset()
        self.stats = LatencyStats()

    def _smooth(self, gaze: Gaze, t: float) -> Gaze:
        if self._filters is None:
            return gaze
        yaw = self._filters[0](gaze.yaw, t)
        pitch = self._filters[1](gaze.pitch, t)
        vector = angles_to_vector(yaw, pitch)
        return dataclasses.replace(
            gaze, vector=vector, direction=image_direction(vector), yaw=yaw, pitch=pitch
        )

    def process(self, frame: np.ndarray, timestamp: float | None = None) -> GazeResult:
        """Run every stage on one ``H x W x 3`` uint8 RGB frame.

        Args:
            timestamp: seconds (for the One-Euro filter); default: wall clock.
        """
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise ValueError(f"frame must be H x W x 3 uint8 RGB, got {frame.dtype} {frame.shape}")
        t = time.monotonic() if timestamp is None else float(timestamp)
        latency: dict[str, float] = {}
        size = (int(frame.shape[0]), int(frame.shape[1]))
        start = time.perf_counter()
        detections = Detections.empty()
        kept = np.zeros(0, dtype=np.int64)
        face: Face | None = None
        gaze: Gaze | None = None
        target: Target | None = None
        points: np.ndarray | None = None
        reason = ""
        depth_used = False

        with timed(latency, "face"):
            faces = self.face_detector.detect(frame)
        if not faces:
            reason = "no face"
        else:
            face = faces[0]
            with timed(latency, "gaze"):
                gaze = self._smooth(self.gaze_estimator.estimate(frame, face), t)
            front = None
            if self.depth_estimator is not None:
                with timed(latency, "depth"):
                    near = self.depth_estimator.estimate(frame)
                    front = in_front(
                        near,
                        eye_nearness(near, gaze.origin),
                        self.config.selection.depth_margin,
                    )
                depth_used = True
            if not np.any(gaze.direction):
                reason = "the gaze points into the camera (no direction in the image)"
            elif self.config.mode == "boxes":
                with timed(latency, "detect"):
                    detections = self.object_detector.detect(frame)
                with timed(latency, "select"):
                    kept, dropped = filter_candidates(
                        detections, face.box, gaze, front, self.config.selection
                    )
                if len(detections) == 0:
                    reason = "no object detected"
                elif kept.size == 0:
                    reason = (
                        f"no candidate box (dropped: {dropped['self']} contain the face, "
                        f"{dropped['ray']} off the gaze ray, {dropped['depth']} behind the eyes)"
                    )
                else:
                    target, reason = self._segment_boxes(
                        frame, size, detections, kept, front, latency
                    )
            else:
                target, points, reason = self._segment_points(
                    frame, size, face, gaze, front, latency
                )

        held_target, held = self._hold.update(target)
        if held and held_target is not None:
            target = dataclasses.replace(held_target, held=True)
            reason = f"held from the previous frame ({reason})"
        latency["total"] = 1000 * (time.perf_counter() - start)
        latency = {k: round(v, 3) for k, v in latency.items()}
        self.stats.add(latency)
        return GazeResult(
            frame_size=size,
            face=face,
            gaze=gaze,
            detections=detections,
            kept=kept,
            target=target,
            reason="" if target is not None and not held else reason,
            latency_ms=latency,
            depth_used=depth_used,
            prompt_points=points,
        )

    def _segment_boxes(
        self,
        frame: np.ndarray,
        size: tuple[int, int],
        detections: Detections,
        kept: np.ndarray,
        front: np.ndarray | None,
        latency: dict[str, float],
    ) -> tuple[Target | None, str]:
        boxes = clip_boxes(detections.boxes[kept], size)
        with timed(latency, "encode"):
            embedding = self.predictor.encode(frame)
        with timed(latency, "decode"):
            pred = self.predictor.predict(embedding, boxes=boxes, multimask_output=False)
        with timed(latency, "select"):
            masks, scores = pred.masks[:, 0], pred.scores[:, 0]
            index, fills, reason = choose_mask(masks, scores, boxes, front, self.config.selection)
        if index is None:
            return None, reason
        det = int(kept[index])
        return (
            Target(
                box=boxes[index],
                mask=masks[index],
                iou_pred=float(scores[index]),
                fill=float(fills[index]),
                label=int(detections.labels[det]),
                name=detections.names[det] if detections.names else "",
                det_score=float(detections.scores[det]),
            ),
            "",
        )

    def _segment_points(
        self,
        frame: np.ndarray,
        size: tuple[int, int],
        face: Face,
        gaze: Gaze,
        front: np.ndarray | None,
        latency: dict[str, float],
    ) -> tuple[Target | None, np.ndarray | None, str]:
        with timed(latency, "select"):
            _, _, t_exit = ray_box_intersections(gaze.origin, gaze.direction, face.box[None])
            start = float(t_exit[0]) if np.isfinite(t_exit[0]) else 0.0
            points = points_along_ray(
                gaze.origin, gaze.direction, size, self.config.num_points, start=start
            )
        if len(points) == 0:
            return None, points, "the gaze ray leaves the image at the face"
        with timed(latency, "encode"):
            embedding = self.predictor.encode(frame)
        with timed(latency, "decode"):
            pred = self.predictor.predict(
                embedding,
                points=points[:, None, :],
                labels=np.ones((len(points), 1)),
                multimask_output=False,
            )
        with timed(latency, "select"):
            masks, scores = pred.masks[:, 0], pred.scores[:, 0]
            boxes = np.array([_mask_box(m) for m in masks], dtype=np.float64)
            usable = ~contains(boxes, face.box) & np.array([m.any() for m in masks])
            if not np.any(usable):
                return None, points, "every point mask is empty or contains the face"
            idx = np.flatnonzero(usable)
            index, fills, reason = choose_mask(
                masks[idx], scores[idx], boxes[idx], front, self.config.selection
            )
        if index is None:
            return None, points, reason
        i = int(idx[index])
        return (
            Target(
                box=boxes[i], mask=masks[i], iou_pred=float(scores[i]), fill=float(fills[index])
            ),
            points,
            "",
        )


def _mask_box(mask: np.ndarray) -> tuple[float, float, float, float]:
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return (0.0, 0.0, 0.0, 0.0)
    cols = np.flatnonzero(mask.any(axis=0))
    return (float(cols[0]), float(rows[0]), float(cols[-1] + 1), float(rows[-1] + 1))


def result_record(result: GazeResult, index: int, timestamp: float) -> dict[str, Any]:
    """One JSON-serialisable record (a JSONL line) describing ``result``."""

    def r(values: Any, nd: int = 2) -> Any:
        return np.round(np.asarray(values, dtype=np.float64), nd).tolist()

    target = result.target
    return {
        "type": "frame",
        "frame": index,
        "time_s": round(timestamp, 4),
        "size": list(result.frame_size),
        "face": None
        if result.face is None
        else {
            "box": r(result.face.box),
            "score": round(result.face.score, 4),
            "landmarks": None if result.face.landmarks is None else r(result.face.landmarks),
        },
        "gaze": None
        if result.gaze is None
        else {
            "origin": r(result.gaze.origin),
            "direction": r(result.gaze.direction, 4),
            "vector": r(result.gaze.vector, 4),
            "yaw": round(result.gaze.yaw, 2),
            "pitch": round(result.gaze.pitch, 2),
            "head_pose": None if result.gaze.head_pose is None else r(result.gaze.head_pose),
        },
        "detections": len(result.detections),
        "kept": [
            {
                "box": r(result.detections.boxes[i]),
                "name": result.detections.names[i] if result.detections.names else "",
                "score": round(float(result.detections.scores[i]), 4),
            }
            for i in result.kept
        ],
        "prompt_points": None if result.prompt_points is None else r(result.prompt_points),
        "depth": "on" if result.depth_used else "off (no depth model)",
        "chosen": None
        if target is None
        else {
            "box": r(target.box),
            "label": target.label,
            "name": target.name,
            "det_score": None if np.isnan(target.det_score) else round(target.det_score, 4),
            "iou_pred": round(target.iou_pred, 4),
            "fill": round(target.fill, 4),
            "held": target.held,
            "mask_rle": rle_encode(target.mask),
        },
        "reason": result.reason or None,
        "latency_ms": result.latency_ms,
    }


def annotate(frame: np.ndarray, result: GazeResult, alpha: float = 0.45) -> np.ndarray:
    """``frame`` (RGB) with the chosen mask blended from an RGBA layer, the face box, the
    candidate boxes (thin), the chosen box (thick) and the gaze arrow. Returns a new RGB array.
    """
    out = frame.copy()
    height, width = frame.shape[:2]
    thick = max(2, round(max(height, width) / 320))
    if result.target is not None:
        rgba = np.zeros((height, width, 4), dtype=np.uint8)
        colour = (255, 170, 0) if result.target.held else (30, 144, 255)
        rgba[result.target.mask, :3] = colour
        rgba[result.target.mask, 3] = round(255 * alpha)
        a = rgba[:, :, 3:4].astype(np.float32) / 255.0
        out = out.astype(np.float32) * (1 - a) + rgba[:, :, :3].astype(np.float32) * a + 0.5
        out = np.clip(out, 0, 255).astype(np.uint8)
    for i in result.kept:
        x0, y0, x1, y1 = (round(v) for v in result.detections.boxes[i])
        cv2.rectangle(out, (x0, y0), (x1, y1), (200, 200, 200), 1)
    if result.face is not None:
        x0, y0, x1, y1 = (round(v) for v in result.face.box)
        cv2.rectangle(out, (x0, y0), (x1, y1), (0, 200, 0), thick)
    if result.target is not None:
        x0, y0, x1, y1 = (round(v) for v in result.target.box)
        cv2.rectangle(out, (x0, y0), (x1, y1), (255, 60, 60), thick + 1)
        label = result.target.name or "target"
        cv2.putText(
            out, label, (x0 + 4, max(14, y0 - 6)), cv2.FONT_HERSHEY_SIMPLEX,
            0.5 * thick / 2 + 0.3, (255, 60, 60), max(1, thick // 2), cv2.LINE_AA,
        )  # fmt: skip
    if result.prompt_points is not None:
        for x, y in result.prompt_points:
            cv2.circle(out, (round(x), round(y)), thick + 2, (0, 220, 0), -1, cv2.LINE_AA)
    if result.gaze is not None:
        # Arrow length follows the gaze's in-image component: short when looking at the camera.
        length = 0.35 * min(height, width) * float(np.linalg.norm(result.gaze.vector[:2]))
        o = result.gaze.origin
        tip = o + result.gaze.direction * length
        cv2.arrowedLine(
            out, (round(o[0]), round(o[1])), (round(tip[0]), round(tip[1])), (255, 255, 0),
            thick, cv2.LINE_AA, tipLength=0.15,
        )  # fmt: skip
    return out
