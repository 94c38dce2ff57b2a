"""The typed contract of video tracking: what a frame source is and what one tracked frame gives.

Conventions are those of :mod:`samedge.runtime.types`: frames are ``H x W x 3`` uint8 RGB
arrays, points ``(x, y)`` pixels of the frame, boxes ``(x0, y0, x1, y1)``, masks boolean at
the frame's resolution. Objects are named by positive integer ids chosen by the caller.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class FrameSource(Protocol):
    """Frames read on demand, never all held at once (a video file, a frame folder).

    ``len(source)`` frames, ``source[i]`` decodes frame ``i`` (``0 <= i < len``) as RGB uint8;
    ``size`` is ``(width, height)`` and ``fps`` the frame rate (``0.0`` when unknown).
    A live source (a webcam) is not a ``FrameSource``: feed its frames to
    ``VideoPredictor.step`` one by one.
    """

    @property
    def size(self) -> tuple[int, int]: ...

    @property
    def fps(self) -> float: ...

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> np.ndarray: ...

    def __iter__(self) -> Iterator[np.ndarray]: ...


@dataclass(frozen=True)
class FrameResult:
    """The tracked objects on one frame.

    Attributes:
        frame_index: index of the frame in its source.
        object_ids: ids of the objects, in the order of the arrays below (``O`` of them).
        masks: ``O x H x W`` bool, at the frame's resolution.
        low_res_logits: ``O x h x w`` float32 mask logits before upscaling (``h = w = 256``
            for SAM 2.1), what parity tests compare besides the thresholded masks.
        object_scores: ``O`` float32 object-presence logits (``> 0``: present); a mask of
            an absent object is empty.
        timings: seconds per stage for this frame (``encoder``, ``memory_attention``,
            ``decoder``, ``memory_encoder``), for the benchmark and the CLI summary.
    """

    frame_index: int
    object_ids: tuple[int, ...]
    masks: np.ndarray
    low_res_logits: np.ndarray
    object_scores: np.ndarray
    timings: Mapping[str, float] = field(default_factory=dict)

    def mask_of(self, object_id: int) -> np.ndarray:
        """The ``H x W`` bool mask of one object (``KeyError`` when it is not tracked)."""
        try:
            return self.masks[self.object_ids.index(object_id)]
        except ValueError:
            msg = f"object {object_id} is not tracked on frame {self.frame_index}"
            raise KeyError(msg) from None
