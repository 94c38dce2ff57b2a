"""Fused attention for ONNX Runtime: SAM 2's encoder attention as one ``MultiHeadAttention``.

The official Hiera encoder calls ``F.scaled_dot_product_attention``; the exporter's own
translation is ``MatMul -> Softmax -> MatMul`` with the whole ``heads x S x S`` score matrix
in memory (4 x 4096 x 4096 floats = 256 MB per global-attention block of SAM 2.1 tiny, for
the scores and again for the softmax). ONNX Runtime's ``com.microsoft.MultiHeadAttention``
computes the same function in tiles without materialising it: measured on this project's
2-core CPU, 1.7x faster per global block and 226 MB less peak memory; over the whole SAM 2.1
tiny encoder (windowed blocks fused too) about 12 % less CPU time than the plain export.

Within :func:`fused_sdpa` (used while the encoder is traced), ``scaled_dot_product_attention``
calls without mask, dropout or custom scale go through ``samedge::mha``, a torch op that
computes exactly the same thing and exports as the fused op with the head count the call
had. The model code is the official one, and the export's parity gate compares the graph
with the unmodified torch model. ``MultiHeadAttention`` is an ONNX Runtime contrib op (CPU
and CUDA kernels); providers that lack it run that node on the CPU.

SAM 1 (ViT) encoders compute attention by hand with decomposed relative-position terms,
which that op cannot take without materialising the bias. For them :func:`chunked_attention`
traces the global-attention blocks (64 x 64 tokens, 12-16 heads: 0.8-1.1 GB of scores per
block) in query chunks of a few image rows: the same arithmetic on row slices, so only one
chunk's scores exist at a time.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F

#: Opset of the contrib domain the fused graphs use.
CONTRIB_OPSET = {"com.microsoft": 1}
_SDPA = F.scaled_dot_product_attention


@torch.library.custom_op("samedge::mha", mutates_args=())
def _mha(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int) -> torch.Tensor:
    """Attention on ``(B, S, H*d)`` queries and ``(B, S', H*d)`` keys/values."""

    def split(x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], x.shape[1], heads, -1).transpose(1, 2)

    out = _SDPA(split(q), split(k), split(v))
    return out.transpose(1, 2).reshape(q.shape[0], q.shape[1], -1).contiguous()


@_mha.register_fake
def _(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int) -> torch.Tensor:
    return torch.empty(q.shape[0], q.shape[1], v.shape[2], dtype=q.dtype)


def _symbolic(g: Any, q: Any, k: Any, v: Any, heads: Any) -> Any:
    from torch.onnx import symbolic_helper as sh

    num_heads = sh._get_const(heads, "i", "heads")
    return g.op("com.microsoft::MultiHeadAttention", q, k, v, num_heads_i=num_heads)


def _sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *args: Any, **kwargs: Any):
    """``scaled_dot_product_attention`` on ``(B, H, S, d)``; plain calls use ``samedge::mha``."""
    plain = not args and not any(kwargs.get(n) for n in ("attn_mask", "dropout_p", "is_causal"))
    if not plain or kwargs.get("scale") is not None or q.dim() != 4:
        return _SDPA(q, k, v, *args, **kwargs)
    b, heads, s, _ = q.shape

    def merge(x: torch.Tensor) -> torch.Tensor:
        return x.transpose(1, 2).reshape(x.shape[0], x.shape[2], -1)

    out = torch.ops.samedge.mha(merge(q), merge(k), merge(v), int(heads))
    return out.reshape(b, s, heads, -1).transpose(1, 2)


@contextmanager
def fused_sdpa(opset: int) -> Iterator[None]:
    """Within the block, plain ``scaled_dot_product_attention`` exports as the fused op."""
    torch.onnx.register_custom_op_symbolic("samedge::mha", _symbolic, opset)
    F.scaled_dot_product_attention = _sdpa
    try:
        yield
    finally:
        F.scaled_dot_product_attention = _SDPA
        torch.onnx.unregister_custom_op_symbolic("samedge::mha", opset)


#: Global attention of SAM 1 encoders is traced in this many query chunks. Measured on ViT-B
#: (encoder alone, 2 threads): unchunked peak 3.81 GB; 8 chunks 1.72 GB and 4 % less CPU
#: time; 16 chunks 1.42 GB at the unchunked CPU time.
VIT_CHUNKS = 16


def _chunked_vit_forward(self: Any, x: torch.Tensor) -> torch.Tensor:
    """``segment_anything``'s ``Attention.forward``, with queries in chunks of image rows."""
    from segment_anything.modeling.image_encoder import get_rel_pos

    b, h, w, _ = x.shape
    if h * w < 1024 or not self.use_rel_pos:  # windowed blocks: the official code as is
        return _VIT_FORWARD[0](self, x)
    heads = self.num_heads
    qkv = self.qkv(x).reshape(b, h * w, 3, heads, -1).permute(2, 0, 3, 1, 4)
    q, k, v = qkv.reshape(3, b * heads, h * w, -1).unbind(0)
    rel_h_table = get_rel_pos(h, h, self.rel_pos_h)  # (h, h, d)
    rel_w_table = get_rel_pos(w, w, self.rel_pos_w)  # (w, w, d)
    key_t = k.transpose(-2, -1)
    rows = max(1, h // VIT_CHUNKS)
    outs = []
    for r0 in range(0, h, rows):
        r1 = min(h, r0 + rows)
        qc = q[:, r0 * w : r1 * w]
        attn = (qc * self.scale) @ key_t
        r_q = qc.reshape(b * heads, r1 - r0, w, -1)
        rel_h = torch.einsum("bhwc,hkc->bhwk", r_q, rel_h_table[r0:r1])
        rel_w = torch.einsum("bhwc,wkc->bhwk", r_q, rel_w_table)
        attn = attn.view(b * heads, r1 - r0, w, h, w) + rel_h[:, :, :, :, None]
        attn = (attn + rel_w[:, :, :, None, :]).view(b * heads, (r1 - r0) * w, h * w)
        outs.append(attn.softmax(dim=-1) @ v)
    out = torch.cat(outs, dim=1).view(b, heads, h, w, -1).permute(0, 2, 3, 1, 4)
    return self.proj(out.reshape(b, h, w, -1))


_VIT_FORWARD: list[Any] = []


@contextmanager
def chunked_attention() -> Iterator[None]:
    """Within the block, SAM 1 global attention runs (and traces) in query chunks."""
    from segment_anything.modeling.image_encoder import Attention

    _VIT_FORWARD[:] = [Attention.forward]
    Attention.forward = _chunked_vit_forward
    try:
        yield
    finally:
        Attention.forward = _VIT_FORWARD[0]
