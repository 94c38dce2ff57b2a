"""The tracking state: one explicit, typed object that every :class:`VideoPredictor` call
takes, holding what SAM 2's ``inference_state`` holds, minus the video.

It never holds frames, and holds image features only of the one frame encoded last (so
several prompts on a frame encode it once) and of prompted frames until their memories are
encoded (at the next :meth:`VideoPredictor.propagate` or :meth:`VideoPredictor.step`).
Per object and frame it keeps the official "compact" output: the 256 x 256 mask logits,
the object pointer, the object score and the memory (64 x 64 x 64 bfloat16, 512 KiB, as
the official predictor stores it). Outputs of tracked frames farther than the memory
policy's reach (:func:`samedge.video.memory.horizon`, 15 frames for SAM 2.1) from every
prompted frame and from the frame tracked last are dropped, unless ``keep_history``: no
later step can select them, so memory stays flat however long the video.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class FrameOutput:
    """One object's output on one frame (the official ``compact_current_out``).

    Attributes:
        low_res: ``(256, 256)`` float32 mask logits after hole filling (``pred_masks``).
        obj_ptr: ``(C,)`` float32 object pointer.
        object_score: the object-presence logit.
        memory: ``(HW, Cm)`` uint16 bfloat16 bits of the memory; ``None`` until encoded
            (a prompted frame's, before the next propagation).
    """

    low_res: np.ndarray
    obj_ptr: np.ndarray
    object_score: float
    memory: np.ndarray | None = None


@dataclass
class ObjectTrack:
    """Everything kept about one object.

    Attributes:
        obj_id: the caller's id.
        cond: conditioning (prompted) frames' outputs, in the order they were added.
        other: tracked frames' outputs (and corrections of tracked frames).
        temp_cond, temp_other: outputs of prompts since the last propagation, whose
            memories are not encoded yet (the official ``temp_output_dict_per_obj``).
        tracked: frame -> whether it was tracked in reverse (``frames_tracked_per_obj``).
    """

    obj_id: int
    cond: dict[int, FrameOutput] = field(default_factory=dict)
    other: dict[int, FrameOutput] = field(default_factory=dict)
    temp_cond: dict[int, FrameOutput] = field(default_factory=dict)
    temp_other: dict[int, FrameOutput] = field(default_factory=dict)
    tracked: dict[int, bool] = field(default_factory=dict)

    def temp(self, cond: bool) -> dict[int, FrameOutput]:
        return self.temp_cond if cond else self.temp_other

    def output(self, frame: int, cond: bool | None = None) -> FrameOutput | None:
        """The object's latest output on ``frame``: a pending prompt's (of the given kind;
        both when ``None``), else a conditioning frame's, else a tracked frame's."""
        kinds = (True, False) if cond is None else (cond,)
        for kind in kinds:
            found = self.temp(kind).get(frame)
            if found is not None:
                return found
        found = self.cond.get(frame)
        return found if found is not None else self.other.get(frame)


@dataclass
class FrameFeatures:
    """The encoder's outputs on one frame: ``image_embeddings`` ``(1, 256, 64, 64)`` (with
    the no-memory embedding added) and the high-res features."""

    index: int
    image_embeddings: np.ndarray
    high_res: tuple[np.ndarray, ...]


@dataclass
class TrackingState:
    """The state of one video's tracking (create it with :meth:`VideoPredictor.init_state`).

    Attributes:
        frame_size: ``(width, height)`` of the frames.
        num_frames: frames in the video, ``None`` for a live stream; the official memory
            policy caps pointers by it (set by ``init_state`` or the first propagation).
        keep_history: keep every tracked frame's output, as the official predictor does
            (memory grows with the video), so that a correction anywhere can be made after
            a full pass; otherwise only what the memory policy can still select.
        recent_memories: speed option: a frame attends to the memories of only this many
            recent frames (``None``: the official 6); the conditioning frames' always.
        memory_stride: speed option: recent memories from every this-many frames (the
            nearest frame always; the official ``memory_temporal_stride_for_eval``, 1).
        objects: the tracked objects by id, in the order they were added.
        anchors: frames that received prompts (they bound what is dropped).
        last_frame: the frame tracked last.
        features: the encoder's outputs on the frame encoded last.
        pending: image embeddings of frames with prompts whose memories are not encoded.
    """

    frame_size: tuple[int, int]
    num_frames: int | None = None
    keep_history: bool = False
    recent_memories: int | None = None
    memory_stride: int = 1
    objects: dict[int, ObjectTrack] = field(default_factory=dict)
    anchors: set[int] = field(default_factory=set)
    last_frame: int | None = None
    features: FrameFeatures | None = None
    pending: dict[int, np.ndarray] = field(default_factory=dict)

    @property
    def object_ids(self) -> tuple[int, ...]:
        return tuple(self.objects)

    def clear(self) -> None:
        """Forget every object, prompt and output (``reset_state``)."""
        self.objects.clear()
        self.anchors.clear()
        self.pending.clear()
        self.last_frame = None

    def nbytes(self) -> int:
        """Bytes of arrays the state holds (outputs, memories, cached features)."""
        total = 0
        for obj in self.objects.values():
            for outs in (obj.cond, obj.other, obj.temp_cond, obj.temp_other):
                for out in outs.values():
                    total += out.low_res.nbytes + out.obj_ptr.nbytes
                    total += 0 if out.memory is None else out.memory.nbytes
        if self.features is not None:
            total += self.features.image_embeddings.nbytes
            total += sum(a.nbytes for a in self.features.high_res)
        return total + sum(a.nbytes for a in self.pending.values())
