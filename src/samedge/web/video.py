"""The Video tab's work, without Gradio: one clip per browser session, tracked with SAM 2.1.

A :class:`VideoService` keeps one :class:`VideoSession` per browser session. A session owns a
folder inside the app's temporary folder (``Engine.out_dir / "video" / <hashed session>``):
the uploaded clip is moved there, the downloads are written there, and the folder is deleted
when the browser tab closes, when the session has been idle for ``idle_timeout_s``, or when
the server stops. Frames are decoded from the upload when they are needed
(:func:`samedge.video.io.open_video`), never all held at once; tracked masks are kept per
frame and object as zlib-compressed bit planes (:class:`PackedMask`), a few kilobytes each.

Tracking follows the official ``SAM2VideoPredictor``: a click adds a prompt to the clicked
frame (a frame already tracked is corrected, its tracked mask feeding the decoder), and a
propagation starts from the earliest frame prompted since the last complete pass (the
latest, backward), so a correction re-tracks from the corrected frame on and the frames
before it keep their masks. Downloads are written by :class:`samedge.video.writers.TrackWriter`,
the writer of ``samedge track``: the same PNG masks, overlay video, matte and JSON.
"""

from __future__ import annotations

import builtins
import contextlib
import hashlib
import os
import shutil
import threading
import time
import zipfile
import zlib
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from ..artifacts import export_name
from ..errors import ImageError, PromptError, SamedgeError
from ..visualize import color_for, overlay
from .uploads import MB, display_name, safe_stem

if TYPE_CHECKING:
    from ..video import FrameResult, TrackingState, VideoPredictor
    from ..video.io import FrameFolder, VideoFile
    from .engine import Choice, Engine

#: Longest side of the frame picture sent to the browser (clicks map back to frame pixels).
DISPLAY_SIDE = 960
#: Frames an upload may have: 20 s at 30 frames/s. The tracking history of every frame is
#: kept for corrections, about 0.8 MB per frame and object for SAM 2.1.
DEFAULT_MAX_VIDEO_FRAMES = 600
DEFAULT_MAX_VIDEO_PIXELS = 1920 * 1080
DEFAULT_IDLE_TIMEOUT_S = 1800.0
MAX_OBJECTS = 8
MAX_POINTS = 64
#: File name endings kept for the stored upload (FFmpeg reads the content, not the name).
VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg")
_FORMATS = "MP4, MOV, AVI, MKV or WebM"

Direction = Literal["forward", "backward", "both"]
DIRECTIONS: tuple[str, ...] = ("forward", "backward", "both")
ClickKind = Literal["positive", "negative", "corner"]


def session_key(session: str) -> str:
    """The folder name of a browser session: its id comes from the browser, so it is hashed
    rather than used in a path."""
    return hashlib.sha256(session.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class VideoLimits:
    """What an upload may be: file size, frame count, pixels per frame."""

    max_bytes: int = 200 * MB
    max_frames: int = DEFAULT_MAX_VIDEO_FRAMES
    max_pixels: int = DEFAULT_MAX_VIDEO_PIXELS

    def __post_init__(self) -> None:
        if min(self.max_bytes, self.max_frames, self.max_pixels) < 1:
            raise ValueError(f"video limits must be positive, got {self}")


@dataclass(frozen=True)
class PackedMask:
    """One object's mask on one frame, stored compactly.

    Attributes:
        shape: ``(H, W)`` of the mask.
        data: ``zlib`` of ``np.packbits`` of the mask (row-major, 8 pixels per byte).
        score: the tracker's object-presence logit (``> 0``: present).
    """

    shape: tuple[int, int]
    data: bytes
    score: float

    @classmethod
    def pack(cls, mask: np.ndarray, score: float) -> PackedMask:
        mask = np.asarray(mask, dtype=bool)
        if mask.ndim != 2:
            raise ValueError(f"a mask is H x W, got shape {mask.shape}")
        data = zlib.compress(np.packbits(mask, axis=None).tobytes(), 1)
        return cls((int(mask.shape[0]), int(mask.shape[1])), data, float(score))

    def unpack(self) -> np.ndarray:
        """The ``H x W`` bool mask."""
        height, width = self.shape
        bits = np.frombuffer(zlib.decompress(self.data), dtype=np.uint8)
        return np.unpackbits(bits, count=height * width).reshape(height, width).astype(bool)


class ResultStore:
    """Tracked masks per frame and object; a later result for a frame replaces the earlier one."""

    def __init__(self) -> None:
        self._frames: dict[int, dict[int, PackedMask]] = {}

    def put(self, result: FrameResult) -> None:
        scores = np.asarray(result.object_scores, dtype=np.float32).reshape(-1)
        entry = self._frames.setdefault(int(result.frame_index), {})
        for k, obj in enumerate(result.object_ids):
            entry[int(obj)] = PackedMask.pack(result.masks[k], float(scores[k]))

    def get(self, frame: int) -> dict[int, PackedMask]:
        return dict(self._frames.get(frame, {}))

    def frames(self) -> list[int]:
        return sorted(i for i, entry in self._frames.items() if entry)

    def drop_object(self, obj: int) -> None:
        for entry in self._frames.values():
            entry.pop(obj, None)

    def clear(self) -> None:
        self._frames.clear()

    def nbytes(self) -> int:
        """Bytes of stored mask data (for the status line)."""
        return sum(len(p.data) for entry in self._frames.values() for p in entry.values())

    def frame_result(self, frame: int) -> FrameResult:
        """The stored objects of ``frame`` as a :class:`~samedge.video.FrameResult` (what the
        writers take); logits are not kept, so ``low_res_logits`` is ``O x 0 x 0``."""
        from ..video import FrameResult

        entry = self._frames.get(frame, {})
        ids = tuple(sorted(entry))
        if ids:
            masks = np.stack([entry[o].unpack() for o in ids])
        else:
            masks = np.zeros((0, 0, 0), dtype=bool)
        scores = np.array([entry[o].score for o in ids], dtype=np.float32)
        return FrameResult(frame, ids, masks, np.zeros((len(ids), 0, 0), np.float32), scores)


@dataclass
class ObjectPrompts:
    """The clicks given to one object on one frame (frame pixels): what one
    ``VideoPredictor.add_prompt`` call receives (it replaces the earlier ones, as the
    official ``add_new_points_or_box`` does with ``clear_old_points``)."""

    points: list[tuple[float, float]] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    box: tuple[float, float, float, float] | None = None

    def kwargs(self) -> dict[str, Any]:
        """``points`` ``(N, 2)`` float32 / ``labels`` ``(N,)`` int32 / ``box`` ``(4,)``
        float32, or ``None``: the arrays ``samedge track`` passes for the same prompts."""
        return {
            "points": np.array(self.points, np.float32) if self.points else None,
            "labels": np.array(self.labels, np.int32) if self.points else None,
            "box": None if self.box is None else np.array(self.box, np.float32),
        }


@dataclass(frozen=True)
class VideoObject:
    """One object of the session: its id for the tracker, a name and its colour (RGB)."""

    obj_id: int
    name: str

    @property
    def color(self) -> tuple[int, int, int]:
        return color_for(self.obj_id - 1)


@dataclass(frozen=True)
class PropagationProgress:
    """Where a propagation is, after each tracked frame.

    Attributes:
        done: frames tracked so far in this propagation.
        total: frames it tracks when it is not stopped.
        frame_index: the frame just tracked.
        seconds_per_frame: mean wall time per frame so far.
        finished: the propagation is over (complete, or stopped when ``stopped``).
        stopped: the user pressed Stop.
    """

    done: int
    total: int
    frame_index: int
    seconds_per_frame: float
    finished: bool = False
    stopped: bool = False

    def line(self) -> str:
        """``12 / 40 frames · 850 ms/frame`` (and how it ended)."""
        text = f"{self.done} / {self.total} frames · {1000 * self.seconds_per_frame:.0f} ms/frame"
        if self.stopped:
            text += f" · stopped after frame {self.frame_index}"
        elif self.finished:
            text += " · done"
        return text


@dataclass(frozen=True)
class VideoDownloads:
    """The files of one download build (all inside the session's folder).

    Attributes:
        masks_zip: ``masks/obj<ID>/NNNNN.png`` per object and tracked frame (0/255).
        overlay: the clip with each object tinted in its colour (MPEG-4).
        matte_zip: ``matte/obj<ID>.mov`` per object, lossless grey matte (white = object).
        track_json: the JSON ``samedge track`` writes (prompts, per frame scores and RLE).
        frames: how many frames the files cover.
    """

    masks_zip: Path
    overlay: Path
    matte_zip: Path
    track_json: Path
    frames: int


def _probe(path: Path) -> tuple[int, int, int]:
    """``(width, height, frame count from the header)``; zeros when OpenCV cannot open it."""
    import cv2

    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    try:
        if not cap.isOpened():
            return 0, 0, 0
        return (
            int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)),
            int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)),
            max(0, int(cap.get(cv2.CAP_PROP_FRAME_COUNT))),
        )
    finally:
        cap.release()


class LockedFrames:
    """A frame source read by one thread at a time: the tracker, the slider and the
    download writer share one decoder (a :class:`~samedge.video.io.VideoFile` is not
    thread-safe)."""

    def __init__(self, source: VideoFile | FrameFolder) -> None:
        self._source = source
        self._lock = threading.Lock()

    @property
    def size(self) -> tuple[int, int]:
        return self._source.size

    @property
    def fps(self) -> float:
        return self._source.fps

    def __len__(self) -> int:
        return len(self._source)

    def __getitem__(self, index: int) -> np.ndarray:
        with self._lock:
            return self._source[index]

    def __iter__(self) -> Iterator[np.ndarray]:
        for index in range(len(self)):
            yield self[index]

    def close(self) -> None:
        with self._lock:
            self._source.close()


class VideoSession:
    """One browser session's clip, objects, prompts, tracking state and results.

    Not thread-safe by itself: :class:`VideoService` hands a session to one action at a
    time, except :meth:`stop` (a flag a running propagation reads between frames).
    """

    def __init__(
        self,
        folder: Path,
        source: VideoFile | FrameFolder,
        name: str,
        display_side: int = DISPLAY_SIDE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.folder = folder
        self.source = LockedFrames(source)
        self.name = name  # file-name-safe stem of the upload, for downloads
        width, height = source.size
        self.scale = min(1.0, display_side / max(width, height))
        self.objects: list[VideoObject] = [VideoObject(1, "object 1")]
        self._next_id = 2
        self.prompts: dict[tuple[int, int], ObjectPrompts] = {}  # (frame, obj), in order given
        self.corner: tuple[int, int, float, float] | None = None  # (frame, obj, x, y)
        self.results = ResultStore()
        self.state: TrackingState | None = None
        self.model_key: str | None = None
        self.model_label = ""
        self.dirty: set[int] = set()  # frames prompted since the last complete pass
        self.tracked: set[tuple[int, int]] = set()  # (frame, object) reached by propagation
        self.corrected: set[int] = set()  # frames clicked after they were tracked
        self.direction: str = "forward"
        self.clock = clock
        self.last_used = clock()
        self.busy = threading.Lock()
        self._stop = threading.Event()
        self.closed = False

    # -- the clip --------------------------------------------------------------------------

    @property
    def frame_count(self) -> int:
        return len(self.source)

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)`` of the frames."""
        return self.source.size

    def describe(self) -> str:
        width, height = self.size
        fps = f", {self.source.fps:.3g} frames/s" if self.source.fps else ""
        return f"{self.frame_count} frames, {width}x{height}{fps}"

    def check_frame(self, index: int) -> int:
        index = int(index)
        if not 0 <= index < self.frame_count:
            raise PromptError(f"frame {index} is outside 0..{self.frame_count - 1}")
        return index

    def frame(self, index: int) -> np.ndarray:
        """Frame ``index`` as ``H x W x 3`` uint8 RGB, decoded from the upload."""
        return self.source[self.check_frame(index)]

    def to_frame(self, x: float, y: float) -> tuple[float, float]:
        """A click on the displayed picture in frame pixels (clamped to the frame)."""
        if not (np.isfinite(x) and np.isfinite(y)):
            raise PromptError(f"click position ({x}, {y}) is not a number")
        width, height = self.size
        fx = min(max(float(x) / self.scale, 0.0), float(width - 1))
        fy = min(max(float(y) / self.scale, 0.0), float(height - 1))
        return round(fx, 1), round(fy, 1)

    # -- objects ---------------------------------------------------------------------------

    def object(self, obj_id: int) -> VideoObject:
        for obj in self.objects:
            if obj.obj_id == int(obj_id):
                return obj
        raise PromptError(f"there is no object {obj_id}; add one or pick one from the list")

    def add_object(self, name: str | None = None) -> VideoObject:
        if len(self.objects) >= MAX_OBJECTS:
            raise PromptError(f"at most {MAX_OBJECTS} objects; remove one first")
        obj = VideoObject(self._next_id, _clean_name(name) or f"object {self._next_id}")
        self._next_id += 1
        self.objects.append(obj)
        return obj

    def rename_object(self, obj_id: int, name: str) -> VideoObject:
        old = self.object(obj_id)
        clean = _clean_name(name)
        if not clean:
            raise PromptError("type a name for the object first")
        new = VideoObject(old.obj_id, clean)
        self.objects[self.objects.index(old)] = new
        return new

    def remove_object(self, obj_id: int, predictor: VideoPredictor | None = None) -> None:
        """Forget an object: its prompts, its masks and its place in the tracking state."""
        obj = self.object(obj_id)
        if self.state is not None and predictor is not None and self._has_prompts(obj.obj_id):
            predictor.remove_object(self.state, obj.obj_id)
        self.objects.remove(obj)
        self.prompts = {k: v for k, v in self.prompts.items() if k[1] != obj.obj_id}
        self.results.drop_object(obj.obj_id)
        self.tracked = {t for t in self.tracked if t[1] != obj.obj_id}
        if self.corner is not None and self.corner[1] == obj.obj_id:
            self.corner = None

    def _has_prompts(self, obj_id: int) -> bool:
        return any(k[1] == obj_id for k in self.prompts)

    # -- prompts and tracking --------------------------------------------------------------

    def bind(self, predictor: VideoPredictor, model_key: str, label: str) -> None:
        """Use ``predictor`` (the model ``model_key``): a new model starts a new tracking
        state and gives it every prompt again, in the order they were given."""
        if self.state is not None and self.model_key == model_key:
            return
        self.results.clear()
        # The whole history is kept so that any tracked frame can be corrected (about
        # 0.8 MB per frame and object; the frame limit bounds it).
        self.state = predictor.init_state(
            frame_size=self.size, num_frames=self.frame_count, keep_history=True
        )
        self.tracked.clear()
        self.corrected.clear()
        self.model_key, self.model_label = model_key, label
        for (frame, obj), given in self.prompts.items():
            result = predictor.add_prompt(
                self.state, frame, self.frame(frame), obj, **given.kwargs()
            )
            self.results.put(result)
        self.dirty = {frame for frame, _ in self.prompts}

    def click(
        self,
        predictor: VideoPredictor,
        frame: int,
        obj_id: int,
        kind: str,
        x: float,
        y: float,
    ) -> FrameResult | None:
        """One click in frame pixels for object ``obj_id`` on ``frame``.

        ``positive`` / ``negative`` add a point; ``corner`` is half a box (the second corner
        on the same frame and object completes it; a new box replaces the object's box on
        that frame). Returns the masks of every object on that frame, ``None`` after a first
        corner.
        """
        frame = self.check_frame(frame)
        obj = self.object(obj_id).obj_id
        if kind not in ("positive", "negative", "corner"):
            raise PromptError(f"a click is positive, negative or corner, not {kind!r}")
        given = self.prompts.get((frame, obj), ObjectPrompts())
        if kind == "corner":
            if self.corner is None or self.corner[:2] != (frame, obj):
                self.corner = (frame, obj, x, y)
                return None
            _, _, cx, cy = self.corner
            self.corner = None
            if cx == x or cy == y:
                raise PromptError("a box needs two different corners; click the first again")
            box = (min(cx, x), min(cy, y), max(cx, x), max(cy, y))
            new = ObjectPrompts(list(given.points), list(given.labels), box)
        else:
            if len(given.points) >= MAX_POINTS:
                raise PromptError(f"at most {MAX_POINTS} points per object and frame")
            label = 1 if kind == "positive" else 0
            new = ObjectPrompts([*given.points, (x, y)], [*given.labels, label], given.box)
        assert self.state is not None, "bind() a predictor first"
        result = predictor.add_prompt(self.state, frame, self.frame(frame), obj, **new.kwargs())
        self.prompts.pop((frame, obj), None)
        self.prompts[(frame, obj)] = new  # last given last: the replay order
        self.results.put(result)
        self.dirty.add(frame)
        if (frame, obj) in self.tracked:
            self.corrected.add(frame)
        return result

    def passes(self, direction: str) -> list[tuple[int, bool, int, int]]:
        """``(start frame, reverse, max_frames, frames)`` of each tracker call of a
        propagation.

        Forward starts at the earliest frame prompted since the last complete propagation
        (the earliest prompted frame when none is new), backward at the latest; ``both`` is
        backward, then forward, as ``samedge track --both``. Frames corrected after they
        were tracked are stepped over (the passes stop before them and resume after them):
        tracking over such a frame would replace the correction, which is not a
        conditioning frame for SAM 2.1 (``add_all_frames_to_correct_as_cond`` is off), while
        the frames after it use its corrected memory.
        """
        if direction not in DIRECTIONS:
            raise PromptError(f"direction must be one of {', '.join(DIRECTIONS)}")
        prompted = sorted({frame for frame, _ in self.prompts})
        if not prompted:
            raise PromptError("click an object on some frame first, then propagate")
        changed = sorted(self.dirty) or prompted
        first, last = changed[0], changed[-1]
        backward = self._runs(range(last, -1, -1), True)
        forward = self._runs(range(first, self.frame_count), False)
        return {"forward": forward, "backward": backward, "both": backward + forward}[direction]

    def _runs(self, order: range, reverse: bool) -> list[tuple[int, bool, int, int]]:
        runs: list[tuple[int, bool, int, int]] = []
        start = None
        count = 0
        for index in [*order, None]:
            if index is None or index in self.corrected:
                if start is not None:
                    runs.append((start, reverse, count - 1, count))
                start, count = None, 0
                continue
            if start is None:
                start = index
            count += 1
        # Backward from frame 0 the tracker has nothing to do (as officially).
        return [run for run in runs if not (reverse and run[0] == 0)]

    def propagate(
        self, predictor: VideoPredictor, direction: str = "forward"
    ) -> Iterator[PropagationProgress]:
        """Track every object through the clip (see :meth:`passes`), yielding after each
        frame; :meth:`stop` ends it after the current frame. Masks of frames not reached
        stay as they were."""
        plan = self.passes(direction)
        assert self.state is not None, "bind() a predictor first"
        total = sum(n for *_, n in plan)
        self._stop.clear()
        self.direction = direction
        done, started, index = 0, time.perf_counter(), plan[0][0] if plan else 0
        for start, reverse, limit, _ in plan:
            frames = predictor.propagate(
                self.state, self.source, start_frame=start, reverse=reverse, max_frames=limit
            )
            try:
                for result in frames:
                    self.results.put(result)
                    self.tracked.update((int(result.frame_index), o) for o in result.object_ids)
                    done, index = done + 1, int(result.frame_index)
                    self.last_used = self.clock()
                    spf = (time.perf_counter() - started) / done
                    if self._stop.is_set():
                        yield PropagationProgress(done, total, index, spf, True, True)
                        return
                    yield PropagationProgress(done, total, index, spf)
            finally:
                close = getattr(frames, "close", None)
                if close is not None:
                    close()
        self.dirty.clear()
        spf = (time.perf_counter() - started) / max(done, 1)
        yield PropagationProgress(done, total, index, spf, finished=True)

    def stop(self) -> None:
        """Ask a running propagation to end after its current frame."""
        self._stop.set()

    @contextlib.contextmanager
    def using(self) -> Iterator[VideoSession]:
        """Hold the session for one action (a propagation holds it until it ends).

        Raises:
            SamedgeError: another action (a propagation) is running on this session.
        """
        if not self.busy.acquire(blocking=False):
            raise SamedgeError("a propagation is running: wait for it or press Stop")
        try:
            self.last_used = self.clock()
            yield self
        finally:
            self.busy.release()

    # -- pictures and files ----------------------------------------------------------------

    def picture(self, index: int) -> np.ndarray:
        """Frame ``index`` at display scale with every object's mask in its colour, the
        clicks on this frame (green positive, red negative), boxes and a pending corner."""
        import cv2

        frame = self.frame(index)
        width, height = self.size
        shown = (max(1, round(width * self.scale)), max(1, round(height * self.scale)))
        small = cv2.resize(frame, shown, interpolation=cv2.INTER_AREA) if self.scale < 1 else frame
        stored = self.results.get(index)
        masks: list[np.ndarray] = []
        for obj_id in range(1, max((o.obj_id for o in self.objects), default=0) + 1):
            packed = stored.get(obj_id)
            if packed is None:
                masks.append(np.zeros(small.shape[:2], dtype=bool))
                continue
            mask = packed.unpack()
            if self.scale < 1:
                mask = cv2.resize(mask.astype(np.uint8), shown, interpolation=cv2.INTER_NEAREST) > 0
            masks.append(mask)
        points, labels = self.marks().get(index, (None, None))
        canvas = overlay(
            small,
            masks,
            points=None if points is None else points * self.scale,
            labels=labels,
        )
        thickness = max(2, round(max(shown) / 300))
        for (frame_index, obj), given in self.prompts.items():
            if frame_index == index and given.box is not None:
                x0, y0, x1, y1 = (round(v * self.scale) for v in given.box)
                cv2.rectangle(canvas, (x0, y0), (x1, y1), color_for(obj - 1), thickness)
        if self.corner is not None and self.corner[0] == index:
            x, y = round(self.corner[2] * self.scale), round(self.corner[3] * self.scale)
            size = max(12, round(max(shown) / 60))
            colour = color_for(self.corner[1] - 1)
            cv2.drawMarker(canvas, (x, y), (255, 255, 255), cv2.MARKER_CROSS, size + 4, 5)
            cv2.drawMarker(canvas, (x, y), colour, cv2.MARKER_CROSS, size, 2)
        return canvas

    def marks(self) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        """Per frame, the clicks of every object: ``(points (N, 2), labels (N,))``."""
        out: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        for (frame, _), given in sorted(self.prompts.items()):
            if not given.points:
                continue
            pts = np.array(given.points, np.float64)
            lbl = np.array(given.labels, np.int32)
            if frame in out:
                pts, lbl = np.vstack([out[frame][0], pts]), np.concatenate([out[frame][1], lbl])
            out[frame] = (pts, lbl)
        return out

    # builtins.object: in this class, `object` is the method VideoSession.object.
    def prompt_records(self) -> list[dict[str, builtins.object]]:
        """The prompts as ``samedge track`` writes them in its JSON (frame, then object)."""
        from ..video.prompts import ObjectPrompt

        return [
            ObjectPrompt(frame=frame, obj=obj, **given.kwargs()).to_json()
            for (frame, obj), given in sorted(self.prompts.items())
        ]

    def downloads(
        self, model: str, progress: Callable[[int], None] | None = None
    ) -> VideoDownloads:
        """Write the tracked frames as ``samedge track`` does and package them.

        Raises:
            SamedgeError: nothing has been tracked yet.
        """
        from ..video.writers import TrackWriter

        frames = self.results.frames()
        if not frames:
            raise SamedgeError("nothing tracked yet: click an object, then Propagate")
        width, height = self.size
        header = {
            "samedge_track": 1,
            "model": model,
            "source": {
                "path": self.name,
                "kind": "video",
                "width": width,
                "height": height,
                "fps": self.source.fps,
                "frames": self.frame_count,
            },
            "direction": self.direction,
            "max_frames": None,
            "prompts": self.prompt_records(),
        }
        out_dir = self.folder / "downloads"
        track = out_dir / "track"
        ids = [o.obj_id for o in self.objects]
        with TrackWriter(
            track, self.source, ids, header, alpha="matte", marks=self.marks()
        ) as writer:
            for index in frames:
                writer.add(self.results.frame_result(index))
            summary = writer.finish({"tool": "samedge web"}, progress=progress)
        stem = self.name
        masks_zip = out_dir / f"{stem}-masks.zip"
        matte_zip = out_dir / f"{stem}-matte.zip"
        _zip_folder(track, "masks", masks_zip)
        _zip_folder(track, "matte", matte_zip)
        overlay_path = out_dir / f"{stem}-overlay.mp4"
        json_path = out_dir / f"{stem}-track.json"
        shutil.copyfile(track / "overlay.mp4", overlay_path)
        shutil.copyfile(track / "track.json", json_path)
        return VideoDownloads(masks_zip, overlay_path, matte_zip, json_path, summary["frames"])

    def close(self) -> None:
        """Stop tracking, release the decoder and delete the session's folder."""
        self._stop.set()
        self.state = None
        self.results.clear()
        self.source.close()
        shutil.rmtree(self.folder, ignore_errors=True)
        self.closed = True


def _clean_name(name: str | None) -> str:
    text = "".join(ch for ch in (name or "") if ch.isprintable()).strip()
    return text[:40]


def _zip_folder(root: Path, sub: str, dest: Path) -> None:
    """``root/sub/**`` into ``dest`` (paths inside start with ``sub/``), written atomically."""
    tmp = dest.with_name(dest.name + ".tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as zf:
        for path in sorted((root / sub).rglob("*")):
            if path.is_file():
                zf.write(path, path.relative_to(root).as_posix())
    os.replace(tmp, dest)


class VideoService:
    """The Video tab's sessions and the tracking models they use.

    Args:
        engine: the web engine (model catalog, temporary folder, upload limit).
        limits: what an uploaded clip may be (default: the engine's upload size,
            :data:`DEFAULT_MAX_VIDEO_FRAMES`, :data:`DEFAULT_MAX_VIDEO_PIXELS`).
        idle_timeout_s: a session untouched this long is closed by :meth:`sweep`.
        display_side: longest side of the pictures sent to the browser.
        clock: ``time.monotonic`` (tests pass their own).
    """

    def __init__(
        self,
        engine: Engine,
        limits: VideoLimits | None = None,
        idle_timeout_s: float = DEFAULT_IDLE_TIMEOUT_S,
        display_side: int = DISPLAY_SIDE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.engine = engine
        self.limits = limits or VideoLimits(max_bytes=engine.max_upload_bytes)
        self.idle_timeout_s = float(idle_timeout_s)
        self.display_side = display_side
        self.clock = clock
        self.root = Path(engine.out_dir) / "video"
        self._sessions: dict[str, VideoSession] = {}
        self._lock = threading.Lock()
        self._predictors: OrderedDict[tuple[str, str], VideoPredictor] = OrderedDict()
        self._predictor_lock = threading.Lock()
        self._sweeper: threading.Thread | None = None
        self._halt = threading.Event()

    # -- sessions --------------------------------------------------------------------------

    def open(
        self, session: str, path: str | os.PathLike[str], original_name: str | None
    ) -> VideoSession:
        """Check an upload against the limits, move it into the session's folder and open it.

        The session's previous clip (if any) is closed first. On any refusal the upload and
        the folder are deleted.

        Raises:
            ImageError: too large, too long, too many pixels per frame, or not a video (one
                line naming the upload as the user called it, never a server path).
        """
        from ..video.io import open_video

        self.close(session)
        name = display_name(original_name)
        upload = Path(path)
        try:
            size = upload.stat().st_size
        except OSError:
            raise ImageError(f"{name} could not be received; upload it again") from None
        folder = self.root / session_key(session)
        try:
            if size > self.limits.max_bytes:
                raise ImageError(
                    f"{name} is {size / MB:.1f} MB, more than this server's video limit of "
                    f"{self.limits.max_bytes / MB:g} MB; upload a shorter or smaller clip"
                )
            if size == 0:
                raise ImageError(f"{name} is empty; upload a {_FORMATS} video")
            folder.mkdir(parents=True, exist_ok=True)
            suffix = Path(name).suffix.lower()
            stored = folder / f"upload{suffix if suffix in VIDEO_SUFFIXES else '.video'}"
            shutil.move(os.fspath(upload), stored)
            width, height, header_frames = _probe(stored)
            if width * height == 0:
                raise ImageError(f"{name} is not a video this server can read; upload {_FORMATS}")
            self._check_pixels(name, width, height)
            if header_frames > 2 * self.limits.max_frames:  # refuse before decoding it all
                raise ImageError(self._too_long(name, header_frames))
            try:
                source = open_video(stored)
            except ImageError as exc:
                raise ImageError(str(exc).replace(os.fspath(stored), name)) from None
            if len(source) > self.limits.max_frames:
                source.close()
                raise ImageError(self._too_long(name, len(source)))
            self._check_pixels(name, *source.size)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            upload.unlink(missing_ok=True)
            raise
        video = VideoSession(
            folder, source, safe_stem(original_name), self.display_side, self.clock
        )
        with self._lock:
            self._sessions[session_key(session)] = video
        return video

    def _check_pixels(self, name: str, width: int, height: int) -> None:
        if width * height > self.limits.max_pixels:
            raise ImageError(
                f"{name} is {width}x{height}, more than this server's video limit of "
                f"{self.limits.max_pixels / 1e6:.1f} megapixels per frame; downscale it "
                f"(e.g. ffmpeg -i IN -vf scale=-2:720 OUT)"
            )

    def _too_long(self, name: str, frames: int) -> str:
        return (
            f"{name} has {frames} frames, more than this server's limit of "
            f"{self.limits.max_frames}; cut it shorter (e.g. ffmpeg -i IN -frames:v "
            f"{self.limits.max_frames} OUT)"
        )

    def get(self, session: str) -> VideoSession:
        """The session's clip (and mark it used).

        Raises:
            SamedgeError: no clip was uploaded in this session (or it timed out).
        """
        with self._lock:
            video = self._sessions.get(session_key(session))
        if video is None or video.closed:
            raise SamedgeError("upload a video first (an idle session's clip is deleted)")
        video.last_used = self.clock()
        return video

    def close(self, session: str) -> None:
        """Drop the session's clip and delete its files (nothing if there is none)."""
        with self._lock:
            video = self._sessions.pop(session_key(session), None)
        if video is not None:
            video.close()
        shutil.rmtree(self.root / session_key(session), ignore_errors=True)

    def sweep(self) -> int:
        """Close sessions idle longer than ``idle_timeout_s`` (a running propagation keeps
        its session alive); returns how many were closed."""
        now = self.clock()
        with self._lock:
            idle = [
                key
                for key, video in self._sessions.items()
                if now - video.last_used > self.idle_timeout_s and not video.busy.locked()
            ]
            dropped = [self._sessions.pop(key) for key in idle]
        for video in dropped:
            video.close()
        return len(dropped)

    def start_sweeper(self, every_s: float = 60.0) -> None:
        """Run :meth:`sweep` every ``every_s`` seconds in a daemon thread."""
        if self._sweeper is not None:
            return

        def loop() -> None:
            while not self._halt.wait(every_s):
                self.sweep()

        self._sweeper = threading.Thread(target=loop, name="samedge-video-sweep", daemon=True)
        self._sweeper.start()

    def shutdown(self) -> None:
        """Close every session and stop the sweeper."""
        self._halt.set()
        with self._lock:
            sessions = list(self._sessions.values())
            self._sessions.clear()
        for video in sessions:
            video.close()
        shutil.rmtree(self.root, ignore_errors=True)

    @property
    def sessions(self) -> int:
        return len(self._sessions)

    # -- models ----------------------------------------------------------------------------

    def predictor(self, choice: Choice) -> tuple[VideoPredictor, str, str]:
        """``(tracker, model key, label)`` for the model dropdowns' choice; the last two
        trackers used stay loaded.

        Raises:
            SamedgeError: a model or provider this server does not offer, or a model
                without video graphs.
        """
        from ..video import VideoPredictor

        entry = self.engine.catalog.lookup(choice.model, choice.precision)
        provider = self.engine.catalog.check_provider(choice.provider)
        key = (entry.key, provider)
        with self._predictor_lock:
            predictor = self._predictors.get(key)
            if predictor is None:
                predictor = VideoPredictor.from_pretrained(
                    entry.folder, providers=provider, threads=self.engine.pool.threads
                )
                self._predictors[key] = predictor
            self._predictors.move_to_end(key)
            while len(self._predictors) > 2:
                self._predictors.popitem(last=False)
        label = f"{export_name(predictor.spec)} {entry.precision} on {provider}"
        if entry.random_weights:
            label += " (random test weights: masks are meaningless)"
        return predictor, f"{entry.key}|{provider}", label
