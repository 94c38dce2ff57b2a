"""EfficientViT-SAM's image encoder traced for ONNX Runtime's CPU kernels.

Two trace-time rewrites, each the same function as the official module (the export's
parity gate compares the graph with the unmodified torch model):

* :func:`separable_upsample`: the neck's bicubic ``UpSampleLayer`` (stage outputs of 32 x 32
  and 16 x 16 brought to 64 x 64 for L0-L2) is traced as ``A_h X A_w^T``, with the per-axis
  weight matrices ``A`` that ``F.interpolate`` gives for the identity (see
  :func:`samedge.export.pos_embed.axis_matrix`): bicubic upsampling without antialiasing is
  separable. ONNX Runtime's cubic ``Resize`` runs scalar code per output pixel: 270 of the
  2,200 ms of L0's encoder on this project's 2-core CPU (two resizes of 256 and 512
  channels), against a few ms for the two products.
* :func:`tanh_gelu`: ``nn.GELU(approximate="tanh")`` (the L and XL models' activation) is
  traced as one ONNX ``Gelu`` node with ``approximate="tanh"`` (opset 20, so the encoder
  graph is written at :data:`TANH_GELU_OPSET`; the same formula). At opset 17 the TorchScript
  exporter wrote the tanh form as eight element-wise nodes, which ONNX Runtime does not fuse: 30
  activations took ~430 ms of L0's encoder (``Mul``, ``Add``, ``Tanh``), each a pass over a
  full feature map. ONNX Runtime's contrib ``FastGelu`` (the same formula, used before) is
  one pass too, but its NCHWc layout pass (the blocked layout its convolutions run in) does
  not know it, so each of the 30 left the layout and re-entered it (a ``ReorderOutput`` and
  a ``ReorderInput`` per activation, ~36 ms of ~295); the ONNX ``Gelu`` runs on the blocked
  tensor in place (ONNX Runtime >= 1.18): 0.9x the encoder's time (docs/benchmarks.md).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .attention import replaced_forward
from .pos_embed import axis_matrix


def _upsample_forward(self: Any, x: torch.Tensor) -> torch.Tensor:
    """``UpSampleLayer.forward`` with bicubic resizes to a fixed size as two products."""
    official = _UPSAMPLE_FORWARD[0]
    if self.mode != "bicubic" or self.align_corners or self.size is None or x.dim() != 4:
        return official(self, x)
    h, w = x.shape[-2:]
    if (h, w) == tuple(self.size):
        return x
    a_h = axis_matrix(h, self.size[0])  # (out_h, h)
    a_w = axis_matrix(w, self.size[1])  # (out_w, w)
    return a_h @ (x @ a_w.t())


_UPSAMPLE_FORWARD: list[Any] = []


@contextmanager
def separable_upsample() -> Iterator[None]:
    """Within the block, the neck's bicubic upsampling is traced as matrix products."""
    from efficientsam.models.nn.ops import UpSampleLayer

    with replaced_forward(UpSampleLayer, _upsample_forward, _UPSAMPLE_FORWARD):
        yield


#: The ONNX opset that has ``Gelu`` with ``approximate="tanh"``.
TANH_GELU_OPSET = 20


@torch.library.custom_op("samedge::tanh_gelu", mutates_args=())
def _tanh_gelu(x: torch.Tensor) -> torch.Tensor:
    return F.gelu(x, approximate="tanh")


@_tanh_gelu.register_fake
def _(x: torch.Tensor) -> torch.Tensor:
    return torch.empty_like(x)


def _tanh_gelu_symbolic(g: Any, x: Any) -> Any:
    out = g.op("Gelu", x, approximate_s="tanh")
    out.setType(x.type())
    return out


def _gelu_forward(self: nn.GELU, x: torch.Tensor) -> torch.Tensor:
    if self.approximate == "tanh":
        return torch.ops.samedge.tanh_gelu(x)
    return F.gelu(x, approximate=self.approximate)


@contextmanager
def tanh_gelu() -> Iterator[None]:
    """Within the block, tanh-approximated ``nn.GELU`` exports as ONNX ``Gelu`` with
    ``approximate="tanh"``; the graph must be exported at opset :data:`TANH_GELU_OPSET`."""
    torch.onnx.register_custom_op_symbolic(
        "samedge::tanh_gelu", _tanh_gelu_symbolic, TANH_GELU_OPSET
    )
    try:
        with replaced_forward(nn.GELU, _gelu_forward):
            yield
    finally:
        torch.onnx.unregister_custom_op_symbolic("samedge::tanh_gelu", TANH_GELU_OPSET)
