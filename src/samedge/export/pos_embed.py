"""SAM 2's Hiera positional embedding traced as two small matrix products.

The official ``Hiera._get_pos_embed`` resizes a learned ``(1, C, 7, 7)`` embedding to the
token grid (256 x 256 for a 1024-pixel image) with bicubic ``F.interpolate`` on every
forward pass. Traced as is, the encoder graph carries a ``Resize`` of a constant, which
each runtime must fold when it loads the graph; OpenVINO folds it with its reference
(non-vectorised) interpolation, and that alone took 110 of the 112 s that its CPU plugin
spent compiling the SAM 2.1 tiny encoder (a sampling profile of the compile).

The interpolation is linear and separable: the output is ``A_h P A_w^T`` for per-axis
weight matrices ``A`` (``out x in``), which are what ``F.interpolate`` gives for the
identity. :func:`separable_pos_embed` computes those two matrices with the official
``F.interpolate`` outside the trace (so the graph holds them as constants, 256 x 7 floats
each) and multiplies them in: the same function, the graph a few kilobytes larger, and
every runtime folds two ``MatMul`` nodes instead of a bicubic resize. Exactness is checked
by the export's parity gate against the unmodified model.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F


def axis_matrix(size_in: int, size_out: int) -> torch.Tensor:
    """``(size_out, size_in)``: bicubic ``F.interpolate`` along one axis, as a matrix.

    Computed with tracing switched off, so that a trace in progress records the result as a
    constant and not the ``Resize`` that produced it.
    """
    state = torch._C._get_tracing_state()
    # torch's stubs (torch/_C/__init__.pyi) declare _get_tracing_state but not its setter.
    torch._C._set_tracing_state(None)  # type: ignore[attr-defined]
    try:
        basis = torch.eye(size_in).reshape(1, size_in, size_in, 1)  # channel k: unit at k
        out = F.interpolate(basis, size=(size_out, 1), mode="bicubic")  # width 1 -> 1: exact
        return out[0, :, :, 0].t().contiguous()
    finally:
        torch._C._set_tracing_state(state)  # type: ignore[attr-defined]


def _get_pos_embed(self: Any, hw: tuple[int, int]) -> torch.Tensor:
    """``sam2``'s ``Hiera._get_pos_embed`` with the resize as ``A_h P A_w^T``."""
    h, w = hw
    pos = self.pos_embed  # (1, C, ph, pw)
    a_h = axis_matrix(pos.shape[2], h)
    a_w = axis_matrix(pos.shape[3], w)
    pos = a_h @ pos @ a_w.t()  # (1, C, h, w)
    window = self.pos_embed_window
    pos = pos + window.tile([x // y for x, y in zip(pos.shape, window.shape, strict=True)])
    return pos.permute(0, 2, 3, 1)


@contextmanager
def separable_pos_embed() -> Iterator[None]:
    """Within the block, Hiera's positional embedding is resized by matrix products."""
    from sam2.modeling.backbones.hieradet import Hiera

    original = Hiera._get_pos_embed
    Hiera._get_pos_embed = _get_pos_embed
    try:
        yield
    finally:
        Hiera._get_pos_embed = original
