"""Video tracking with SAM 2.1 over ONNX: streaming, bounded memory, the official memory policy.

:class:`FrameSource` and :class:`FrameResult` (:mod:`.types`) are the contract between the
tracker and the readers/writers around it.
"""

from __future__ import annotations

from .types import FrameResult, FrameSource

__all__ = ["FrameResult", "FrameSource"]
