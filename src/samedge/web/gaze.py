"""The Gaze tab's work, without Gradio: frames in, annotated pictures and stage times out.

The networks are loaded once per (SAM model, provider): SAM comes from the engine's
predictor pool, the face, gaze and object networks from
:func:`samedge.gaze.factory.build_pipeline`, found where the operator said (``samedge web
--face-model / --gaze-models / --detector``) or in ``$SAMEDGE_HOME/gaze``. Each browser
session gets its own :class:`~samedge.gaze.pipeline.GazePipeline` over those shared
networks, so one viewer's One-Euro filters and held target never mix with another's.

One frame runs at a time. A live frame that arrives while the pipeline is busy is dropped
and counted (the picture keeps the last result); the browser sends its next frame only once
the previous answer is back, so frames never queue up behind a slow SAM encoder. An
uploaded image waits for its turn and starts from a fresh state.
"""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal, cast

import numpy as np

from ..errors import ModelNotFoundError, PromptError
from ..imageio import load_image

if TYPE_CHECKING:
    from ..gaze.pipeline import GazeConfig, GazePipeline
    from ..gaze.types import GazeResult
    from .engine import Choice, Engine
    from .models import ModelEntry

#: Stages shown in the latency line, in pipeline order.
SHOWN_STAGES = ("face", "gaze", "detect", "encode", "decode")

#: What the command-line options are called, for the hint when a model is missing.
MODEL_OPTIONS = "samedge web --face-model / --gaze-models / --detector PATH"


@dataclass(frozen=True)
class GazeModels:
    """Where the auxiliary models are: the operator's paths (never the browser's).

    ``None`` means ``$SAMEDGE_HOME/gaze`` (filled by ``samedge gaze --fetch-models``).
    """

    face: str = "yunet"
    face_model: Path | None = None
    gaze_models: Path | None = None
    detector_model: Path | None = None
    backend: str | None = None  # samedge.gaze.backend.default_backend()

    def check(self) -> None:
        """Raise :class:`ModelNotFoundError` if an explicit path names no model file (the
        cache is only looked at when the tab is used)."""
        from ..gaze.models import resolve_aux_model

        if self.face_model is not None:
            resolve_aux_model(self.face, self.face_model)
        if self.gaze_models is not None:
            resolve_aux_model("gaze-estimation-adas-0002", self.gaze_models)
        if self.detector_model is not None:
            resolve_aux_model("yolox_nano", self.detector_model)


@dataclass(frozen=True)
class GazeSettings:
    """The tab's controls.

    Attributes:
        mode: ``boxes`` (detector boxes prompt SAM) or ``points`` (points on the gaze ray).
        min_iou: smallest predicted IoU a chosen mask may have.
    """

    mode: str = "boxes"
    min_iou: float = 0.5

    def __post_init__(self) -> None:
        if self.mode not in ("boxes", "points"):
            raise PromptError(f"gaze mode must be 'boxes' or 'points', got {self.mode!r}")
        if not 0.0 <= float(self.min_iou) <= 1.0:
            raise PromptError(f"minimum IoU must be in [0, 1], got {self.min_iou}")

    def config(self) -> GazeConfig:
        from ..gaze.pipeline import GazeConfig
        from ..gaze.select import SelectionConfig

        mode = cast(Literal["boxes", "points"], self.mode)  # checked in __post_init__
        return GazeConfig(mode=mode, selection=SelectionConfig(min_iou=float(self.min_iou)))


@dataclass(frozen=True, eq=False)
class GazeFrame:
    """What one frame shows.

    Attributes:
        picture: ``h x w x 3`` uint8 RGB: the frame with the chosen mask, boxes and gaze
            arrow, at most the engine's display size; ``None`` when there is nothing new to
            show (a dropped frame, or an error).
        message: one line of Markdown: per-stage times and FPS, the outcome, or the error.
        result: the pipeline's result, ``None`` when it did not run.
        dropped: the frame was skipped because the pipeline was busy.
    """

    picture: np.ndarray | None
    message: str
    result: GazeResult | None = None
    dropped: bool = False


@dataclass
class _Session:
    key: tuple[str, str, GazeSettings]
    pipeline: GazePipeline
    done: deque[float] = field(default_factory=lambda: deque(maxlen=10))
    dropped: int = 0

    def shown_fps(self) -> float | None:
        if len(self.done) < 2 or self.done[-1] <= self.done[0]:
            return None
        return (len(self.done) - 1) / (self.done[-1] - self.done[0])


def _ms(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:.1f} ms" if value < 10 else f"{value:.0f} ms"


def latency_line(result: GazeResult, shown_fps: float | None = None, dropped: int = 0) -> str:
    """``face 12 ms · gaze 3.1 ms · ... · total 31 ms (32 FPS)``; stages that did not run
    in this frame show ``–``; with ``shown_fps`` also the rate frames came back at."""
    ms = result.latency_ms
    parts = [f"{stage} **{_ms(ms.get(stage))}**" for stage in SHOWN_STAGES]
    total = ms.get("total", 0.0)
    fps = f"{1000 / total:.1f} FPS" if total > 0 else "–"
    line = " · ".join(parts) + f" · total **{_ms(total)}** ({fps})"
    if shown_fps is not None:
        line += f" · shown {shown_fps:.1f} frames/s"
    if dropped:
        line += f", {dropped} skipped while busy"
    return line


def outcome_line(result: GazeResult) -> str:
    """What the frame found: the chosen object, or why there is none."""
    target = result.target
    if target is None:
        return f"no target: {result.reason}"
    name = target.name or "object"
    held = " (held from the previous frame)" if target.held else ""
    return f"looking at **{name}** (predicted IoU {target.iou_pred:.2f}){held}"


class GazeService:
    """Runs the gaze pipeline for the web UI.

    Args:
        engine: supplies the SAM models (catalog, predictor pool, upload limits).
        models: where the face, gaze and detector networks are.
        max_sessions: browser sessions whose temporal state is kept (least recent dropped).
        max_pipelines: loaded network sets kept, one per (model, provider).
    """

    def __init__(
        self,
        engine: Engine,
        models: GazeModels | None = None,
        max_sessions: int = 8,
        max_pipelines: int = 2,
    ) -> None:
        self.engine = engine
        self.models = models or GazeModels()
        self.max_sessions = max(1, max_sessions)
        self.max_pipelines = max(1, max_pipelines)
        self._stages: OrderedDict[tuple[str, str], GazePipeline] = OrderedDict()
        self._sessions: OrderedDict[str, _Session] = OrderedDict()
        self._busy = threading.Lock()

    # -- networks ------------------------------------------------------------------------

    def stages(self, choice: Choice) -> tuple[ModelEntry, GazePipeline]:
        """The loaded networks for ``choice`` (built on first use); call with the lock held.

        Raises:
            SamedgeError: a model the server does not offer, a missing or wrong auxiliary
                model file (the message names the command or option that fixes it), or
                OpenVINO not installed.
        """
        from ..gaze.factory import build_pipeline

        entry, provider, predictor = self.engine.model(choice)
        key = (entry.key, provider)
        base = self._stages.get(key)
        if base is None:
            m = self.models
            try:
                base = build_pipeline(
                    predictor,
                    face=m.face,
                    face_model=m.face_model,
                    gaze="openvino",
                    gaze_models=m.gaze_models,
                    detector_model=m.detector_model,
                    backend=m.backend,
                    threads=self.engine.pool.threads,
                )
            except ModelNotFoundError as exc:
                raise ModelNotFoundError(f"{exc} ({MODEL_OPTIONS})") from None
            self._stages[key] = base
        self._stages.move_to_end(key)
        while len(self._stages) > self.max_pipelines:
            self._stages.popitem(last=False)
        return entry, base

    def _pipeline(self, base: GazePipeline, settings: GazeSettings) -> GazePipeline:
        from ..gaze.pipeline import GazePipeline

        return GazePipeline(
            base.predictor,
            base.face_detector,
            base.gaze_estimator,
            base.object_detector,
            base.depth_estimator,
            settings.config(),
        )

    def _session(
        self, session: str, key: tuple[str, str, GazeSettings], base: GazePipeline
    ) -> _Session:
        state = self._sessions.get(session)
        if state is None or state.key != key:
            state = _Session(key, self._pipeline(base, key[2]))
            self._sessions[session] = state
        self._sessions.move_to_end(session)
        while len(self._sessions) > self.max_sessions:
            self._sessions.popitem(last=False)
        return state

    # -- frames --------------------------------------------------------------------------

    def frame(
        self,
        frame: np.ndarray,
        choice: Choice,
        settings: GazeSettings,
        session: str = "",
        timestamp: float | None = None,
        wait: bool = False,
    ) -> GazeFrame:
        """One live frame (``H x W x 3`` uint8 RGB) of ``session``'s stream.

        Args:
            timestamp: seconds, for the gaze smoothing (default: the server's clock).
            wait: wait for a busy pipeline instead of dropping the frame.

        Raises:
            SamedgeError: see :meth:`stages`; an unreadable frame.
        """
        pixels = load_image(frame)
        if not self._busy.acquire(blocking=wait):
            state = self._sessions.get(session)
            if state is not None:
                state.dropped += 1
            return GazeFrame(None, "", dropped=True)
        try:
            entry, base = self.stages(choice)
            state = self._session(session, (entry.key, choice.provider or "", settings), base)
            t = time.monotonic() if timestamp is None else timestamp
            result = state.pipeline.process(pixels, timestamp=t)
            state.done.append(time.monotonic())
            picture = self._picture(pixels, result)
            message = (
                f"{latency_line(result, state.shown_fps(), state.dropped)}  \n"
                f"{outcome_line(result)} · {self._describe(entry, base)}"
            )
        finally:
            self._busy.release()
        return GazeFrame(picture, message, result)

    def image(
        self,
        path: str | os.PathLike[str],
        original_name: str | None,
        choice: Choice,
        settings: GazeSettings,
    ) -> GazeFrame:
        """One uploaded image (checked like any upload), processed from a fresh state.

        Raises:
            SamedgeError: see :meth:`stages`; an upload that is not an acceptable image.
        """
        pixels = self.engine.load(path, original_name).pixels
        with self._busy:
            entry, base = self.stages(choice)
            result = self._pipeline(base, settings).process(pixels, timestamp=0.0)
            picture = self._picture(pixels, result)
        height, width = pixels.shape[:2]
        message = (
            f"{width}x{height} image · {latency_line(result)}  \n"
            f"{outcome_line(result)} · {self._describe(entry, base)}"
        )
        return GazeFrame(picture, message, result)

    def _picture(self, pixels: np.ndarray, result: GazeResult) -> np.ndarray:
        import cv2

        from ..gaze.pipeline import annotate

        picture = annotate(pixels, result)
        height, width = picture.shape[:2]
        scale = self.engine.max_display_side / max(height, width)
        if scale < 1.0:
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            picture = cv2.resize(picture, size, interpolation=cv2.INTER_AREA)
        return picture

    def _describe(self, entry: ModelEntry, base: GazePipeline) -> str:
        return self.engine.describe(entry, base.predictor)
