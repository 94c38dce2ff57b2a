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
* :func:`fast_gelu`: ``nn.GELU(approximate="tanh")`` (the L and XL models' activation) is
  traced as ONNX Runtime's ``com.microsoft.FastGelu`` (one vectorised pass, the same
  formula). The exporter writes the tanh form as eight element-wise nodes, which ONNX
  Runtime does not fuse: 30 activations took ~430 ms of L0's encoder (``Mul``, ``Add``,
  ``Tanh``), each a pass over a full feature map.
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


@torch.library.custom_op("samedge::fast_gelu", mutates_args=())
def _fast_gelu(x: torch.Tensor) -> torch.Tensor:
    return F.gelu(x, approximate="tanh")


@_fast_gelu.register_fake
def _(x: torch.Tensor) -> torch.Tensor:
    return torch.empty_like(x)


def _fast_gelu_symbolic(g: Any, x: Any) -> Any:
    out = g.op("com.microsoft::FastGelu", x)
    out.setType(x.type())
    return out


def _gelu_forward(self: nn.GELU, x: torch.Tensor) -> torch.Tensor:
    if self.approximate == "tanh":
        return torch.ops.samedge.fast_gelu(x)
    return F.gelu(x, approximate=self.approximate)


@contextmanager
def fast_gelu(opset: int) -> Iterator[None]:
    """Within the block, tanh-approximated ``nn.GELU`` exports as ``FastGelu``."""
    torch.onnx.register_custom_op_symbolic("samedge::fast_gelu", _fast_gelu_symbolic, opset)
    try:
        with replaced_forward(nn.GELU, _gelu_forward):
            yield
    finally:
        torch.onnx.unregister_custom_op_symbolic("samedge::fast_gelu", opset)
