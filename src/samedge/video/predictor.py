"""The video predictor: SAM 2.1's official tracker over ONNX, one frame at a time.

:class:`VideoPredictor` does what ``SAM2VideoPredictor`` does (``add_new_points_or_box``,
``add_new_mask``, ``propagate_in_video``, ``remove_object``, ``reset_state``) with the same
memory policy (:mod:`samedge.video.memory`), but reads frames on demand from a
:class:`~samedge.video.types.FrameSource` (or gets them one by one with :meth:`step`) and
keeps only what the policy can still use (:mod:`samedge.video.state`). Several objects are
tracked one after the other on each frame, as the official predictor does, sharing the
frame's encoding.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from typing import Any

import numpy as np

from ..artifacts import ModelArtifact
from ..errors import PromptError, SamedgeError
from ..runtime.loaded import LoadedModel
from ..runtime.postprocess import select_masks
from ..runtime.providers import ProviderSettings
from ..specs import VideoSpec
from .graphs import VideoGraphs
from .masks import fill_holes, mask_prompt, preprocess_frame, upscale
from .memory import NO_OBJ_SCORE, from_bfloat16, horizon, retained, select_memories, to_bfloat16
from .prompts import check_inside
from .state import FrameFeatures, FrameOutput, ObjectTrack, TrackingState
from .types import FrameResult, FrameSource

#: Clamp of a previous output's logits fed back with correction clicks (official).
PREV_LOGITS_CLAMP = 32.0


class VideoPredictor(LoadedModel[VideoGraphs]):
    """SAM 2.1 video tracking over ONNX, equal to the official ``SAM2VideoPredictor``.

    Create one with :meth:`from_pretrained`; a predictor holds no per-video state, each
    video's is a :class:`TrackingState` from :meth:`init_state`.
    """

    def open_graphs(
        self,
        artifact: ModelArtifact,
        providers: str | Sequence[str] | None,
        threads: int | None,
        provider_settings: ProviderSettings | None,
    ) -> VideoGraphs:
        graphs = VideoGraphs(artifact, providers, threads, provider_settings)
        self.video: VideoSpec = graphs.video
        return graphs

    # ------------------------------------------------------------------ state

    def init_state(
        self,
        frame_size: tuple[int, int],
        num_frames: int | None = None,
        keep_history: bool = False,
        recent_memories: int | None = None,
        memory_stride: int | None = None,
    ) -> TrackingState:
        """A new, empty tracking state for frames of ``frame_size`` ``(width, height)``.

        Args:
            num_frames: frames in the video, if known before the first propagation (the
                official policy caps object pointers by it; a live stream has none).
            keep_history: keep every frame's output as the official predictor does, so a
                correction can be made on any tracked frame after a full pass (memory then
                grows by about 0.8 MB per frame and object); by default only what the
                memory policy can still use is kept.
            recent_memories, memory_stride: options that trade accuracy for speed, off by
                default (see :class:`TrackingState`; their effect: docs/video.md): attend
                to fewer recent frames' memories (0-6), or to every ``memory_stride``-th
                frame's.
        """
        width, height = (int(v) for v in frame_size)
        if width <= 0 or height <= 0:
            raise SamedgeError(f"frame_size must be (width, height) > 0, not {frame_size}")
        top = self.video.num_maskmem - 1
        if recent_memories is not None and not 0 <= recent_memories <= top:
            raise SamedgeError(f"recent_memories must be 0-{top}, not {recent_memories}")
        stride = self.video.memory_temporal_stride if memory_stride is None else memory_stride
        if stride < 1:
            raise SamedgeError(f"memory_stride must be at least 1, not {memory_stride}")
        return TrackingState(
            frame_size=(width, height),
            num_frames=num_frames,
            keep_history=keep_history,
            recent_memories=recent_memories,
            memory_stride=stride,
        )

    def _policy(self, state: TrackingState) -> VideoSpec:
        """The memory policy's settings for ``state`` (its memory stride)."""
        if state.memory_stride == self.video.memory_temporal_stride:
            return self.video
        return dataclasses.replace(self.video, memory_temporal_stride=state.memory_stride)

    def reset_state(self, state: TrackingState) -> None:
        """Forget every object, prompt and output (the frame size stays)."""
        state.clear()

    def remove_object(self, state: TrackingState, obj_id: int) -> None:
        """Stop tracking ``obj_id`` (its prompts and outputs are dropped; the other objects'
        results do not change). Unknown ids are ignored, as officially."""
        if state.objects.pop(obj_id, None) is None:
            return
        if not state.objects:
            state.clear()
            return
        waiting = {f for obj in state.objects.values() for f in (*obj.temp_cond, *obj.temp_other)}
        for frame in [f for f in state.pending if f not in waiting]:
            del state.pending[frame]

    # ------------------------------------------------------------------ prompts

    def add_prompt(
        self,
        state: TrackingState,
        frame_index: int,
        frame: np.ndarray,
        obj_id: int,
        points: Any = None,
        labels: Any = None,
        box: Any = None,
        mask: Any = None,
    ) -> FrameResult:
        """Prompt object ``obj_id`` on frame ``frame_index`` (a new object gets a new id).

        Points (``N x 2`` pixels, with ``labels`` 1 foreground / 0 background) and a box
        (``x0, y0, x1, y1``) may come together; a mask (``H x W`` bool) comes alone. New
        points replace the frame's earlier points for the object, whose previous mask is
        fed back with them (``add_new_points_or_box``). On a frame the object was tracked
        on, the prompt corrects the tracked mask (using the memory, as officially); the
        correction takes effect from the next frame on when propagating again.

        Args:
            frame: the frame, ``H x W x 3`` uint8 RGB.

        Returns:
            every object's result on the frame (objects with no output there: empty masks
            and score -1024).
        """
        self._check_frame(state, frame)
        self._check_index(state, frame_index)
        if isinstance(obj_id, bool) or not isinstance(obj_id, (int, np.integer)) or obj_id <= 0:
            raise PromptError(f"object ids are positive integers, not {obj_id!r}")
        # Every check before the state changes: a refused prompt leaves no trace.
        if mask is not None:
            if points is not None or box is not None:
                raise PromptError("give a mask alone, or points and/or a box")
            mask = self._mask(state, mask)
        else:
            coords, point_labels = self._points(state, points, labels, box)
        obj_id = int(obj_id)
        obj = state.objects.get(obj_id) or ObjectTrack(obj_id=obj_id)
        is_init = frame_index not in obj.tracked
        reverse = False if is_init else obj.tracked[frame_index]
        # A correction by points runs the memory attention: it needs the frame's
        # neighbourhood (a mask prompt is the output as it is and needs nothing).
        needs_memory = not is_init and mask is None
        if needs_memory and not self._history_kept(state, obj, frame_index, reverse):
            raise SamedgeError(
                f"frame {frame_index} was tracked, but its neighbourhood is no longer kept "
                f"(samedge keeps {horizon(self._policy(state))} frames around prompted frames "
                f"and the last tracked one); prompt a frame near those, propagate again from a "
                f"prompted frame, or use init_state(..., keep_history=True)"
            )
        is_cond = is_init or self.video.add_all_frames_to_correct_as_cond
        self.graphs.timings.clear()
        feats = self._features(state, frame_index, frame)
        if mask is not None:
            out = self._mask_output(feats, mask)
        else:
            prev = obj.output(frame_index, is_cond)
            prev_logits = None
            if prev is not None:
                prev_logits = np.clip(prev.low_res, -PREV_LOGITS_CLAMP, PREV_LOGITS_CLAMP)
            out = self._infer(
                state,
                obj,
                frame_index,
                feats,
                is_init,
                reverse,
                coords,
                point_labels,
                prev_logits,
                encode_memory=False,
            )
        state.objects.setdefault(obj_id, obj)
        obj.temp(is_cond)[frame_index] = out
        state.anchors.add(frame_index)
        state.pending[frame_index] = feats.image_embeddings
        outputs = [o.output(frame_index, is_cond) for o in state.objects.values()]
        return self._result(state, frame_index, outputs)

    def _check_index(self, state: TrackingState, frame_index: int) -> None:
        if state.num_frames is not None and not 0 <= frame_index < state.num_frames:
            raise SamedgeError(
                f"frame {frame_index} is outside the video (frames 0-{state.num_frames - 1})"
            )
        if frame_index < 0:
            raise SamedgeError(f"frame index {frame_index} is negative")

    def _check_frame(self, state: TrackingState, frame: np.ndarray) -> None:
        width, height = state.frame_size
        if not isinstance(frame, np.ndarray) or frame.shape != (height, width, 3):
            got = getattr(frame, "shape", type(frame).__name__)
            raise SamedgeError(
                f"expected a {height} x {width} x 3 uint8 RGB frame (the state's frame size), "
                f"got {got}"
            )
        if frame.dtype != np.uint8:
            raise SamedgeError(f"expected a uint8 RGB frame, got {frame.dtype}")

    def _points(
        self, state: TrackingState, points: Any, labels: Any, box: Any
    ) -> tuple[np.ndarray, np.ndarray]:
        """Prompt points in the model's 1024 frame, box corners first, as
        ``add_new_points_or_box`` builds them (without the padding point)."""
        if (points is None) != (labels is None):
            raise PromptError("points and labels must be given together")
        if points is None and box is None:
            raise PromptError("give points (with labels), a box, or a mask")
        coords = np.zeros((0, 2), np.float32)
        codes = np.zeros(0, np.float32)
        if points is not None:
            coords = np.asarray(points, dtype=np.float32).reshape(-1, 2)
            codes = np.asarray(labels, dtype=np.float32).reshape(-1)
            if len(codes) != len(coords) or not np.all(np.isin(codes, (0, 1))):
                raise PromptError("labels must be one 1 (foreground) or 0 (background) per point")
        if box is None and len(coords) == 0:
            raise PromptError("give at least one point, a box, or a mask")
        if box is not None:
            corners = np.asarray(box, dtype=np.float32).reshape(-1)
            if corners.shape != (4,):
                raise PromptError(f"a box is (x0, y0, x1, y1), got {np.shape(box)}")
            coords = np.concatenate([corners.reshape(2, 2), coords])
            codes = np.concatenate([np.array([2, 3], np.float32), codes])
        if not np.all(np.isfinite(coords)):
            raise PromptError("prompt coordinates must be finite")
        if box is not None and not (coords[0] <= coords[1]).all():
            raise PromptError(
                f"a box is (x0, y0, x1, y1) with x0 <= x1 and y0 <= y1, got {corners.tolist()}"
            )
        for x, y in coords:  # as the image predictor and samedge track refuse them
            check_inside(float(x), float(y), state.frame_size, "prompt point")
        width, height = state.frame_size
        scale = np.array([width, height], np.float32)
        return coords / scale * np.float32(self.spec.image_size), codes

    def _mask(self, state: TrackingState, mask: Any) -> np.ndarray:
        m = np.asarray(mask)
        width, height = state.frame_size
        if m.shape != (height, width):
            raise PromptError(
                f"a mask prompt must be {height} x {width} (the frame), got {m.shape}"
            )
        return m.astype(bool)

    # ------------------------------------------------------------------ tracking

    def propagate(
        self,
        state: TrackingState,
        frames: FrameSource,
        start_frame: int | None = None,
        reverse: bool = False,
        max_frames: int | None = None,
    ) -> Iterator[FrameResult]:
        """Track every object through ``frames``, reading each frame when it is needed.

        Args:
            frames: the video (``len(frames)`` frames, ``frames[i]`` read on demand).
            start_frame: the first frame; ``None``: the earliest prompted frame (the latest
                when ``reverse``).
            reverse: towards earlier frames.
            max_frames: track at most this many frames after the start frame (officially:
                ``max_frame_num_to_track``).

        Yields:
            one :class:`FrameResult` per frame, in tracking order.
        """
        if max_frames is not None and max_frames < 0:
            raise SamedgeError(f"max_frames counts frames after the start: >= 0, not {max_frames}")
        num_frames = len(frames)
        if state.num_frames is None:
            state.num_frames = num_frames
        self._preflight(state)
        if start_frame is None:
            prompted = [t for obj in state.objects.values() for t in obj.cond]
            start_frame = max(prompted) if reverse else min(prompted)
        if not 0 <= start_frame < num_frames:
            raise SamedgeError(
                f"start frame {start_frame} is outside the video (frames 0-{num_frames - 1})"
            )
        limit = num_frames if max_frames is None else max_frames
        if reverse:
            end = max(start_frame - limit, 0)
            order = range(start_frame, end - 1, -1) if start_frame > 0 else range(0)
        else:
            end = min(start_frame + limit, num_frames - 1)
            order = range(start_frame, end + 1)
        for frame_index in order:
            yield self._track_frame(
                state, frame_index, partial(frames.__getitem__, frame_index), reverse
            )

    def step(
        self, state: TrackingState, frame_index: int, frame: np.ndarray, reverse: bool = False
    ) -> FrameResult:
        """Track every object on one frame of a live stream (a webcam): the frames before
        it (after it, in ``reverse``) must have been prompted or stepped."""
        self._check_frame(state, frame)
        self._check_index(state, frame_index)
        self._preflight(state)
        return self._track_frame(state, frame_index, lambda: frame, reverse)

    def _preflight(self, state: TrackingState) -> None:
        """``propagate_in_video_preflight``: encode the memories of prompted frames and
        move their outputs into the objects' outputs."""
        if not state.objects:
            raise SamedgeError("no object to track: add a prompt first (add_prompt)")
        for obj in state.objects.values():
            for cond in (False, True):
                temp = obj.temp(cond)
                for frame_index, out in temp.items():
                    if out.memory is None:
                        out.memory = self._memory(
                            state.pending[frame_index], out.low_res, out.object_score, True
                        )
                    (obj.cond if cond else obj.other)[frame_index] = out
                temp.clear()
            if not obj.cond:
                raise SamedgeError(
                    f"object {obj.obj_id} has no prompt: add one with add_prompt before tracking"
                )
            for frame_index in obj.cond:
                obj.other.pop(frame_index, None)
        state.pending.clear()

    def _track_frame(
        self,
        state: TrackingState,
        frame_index: int,
        read: Callable[[], np.ndarray],
        reverse: bool,
    ) -> FrameResult:
        self.graphs.timings.clear()
        outputs: list[FrameOutput | None] = []
        for obj in state.objects.values():
            out = obj.cond.get(frame_index)
            if out is None:
                feats = self._features(state, frame_index, None, read)
                out = self._infer(
                    state,
                    obj,
                    frame_index,
                    feats,
                    False,
                    reverse,
                    None,
                    None,
                    None,
                    encode_memory=True,
                )
                obj.other[frame_index] = out
            obj.tracked[frame_index] = reverse
            outputs.append(out)
        state.last_frame = frame_index
        if not state.keep_history:
            self._forget(state)
        return self._result(state, frame_index, outputs)

    def _forget(self, state: TrackingState) -> None:
        anchors = set(state.anchors)
        if state.last_frame is not None:
            anchors.add(state.last_frame)
        reach = horizon(self._policy(state))
        for obj in state.objects.values():
            keep = set(retained(obj.other, anchors, reach))
            for frame_index in [f for f in obj.other if f not in keep]:
                del obj.other[frame_index]

    def _history_kept(
        self, state: TrackingState, obj: ObjectTrack, frame_index: int, reverse: bool
    ) -> bool:
        """Whether a correction on tracked frame ``frame_index`` sees what the official
        predictor would: the frame's output and every output its memory attention selects
        among all the frames tracked so far are still kept."""
        if state.keep_history:
            return True
        if obj.output(frame_index) is None:
            return False
        tracked = [t for t in obj.tracked if t not in obj.cond]
        sel = select_memories(
            self._policy(state),
            frame_index,
            list(obj.cond),
            tracked,
            state.num_frames,
            reverse,
            state.recent_memories,
        )
        needed = (*sel.memory_frames, *sel.pointer_frames)
        return all(t in obj.other or t in obj.cond for t in needed)

    # ------------------------------------------------------------------ graphs

    def _features(
        self,
        state: TrackingState,
        frame_index: int,
        frame: np.ndarray | None,
        read: Callable[[], np.ndarray] | None = None,
    ) -> FrameFeatures:
        """The encoder's outputs on a frame (the last encoded frame's are reused)."""
        cached = state.features
        if cached is not None and cached.index == frame_index:
            return cached
        if frame is None:
            assert read is not None
            frame = read()
            self._check_frame(state, frame)
        tensor = preprocess_frame(frame, self.spec)
        outputs = self.graphs.run("encoder", [tensor])
        state.features = FrameFeatures(frame_index, outputs[0], tuple(outputs[1:]))
        return state.features

    def _memory(
        self, embeddings: np.ndarray, low_res: np.ndarray, score: float, from_prompt: bool
    ) -> np.ndarray:
        """``_encode_new_memory`` of a frame's kept logits, as bfloat16 bits."""
        binarize = from_prompt and self.video.binarize_mask_from_pts_for_mem_enc
        memory = self.graphs.run(
            "memory_encoder",
            [
                embeddings,
                low_res.reshape(1, 1, self.spec.low_res_size, self.spec.low_res_size),
                np.array([1.0 if binarize else 0.0], np.float32),
                np.array([[score]], np.float32),
            ],
        )[0]
        return to_bfloat16(memory[0])

    def _conditioned(
        self,
        state: TrackingState,
        obj: ObjectTrack,
        frame_index: int,
        feats: FrameFeatures,
        reverse: bool,
    ) -> np.ndarray:
        """``_prepare_memory_conditioned_features`` for a frame that is not an initial
        conditioning frame: the memory attention over the selected memories."""
        sel = select_memories(
            self._policy(state),
            frame_index,
            list(obj.cond),
            list(obj.other),
            state.num_frames,
            reverse,
            state.recent_memories,
        )
        tokens = feats.image_embeddings.shape[2] * feats.image_embeddings.shape[3]
        memory = np.empty((len(sel.memory_frames), tokens, self.video.mem_dim), np.float32)
        for i, (t, cond) in enumerate(zip(sel.memory_frames, sel.memory_cond, strict=True)):
            record = obj.cond[t] if cond else obj.other[t]
            assert record.memory is not None
            from_bfloat16(record.memory, out=memory[i])
        hidden = self.spec.embedding_shape[0]
        ptrs = np.zeros((len(sel.pointer_frames), hidden), np.float32)
        for i, (t, cond) in enumerate(zip(sel.pointer_frames, sel.pointer_cond, strict=True)):
            ptrs[i] = (obj.cond[t] if cond else obj.other[t]).obj_ptr
        return self.graphs.run(
            "memory_attention",
            [
                feats.image_embeddings,
                memory,
                np.asarray(sel.memory_tpos, dtype=np.int64),
                ptrs,
                sel.pointer_tpos(),
            ],
        )[0]

    def _infer(
        self,
        state: TrackingState,
        obj: ObjectTrack,
        frame_index: int,
        feats: FrameFeatures,
        is_init: bool,
        reverse: bool,
        coords: np.ndarray | None,
        labels: np.ndarray | None,
        prev_logits: np.ndarray | None,
        encode_memory: bool,
    ) -> FrameOutput:
        """``track_step`` + ``_run_single_frame_inference`` for points (or none)."""
        video = self.video
        if is_init:  # directly_add_no_mem_embed: the encoder's output already has it
            pix = feats.image_embeddings
        else:
            pix = self._conditioned(state, obj, frame_index, feats, reverse)
        prompted = labels is not None  # is_mask_from_pts, for the memory
        n_points = 0 if labels is None else len(labels)
        multimask = (
            video.multimask_output_in_sam
            and (is_init or video.multimask_output_for_tracking)
            and video.multimask_min_pt_num <= n_points <= video.multimask_max_pt_num
        )
        # The official decoder call pads the prompt with a "not a point" (label -1); with no
        # prompt at all it is given one such point, then pads it with a second.
        if coords is None or labels is None:
            coords, labels = np.zeros((1, 2), np.float32), np.array([-1.0], np.float32)
        xy = np.concatenate([coords, np.zeros((1, 2), np.float32)])
        codes = np.concatenate([labels, [-1.0]])
        values = [pix, *feats.high_res, xy[None], codes[None].astype(np.float32)]
        role = "track_decoder"
        if prev_logits is not None:
            role = "track_decoder_mask"
            values += [
                prev_logits.reshape(1, 1, self.spec.low_res_size, self.spec.low_res_size),
                np.ones(1, np.float32),
            ]
        low, iou, score, ptrs = self.graphs.run(role, values)
        if multimask:
            token = 1 + int(np.argmax(iou[0, 1:]))
            logits = low[0, token]
        else:
            token = 0  # the single-mask token, even where the mask falls back to another
            logits = select_masks(low, iou, self.spec, False)[0][0, 0]
        object_score = float(score[0, 0])
        memory = None
        if encode_memory:
            memory = self._memory(feats.image_embeddings, logits, object_score, prompted)
        return FrameOutput(
            low_res=fill_holes(np.ascontiguousarray(logits), video.fill_hole_area),
            obj_ptr=ptrs[0, token].copy(),
            object_score=object_score,
            memory=memory,
        )

    def _mask_output(self, feats: FrameFeatures, mask: np.ndarray) -> FrameOutput:
        """``_use_mask_as_output``: the mask prompt is the output."""
        full, logits = mask_prompt(mask, self.spec.image_size, self.spec.low_res_size)
        ptr = self.graphs.run("mask_prompt", [feats.image_embeddings, full[None, None]])[0]
        present = bool(full.any())
        return FrameOutput(
            low_res=fill_holes(logits, self.video.fill_hole_area),
            obj_ptr=ptr[0].copy(),
            object_score=10.0 if present else -10.0,
        )

    # ------------------------------------------------------------------ results

    def _result(
        self, state: TrackingState, frame_index: int, outputs: Sequence[FrameOutput | None]
    ) -> FrameResult:
        width, height = state.frame_size
        count = len(outputs)
        side = self.spec.low_res_size
        low = np.full((count, side, side), NO_OBJ_SCORE, np.float32)
        scores = np.full(count, NO_OBJ_SCORE, np.float32)
        for i, out in enumerate(outputs):
            if out is not None:
                low[i] = out.low_res
                scores[i] = out.object_score
        start = time.perf_counter()
        masks = upscale(low, height, width) > self.spec.mask_threshold
        timings = dict(self.graphs.timings)
        timings["upscale"] = time.perf_counter() - start
        return FrameResult(
            frame_index=frame_index,
            object_ids=state.object_ids,
            masks=masks,
            low_res_logits=low,
            object_scores=scores,
            timings=timings,
        )


__all__ = ["VideoPredictor"]
