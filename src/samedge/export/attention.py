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

Also for SAM 2, :func:`separate_qkv` traces each Hiera attention's packed ``qkv`` projection
as three products (the same weights, in row blocks): ONNX Runtime then neither writes the
packed ``(tokens, 3 x C)`` tensor (144 MB in SAM 2.1 tiny's first pooling block) nor splits
it into three copies.

:func:`banded_blocks` traces Hiera's first, full-resolution blocks (256 x 256 tokens for a
1024-pixel image) in horizontal bands of whole attention windows: every step of such a
block (layer norms, windowed attention, the MLP) works within a window or a token, so the
bands are the same arithmetic, but only one band's intermediate tensors (the MLP's
4 x wider hidden layer above all) exist at a time.

MobileSAM's TinyViT attends within windows with a learned position bias, which the fused op
would take only as a materialised bias input (measured: ~3 % of its encoder); there
:func:`separate_tinyvit_qkv` only cuts the packed projection in three, as above: the same
values bit for bit in torch, 0.97x the encoder's time on ONNX Runtime and 0.95x on OpenVINO
(docs/benchmarks.md). :func:`tinyvit_permuted_grids` hands its blocks' local convolutions
and its patch merging their grids by ``permute`` alone, which both runtimes fold into the
convolutions' layout.

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
    out = g.op("com.microsoft::MultiHeadAttention", q, k, v, num_heads_i=num_heads)
    # The exporter's shape inference knows no contrib op: without a type on the output it
    # warns once per attention block ("shape inference of com.microsoft::MultiHeadAttention
    # type is missing"). The output is (B, S_q, value hidden size), as the fake kernel says.
    q_sizes, v_sizes = sh._get_tensor_sizes(q), sh._get_tensor_sizes(v)
    if q_sizes is not None and v_sizes is not None and len(q_sizes) == len(v_sizes) == 3:
        out.setType(q.type().with_sizes([q_sizes[0], q_sizes[1], v_sizes[2]]))
    return out


def _sdpa(
    query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, *args: Any, **kwargs: Any
) -> torch.Tensor:
    """``scaled_dot_product_attention`` on ``(B, H, S, d)``; plain calls use ``samedge::mha``.

    The tensors' parameter names are the official function's, which callers may pass them
    by."""
    plain = not args and not any(kwargs.get(n) for n in ("attn_mask", "dropout_p", "is_causal"))
    if not plain or kwargs.get("scale") is not None or query.dim() != 4:
        return _SDPA(query, key, value, *args, **kwargs)
    b, heads, s, _ = query.shape

    def merge(x: torch.Tensor) -> torch.Tensor:
        return x.transpose(1, 2).reshape(x.shape[0], x.shape[2], -1)

    out = torch.ops.samedge.mha(merge(query), merge(key), merge(value), int(heads))
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


@contextmanager
def replaced_forward(cls: Any, forward: Any, official: list[Any] | None = None) -> Iterator[None]:
    """Within the block, ``cls.forward`` is ``forward``; ``official`` (when given) holds the
    original for ``forward`` to call. The original is restored on exit."""
    original = cls.forward
    if official is not None:
        official[:] = [original]
    cls.forward = forward
    try:
        yield
    finally:
        cls.forward = original


def _separate_qkv_forward(self: Any, x: torch.Tensor) -> torch.Tensor:
    """``sam2``'s ``MultiScaleAttention.forward`` with the query, key and value projections
    as three products. Official: ``qkv(x)`` viewed as ``(B, HW, 3, heads, d)`` and unbound
    on the third axis, so the queries are output channels ``[0, C)`` of ``qkv``, the keys
    ``[C, 2C)`` and the values ``[2C, 3C)``: the same arithmetic on row blocks of its weight.
    """
    from sam2.modeling.backbones.hieradet import do_pool

    b, h, w, _ = x.shape
    c, heads = self.dim_out, self.num_heads
    weight, bias = self.qkv.weight, self.qkv.bias
    rows = [slice(i * c, (i + 1) * c) for i in range(3)]
    q, k, v = (F.linear(x, weight[r], bias[r]) for r in rows)
    if self.q_pool:
        q = do_pool(q, self.q_pool)
        h, w = q.shape[1:3]

    def split(t: torch.Tensor) -> torch.Tensor:
        return t.reshape(b, -1, heads, c // heads).transpose(1, 2)

    out = F.scaled_dot_product_attention(split(q), split(k), split(v))
    return self.proj(out.transpose(1, 2).reshape(b, h, w, -1))


@contextmanager
def separate_qkv() -> Iterator[None]:
    """Within the block, SAM 2 (Hiera) attention projects queries, keys and values apart."""
    from sam2.modeling.backbones.hieradet import MultiScaleAttention

    with replaced_forward(MultiScaleAttention, _separate_qkv_forward):
        yield


#: Hiera blocks with more tokens than this run in bands of about this many tokens.
BAND_TOKENS = 8192
_BLOCK_FORWARD: list[Any] = []


def band_rows(block: Any, height: int, width: int) -> int | None:
    """Rows per band for a Hiera ``MultiScaleBlock`` on ``height x width`` tokens, or
    ``None`` where it runs whole.

    A band is a whole number of attention windows tall (of pooling strides times windows
    for a block that pools its queries), so each window, and each pooled output row, lies
    in one band. Blocks with global attention, with at most :data:`BAND_TOKENS` tokens, or
    whose windows do not tile the image exactly, run whole.
    """
    window = block.window_size
    step = window * (block.q_stride[0] if block.q_stride else 1)
    if window == 0 or height * width <= BAND_TOKENS or height % step or width % window:
        return None
    rows = max(step, BAND_TOKENS // width // step * step)
    return None if height % rows else rows


def _banded_block_forward(self: Any, x: torch.Tensor) -> torch.Tensor:
    """``sam2``'s ``MultiScaleBlock.forward`` on horizontal bands of ``x`` ``(B, H, W, C)``."""
    official = _BLOCK_FORWARD[0]
    rows = band_rows(self, x.shape[1], x.shape[2])
    if rows is None:
        return official(self, x)
    return torch.cat([official(self, x[:, r : r + rows]) for r in range(0, x.shape[1], rows)], 1)


@contextmanager
def banded_blocks() -> Iterator[None]:
    """Within the block, large windowed Hiera blocks run in bands (see the module doc)."""
    from sam2.modeling.backbones.hieradet import MultiScaleBlock

    with replaced_forward(MultiScaleBlock, _banded_block_forward, _BLOCK_FORWARD):
        yield


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

    with replaced_forward(Attention, _chunked_vit_forward, _VIT_FORWARD):
        yield


def _vit_attention_forward(self: Any, x: torch.Tensor) -> torch.Tensor:
    """EfficientSAM's ``_SelfAttention.forward`` (:mod:`samedge.export.efficientsam`) with
    separate query, key and value projections and ``scaled_dot_product_attention``.

    Its packed ``qkv`` output is viewed as ``(B, N, 3, heads, d)``: the queries are output
    channels ``[0, C)``, the keys ``[C, 2C)``, the values ``[2C, 3C)``, and the official
    ``softmax(q k^T / sqrt(d)) v`` is what ``scaled_dot_product_attention`` computes.
    """
    b, n, c = x.shape
    weight, bias = self.qkv.weight, self.qkv.bias
    q, k, v = (
        F.linear(x, weight[i * c : (i + 1) * c], bias[i * c : (i + 1) * c]) for i in range(3)
    )

    def split(t: torch.Tensor) -> torch.Tensor:
        return t.reshape(b, n, self.heads, c // self.heads).transpose(1, 2)

    out = F.scaled_dot_product_attention(split(q), split(k), split(v))
    return self.proj(out.transpose(1, 2).reshape(b, n, c))


@contextmanager
def separate_vit_qkv() -> Iterator[None]:
    """Within the block, EfficientSAM's ViT attention projects queries, keys and values apart
    and calls ``scaled_dot_product_attention`` (with :func:`fused_sdpa`: one fused op)."""
    from .efficientsam import _SelfAttention

    with replaced_forward(_SelfAttention, _vit_attention_forward):
        yield


def _tinyvit_attention_forward(self: Any, x: torch.Tensor) -> torch.Tensor:
    """MobileSAM's TinyViT ``Attention.forward`` with the query, key and value projections
    as three products. Official: ``qkv(x)`` viewed as ``(B, N, heads, 2 key_dim + d)`` and
    split on the last axis, so head ``h``'s queries are output channels
    ``[h (2 key_dim + d), h (2 key_dim + d) + key_dim)`` of ``qkv``, its keys the next
    ``key_dim`` and its values the ``d`` after them: the same arithmetic on those rows of its
    weight. The rest (scores scaled, plus the per-window position bias, softmax) is the
    official code. Without the packed projection ONNX Runtime writes no ``(windows, 49,
    3 x C)`` tensor and splits nothing (OpenVINO ran that split with its reference kernel).
    """
    b, n, _ = x.shape
    x = self.norm(x)
    heads, kd, d = self.num_heads, self.key_dim, self.d
    weight = self.qkv.weight.view(heads, 2 * kd + d, -1)
    bias = self.qkv.bias.view(heads, 2 * kd + d)

    def project(lo: int, hi: int) -> torch.Tensor:
        rows = weight[:, lo:hi].reshape(heads * (hi - lo), -1)
        out = F.linear(x, rows, bias[:, lo:hi].reshape(-1))
        return out.view(b, n, heads, hi - lo).permute(0, 2, 1, 3)

    q, k, v = project(0, kd), project(kd, 2 * kd), project(2 * kd, 2 * kd + d)
    attn = ((q @ k.transpose(-2, -1)) * self.scale + self.ab).softmax(dim=-1)
    return self.proj((attn @ v).transpose(1, 2).reshape(b, n, self.dh))


def _tinyvit_block_forward(self: Any, x: torch.Tensor) -> torch.Tensor:
    """MobileSAM's ``TinyViTBlock.forward`` with the token grid handed to the local
    convolution as a permuted ``(B, H, W, C)`` view. Official: ``transpose(1, 2)`` then a
    reshape to ``(B, C, H, W)``, and back the same way; the same values, but a transpose
    that feeds (or follows) the convolution directly is one that both runtimes fold into
    their convolution layout. Window partition, attention and the MLP are the official
    steps (eval mode: no drop path)."""
    h, w = self.input_resolution
    b, n, c = x.shape
    ws = self.window_size
    shortcut = x
    if h == ws and w == ws:
        x = self.attn(x)
    else:
        pad_b, pad_r = (-h) % ws, (-w) % ws
        x = x.view(b, h, w, c)
        if pad_b or pad_r:
            x = F.pad(x, (0, 0, 0, pad_r, 0, pad_b))
        ph, pw = h + pad_b, w + pad_r
        x = x.view(b, ph // ws, ws, pw // ws, ws, c).transpose(2, 3).reshape(-1, ws * ws, c)
        x = self.attn(x)
        x = x.view(b, ph // ws, pw // ws, ws, ws, c).transpose(2, 3).reshape(b, ph, pw, c)
        if pad_b or pad_r:
            x = x[:, :h, :w]
        x = x.reshape(b, n, c)
    x = shortcut + x
    x = self.local_conv(x.view(b, h, w, c).permute(0, 3, 1, 2))
    x = x.permute(0, 2, 3, 1).reshape(b, n, c)
    return x + self.mlp(x)


def _tinyvit_merge_forward(self: Any, x: torch.Tensor) -> torch.Tensor:
    """MobileSAM's ``PatchMerging.forward`` (1 x 1, depthwise 3 x 3, 1 x 1 convolutions)
    with its output tokens taken as ``permute(0, 2, 3, 1)`` of the last convolution's
    output. Official: ``flatten(2).transpose(1, 2)``: the same values, see
    :func:`_tinyvit_block_forward` for why."""
    if x.ndim == 3:
        h, w = self.input_resolution
        x = x.view(len(x), h, w, -1).permute(0, 3, 1, 2)
    x = self.conv3(self.act(self.conv2(self.act(self.conv1(x)))))
    return x.permute(0, 2, 3, 1).reshape(len(x), -1, x.shape[1])


@contextmanager
def separate_tinyvit_qkv() -> Iterator[None]:
    """Within the block, MobileSAM's TinyViT attention projects queries, keys and values
    apart (an eval-mode model: the position bias is the cached ``ab``)."""
    from mobile_sam.modeling.tiny_vit_sam import Attention

    with replaced_forward(Attention, _tinyvit_attention_forward):
        yield


@contextmanager
def tinyvit_permuted_grids() -> Iterator[None]:
    """Within the block, MobileSAM's TinyViT blocks and patch merging move their token
    grids into and out of the convolutions with ``permute`` (no reshape between): a
    transpose next to a convolution is folded into its layout (OpenVINO: 43 -> 30 executed
    transposes and 15 -> 2 layout reorders; ONNX Runtime's NCHWc reorders take channels-last
    input). Encoder 0.94-0.95x on OpenVINO, 0.97x on ONNX Runtime; outputs identical."""
    from mobile_sam.modeling.tiny_vit_sam import PatchMerging, TinyViTBlock

    with (
        replaced_forward(TinyViTBlock, _tinyvit_block_forward),
        replaced_forward(PatchMerging, _tinyvit_merge_forward),
    ):
        yield
