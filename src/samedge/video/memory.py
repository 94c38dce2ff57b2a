"""SAM 2's memory policy: which earlier frames a frame attends to, and how they are encoded.

This is ``SAM2Base._prepare_memory_conditioned_features`` without the tensors: given the
frames whose outputs an object has (conditioning frames, i.e. prompted ones, and tracked
ones), :func:`select_memories` returns the frames whose spatial memories and object
pointers the memory attention sees, with the indices of their temporal encodings, in the
official order. The memory attention graph (:mod:`samedge.export.video`) takes exactly these.

* every conditioning frame's memory (temporal encoding ``num_maskmem - 1``; with
  ``max_cond_frames_in_attn`` set, only the temporally closest ones, the others may still
  count as recent frames);
* the memories of the ``num_maskmem - 1`` frames before the current one (after it when
  tracking in reverse), the nearest with encoding ``num_maskmem - 2``, those missing
  skipped (with a temporal stride, the nearest frame plus every stride-th one);
* object pointers: those of the conditioning frames in the past (all of them, unless
  ``only_obj_ptrs_in_the_past_for_eval``), then of the up to ``max_obj_ptrs - 1`` frames
  before the current one, each with its signed distance to the current frame divided by
  ``min(num_frames, max_obj_ptrs) - 1``.

:func:`retained` decides what a streaming state may forget: the outputs no later frame can
select. Memories are stored as bfloat16, as the official predictor stores them
(:func:`to_bfloat16`).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass

import numpy as np

from ..specs import VideoSpec

#: The score of an absent object's mask logits (``sam2.modeling.sam2_base.NO_OBJ_SCORE``).
NO_OBJ_SCORE = -1024.0


@dataclass(frozen=True)
class MemorySelection:
    """What the memory attention of one frame sees.

    Attributes:
        memory_frames: frames whose spatial memories are attended to, in the official order.
        memory_tpos: per memory, the index of its temporal encoding (``maskmem_tpos_enc``).
        memory_cond: per memory, whether it is a conditioning frame's output (else a
            tracked frame's; a tracked frame's output is looked up first, as officially).
        pointer_frames: frames whose object pointers are attended to.
        pointer_cond: per pointer, whether it is a conditioning frame's.
        pointer_tdiff: per pointer, its temporal distance to the current frame.
        pointer_tdiff_max: the distance the temporal encoding divides by.
    """

    memory_frames: tuple[int, ...]
    memory_tpos: tuple[int, ...]
    memory_cond: tuple[bool, ...]
    pointer_frames: tuple[int, ...]
    pointer_cond: tuple[bool, ...]
    pointer_tdiff: tuple[int, ...]
    pointer_tdiff_max: int

    def pointer_tpos(self) -> np.ndarray:
        """The pointers' normalised temporal positions, float32, divided as the official
        code divides its integer tensor (in float32)."""
        tdiff = np.asarray(self.pointer_tdiff, dtype=np.float32)
        return tdiff / np.float32(self.pointer_tdiff_max)


def select_cond_frames(
    frame_idx: int, cond_frames: Collection[int], max_cond_frames: int
) -> tuple[list[int], list[int]]:
    """``sam2_utils.select_closest_cond_frames``: ``(selected, unselected)``, each in the
    order of ``cond_frames``."""
    frames = list(cond_frames)
    if max_cond_frames == -1 or len(frames) <= max_cond_frames:
        return frames, []
    selected: list[int] = []
    before = max((t for t in frames if t < frame_idx), default=None)
    if before is not None:
        selected.append(before)
    after = min((t for t in frames if t >= frame_idx), default=None)
    if after is not None:
        selected.append(after)
    rest = sorted((t for t in frames if t not in selected), key=lambda t: abs(t - frame_idx))
    selected += rest[: max_cond_frames - len(selected)]
    return selected, [t for t in frames if t not in selected]


def _recent_frame(video: VideoSpec, frame_idx: int, t_rel: int, reverse: bool) -> int:
    """The frame ``t_rel`` memory slots before ``frame_idx`` (after it in reverse)."""
    stride = video.memory_temporal_stride
    if t_rel == 1:
        return frame_idx + 1 if reverse else frame_idx - 1
    if not reverse:
        return ((frame_idx - 2) // stride) * stride - (t_rel - 2) * stride
    return -(-(frame_idx + 2) // stride) * stride + (t_rel - 2) * stride


def select_memories(
    video: VideoSpec,
    frame_idx: int,
    cond_frames: Collection[int],
    other_frames: Collection[int],
    num_frames: int | None,
    reverse: bool,
    recent: int | None = None,
) -> MemorySelection:
    """The memories and pointers frame ``frame_idx`` attends to.

    Args:
        video: the model's tracking settings.
        frame_idx: the frame being tracked (never an initial conditioning frame).
        cond_frames: the object's conditioning frames, in the order they were added.
        other_frames: the frames whose (non-conditioning) outputs it has.
        num_frames: frames in the video; ``None`` for a live stream (no end).
        reverse: tracking towards earlier frames.
        recent: attend to the memories of only this many recent frames, the nearest ones
            (a speed option; ``None``: the official ``num_maskmem - 1``).

    Raises:
        ValueError: no conditioning frame.
    """
    if not cond_frames:
        raise ValueError("an object needs a prompted frame before it can be tracked")
    others = set(other_frames)
    selected, unselected = select_cond_frames(frame_idx, cond_frames, video.max_cond_frames_in_attn)
    spare = set(unselected)
    top = video.num_maskmem - 1  # the conditioning frames' temporal encoding
    memory_frames, memory_tpos = list(selected), [top] * len(selected)
    memory_cond = [True] * len(selected)
    for t_pos in range(1, video.num_maskmem):
        if recent is not None and video.num_maskmem - t_pos > recent:
            continue
        prev = _recent_frame(video, frame_idx, video.num_maskmem - t_pos, reverse)
        if prev in others or prev in spare:
            memory_frames.append(prev)
            memory_tpos.append(video.num_maskmem - t_pos - 1)
            memory_cond.append(prev not in others)
    max_ptrs = video.max_obj_ptrs if num_frames is None else min(num_frames, video.max_obj_ptrs)
    if video.only_obj_ptrs_in_the_past_for_eval:
        past = [t for t in selected if (t >= frame_idx if reverse else t <= frame_idx)]
    else:
        past = selected
    sign = -1 if reverse else 1
    pointer_frames, pointer_cond = list(past), [True] * len(past)
    pointer_tdiff = [
        (frame_idx - t) * sign if video.use_signed_tpos_enc_to_obj_ptrs else abs(frame_idx - t)
        for t in past
    ]
    for t_diff in range(1, max_ptrs):
        t = frame_idx + t_diff if reverse else frame_idx - t_diff
        if t < 0 or (num_frames is not None and t >= num_frames):
            break
        if t in others or t in spare:
            pointer_frames.append(t)
            pointer_cond.append(t not in others)
            pointer_tdiff.append(t_diff)
    return MemorySelection(
        memory_frames=tuple(memory_frames),
        memory_tpos=tuple(memory_tpos),
        memory_cond=tuple(memory_cond),
        pointer_frames=tuple(pointer_frames),
        pointer_cond=tuple(pointer_cond),
        pointer_tdiff=tuple(pointer_tdiff),
        pointer_tdiff_max=max_ptrs - 1,
    )


def horizon(video: VideoSpec) -> int:
    """How many frames back (or ahead, in reverse) a tracked frame's outputs can be
    selected: the farthest pointer or recent memory."""
    stride = video.memory_temporal_stride
    return max(video.max_obj_ptrs - 1, (video.num_maskmem - 1) * stride + 1)


def retained(frames: Iterable[int], anchors: Collection[int], reach: int) -> list[int]:
    """The ``frames`` within ``reach`` of an anchor (a prompted or corrected frame, the
    newest tracked frame): the only outputs a later step can still select, when tracking
    continues from an anchor in either direction."""
    marks = sorted(anchors)
    kept = []
    for t in frames:
        i = int(np.searchsorted(marks, t))
        near = [marks[j] for j in (i - 1, i) if 0 <= j < len(marks)]
        if any(abs(t - a) <= reach for a in near):
            kept.append(t)
    return kept


def to_bfloat16(x: np.ndarray) -> np.ndarray:
    """``x`` (float32) rounded to bfloat16 (to nearest, ties to even: what
    ``Tensor.to(torch.bfloat16)`` does), as its ``uint16`` bit patterns."""
    bits = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    rounding = ((bits >> 16) & 1) + np.uint32(0x7FFF)
    return ((bits + rounding) >> 16).astype(np.uint16)


def from_bfloat16(bits: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """float32 values of :func:`to_bfloat16`'s bit patterns (written into ``out``)."""
    wide = bits.astype(np.uint32) << 16
    values = wide.view(np.float32)
    if out is None:
        return values
    out[...] = values
    return out
