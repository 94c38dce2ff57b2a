"""Video tracking with SAM 2.1 over ONNX: streaming, bounded memory, the official memory policy.

    >>> from samedge.video import VideoPredictor
    >>> vp = VideoPredictor.from_pretrained("sam2.1_hiera_tiny")
    >>> state = vp.init_state(frame_size=(854, 480))
    >>> vp.add_prompt(state, 0, first_frame, obj_id=1, points=[[430, 240]], labels=[1])
    >>> for result in vp.propagate(state, frames):  # a FrameSource, read on demand
    ...     mask = result.mask_of(1)

:class:`VideoPredictor` (:mod:`.predictor`) tracks; :class:`TrackingState` (:mod:`.state`)
is one video's state; :class:`FrameSource` and :class:`FrameResult` (:mod:`.types`) are the
contract between the tracker and the readers/writers around it. Importing this package
loads neither onnxruntime nor OpenCV; the predictor does when it is first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_getattr
from .types import FrameResult, FrameSource

__all__ = ["FrameResult", "FrameSource", "TrackingState", "VideoPredictor"]

_LAZY = {
    "VideoPredictor": "samedge.video.predictor",
    "TrackingState": "samedge.video.state",
}

if TYPE_CHECKING:
    from .predictor import VideoPredictor
    from .state import TrackingState


__getattr__ = lazy_getattr(__name__, _LAZY, globals())
