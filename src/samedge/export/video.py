"""SAM 2.1's video tracking graphs, exported beside the image graphs behind the same gate.

The official tracker (``SAM2Base.track_step`` as ``SAM2VideoPredictor`` calls it) runs, per
frame and object, the image encoder (the image graphs' ``encoder.onnx``), then:

* ``memory_attention.onnx`` (:class:`MemoryAttentionGraph`): the frame's features attend to
  the object's memories and object pointers (``_prepare_memory_conditioned_features`` and
  ``MemoryAttention``). Inputs: the encoder's ``image_embeddings``, ``memory_features``
  ``(M, 4096, 64)`` (the selected frames' memories, values of bfloat16 as the official
  predictor stores them), ``memory_tpos`` ``(M,)`` int64 (each memory's temporal-encoding
  index), ``obj_ptrs`` ``(P, 256)`` and ``obj_ptr_tpos`` ``(P,)`` (each pointer's temporal
  distance, divided by the largest); ``M`` and ``P`` are dynamic axes (see below). Output:
  ``conditioned_embeddings`` ``(1, 256, 64, 64)``.
* ``track_decoder.onnx`` / ``track_decoder_mask.onnx`` (:class:`TrackDecoder`): the prompt
  encoder and mask decoder on those features (``_forward_sam_heads``): all four masks'
  256 x 256 logits (set to -1024 where the object score says the object is absent, as
  officially), the predicted IoUs, the object score, and the object pointer each mask
  token would give (``obj_ptr_proj``, with the no-object pointer where the object is
  absent). Which mask (and pointer) the frame keeps is chosen on the host, so
  ``multimask_output`` is never folded into the graph. The ``_mask`` variant takes a mask
  input (a correction's previous logits).
* ``memory_encoder.onnx`` (:class:`MemoryEncoderGraph`): the frame's features and its kept
  mask logits -> its memory ``(1, 4096, 64)`` (``_encode_new_memory``: logits upscaled to
  1024, sigmoid or binarised, the official scale and bias, ``MemoryEncoder``, and the
  no-object embedding where the object is absent).
* ``mask_prompt.onnx`` (:class:`MaskPromptGraph`): a mask prompt's object pointer
  (``_use_mask_as_output``: the mask through ``mask_downsample`` and the decoder).

The memories' positional encoding (a sine encoding of the 64 x 64 grid, the same for every
frame) and the frame's own (``vision_pos_enc``) are constants of the graph.

Rewritten for ONNX and the CPU, each computing the official function:

* RoPE: ``apply_rotary_enc`` multiplies complex numbers (``torch.view_as_complex``), which
  ONNX has not. Rotating each pair ``(a, b)`` by ``(cos, sin)`` is ``(a cos - b sin,
  a sin + b cos)``: :func:`rotate_pairs`, and in the graphs the pair-swapped copy
  ``(-b, a)`` comes from the same product with its weight rows swapped
  (:func:`_rope_linear`), so a rotation is one product and two multiplications. The tests
  compare :func:`rotate_pairs` with ``apply_rotary_enc``.
* the cross-attention's values: its value projection (64 -> 256 channels) and output
  projection are one 64 -> 256 product applied after the attention (the attention
  weights of a query sum to 1, so the bias passes through): the attention averages
  64-channel memory tokens instead of 256-channel ones, 4x less work for that half of the
  attention; the self-attention's value and output projections likewise fold into one.
* attention runs as ONNX Runtime's fused ``MultiHeadAttention`` (see
  :mod:`samedge.export.attention`): a 4096 x 28736 score matrix (7 memories, 16 pointers)
  is never materialised.
* the softmax scale ``1 / 16`` is the fused op's own.

Variable numbers of memories and pointers: dynamic axes, not padding to the maximum with an
attention mask. Measured (benchmarks/video_speed.py --padding, SAM 2.1 tiny, 2 threads): the
graph's time grows with the number of memory tokens, so a padded graph costs the full
7-memory, 16-pointer attention on every frame (the first ~15 frames after a prompt have
fewer), and nothing else: ONNX Runtime keeps no per-shape plans that a new shape would
rebuild (see docs/video.md).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ExportError
from ..specs import (
    CONDITIONED_EMBEDDINGS,
    MEMORY_FEATURES,
    MEMORY_TPOS,
    OBJ_PTR_TPOS,
    OBJ_PTRS,
    POINT_COORDS,
    POINT_LABELS,
    ModelSpec,
)
from .build import Official, sam2_overrides
from .wrappers import DecoderContext, FastDecoderBase

#: ``sam2.modeling.sam2_base.NO_OBJ_SCORE``.
NO_OBJ_SCORE = -1024.0
#: Parity tolerance of the video graphs: max |onnx - torch| / max(1, max |torch|).
VIDEO_TOL = 1e-4


def rotate_pairs(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """RoPE in real arithmetic: each channel pair ``(a, b)`` of ``x`` ``(..., N, 2K)``
    rotated by its angle, given as ``cos``, ``sin`` ``(N, K)``: ``(a cos - b sin,
    a sin + b cos)``, which is ``apply_rotary_enc``'s complex product
    ``(a + ib)(cos + i sin)``."""
    pairs = x.reshape(*x.shape[:-1], -1, 2)
    a, b = pairs[..., 0], pairs[..., 1]
    return torch.stack((a * cos - b * sin, a * sin + b * cos), -1).flatten(-2)


def rope_tables(attn: Official, tokens: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(cos, sin)`` ``(tokens, K)`` of a ``RoPEAttention``'s ``freqs_cis`` (complex)."""
    freqs = attn.freqs_cis.detach().cpu()
    if freqs.shape[0] != tokens:
        side = math.isqrt(tokens)
        freqs = attn.compute_cis(end_x=side, end_y=side)
    real = torch.view_as_real(freqs)
    return real[..., 0].contiguous(), real[..., 1].contiguous()


def _swap_rows(t: torch.Tensor) -> torch.Tensor:
    """Rows ``(2j, 2j + 1)`` -> ``(-row 2j+1, row 2j)``: applied to a projection's weight
    and bias, the projection gives each pair ``(-b, a)`` instead of ``(a, b)``."""
    pairs = t.reshape(-1, 2, *t.shape[1:])
    return torch.stack((-pairs[:, 1], pairs[:, 0]), 1).reshape(t.shape)


class _RopeLinear(nn.Module):
    """``rotate_pairs(linear(x))`` as one product: the projection and its pair-swapped copy
    side by side (``2C`` outputs), then ``y cos + y_swapped sin`` per channel."""

    weight: torch.Tensor
    bias: torch.Tensor
    cos: torch.Tensor
    sin: torch.Tensor

    def __init__(self, linear: nn.Linear, cos: torch.Tensor, sin: torch.Tensor) -> None:
        super().__init__()
        w, b = linear.weight.detach(), linear.bias.detach()
        self.register_buffer("weight", torch.cat((w, _swap_rows(w)), 0).t().contiguous())
        self.register_buffer("bias", torch.cat((b, _swap_rows(b)), 0))
        self.register_buffer("cos", cos.repeat_interleave(2, -1))
        self.register_buffer("sin", sin.repeat_interleave(2, -1))
        self.out = w.shape[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` ``(..., N, C_in)`` with ``N`` the table's tokens (repeated over any leading
        axes, as ``rope_k_repeat`` does for the memory frames)."""
        y = torch.addmm(self.bias, x.reshape(-1, x.shape[-1]), self.weight)
        y = y.reshape(*x.shape[:-1], 2 * self.out)
        return y[..., : self.out] * self.cos + y[..., self.out :] * self.sin


def _folded(inner: nn.Linear, outer: nn.Linear) -> tuple[torch.Tensor, torch.Tensor]:
    """``outer(inner(x))`` as one linear map: weight ``(in, out)`` (transposed for
    ``addmm``) and bias, multiplied out in float64."""
    w1, b1 = inner.weight.double(), inner.bias.double()
    w2, b2 = outer.weight.double(), outer.bias.double()
    return (w2 @ w1).t().float().contiguous(), (w2 @ b1 + b2).float()


def _linear(x: torch.Tensor, weight_t: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    shape = x.shape
    return torch.addmm(bias, x.reshape(-1, shape[-1]), weight_t).reshape(*shape[:-1], -1)


def _attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """One-head attention of ``(N, C)`` queries on ``(L, C)`` keys and ``(L, Cv)`` values
    (``scaled_dot_product_attention``: exported as the fused op)."""
    return F.scaled_dot_product_attention(q[None, None], k[None, None], v[None, None])[0, 0]


class _Layer(nn.Module):
    """One ``MemoryAttentionLayer`` (self-attention with RoPE, cross-attention to the
    memories with RoPE on the spatial keys, MLP), rearranged as the module doc says."""

    sa_vo_w: torch.Tensor
    sa_vo_b: torch.Tensor
    ca_vo_w: torch.Tensor
    ca_vo_b: torch.Tensor

    def __init__(self, layer: Official, tokens: int) -> None:
        super().__init__()
        sa, ca = layer.self_attn, layer.cross_attn_image
        for attn in (sa, ca):
            if attn.num_heads != 1 or attn.internal_dim != layer.d_model:
                raise ExportError("the video graphs take one-head memory attention")
        if layer.pos_enc_at_attn or layer.pos_enc_at_cross_attn_queries:
            raise ExportError("the video graphs take SAM 2's positional-encoding placement")
        if not layer.pos_enc_at_cross_attn_keys or not ca.rope_k_repeat:
            raise ExportError("the video graphs take SAM 2's positional-encoding placement")
        cos, sin = rope_tables(sa, tokens)
        self.sa_q, self.sa_k = _RopeLinear(sa.q_proj, cos, sin), _RopeLinear(sa.k_proj, cos, sin)
        self.ca_q, self.ca_k = _RopeLinear(ca.q_proj, cos, sin), _RopeLinear(ca.k_proj, cos, sin)
        self.ca_k_ptr = ca.k_proj
        w, b = _folded(sa.v_proj, sa.out_proj)
        self.register_buffer("sa_vo_w", w)
        self.register_buffer("sa_vo_b", b)
        w, b = _folded(ca.v_proj, ca.out_proj)
        self.register_buffer("ca_vo_w", w)
        self.register_buffer("ca_vo_b", b)
        self.norm1, self.norm2, self.norm3 = layer.norm1, layer.norm2, layer.norm3
        self.linear1, self.linear2, self.activation = layer.linear1, layer.linear2, layer.activation

    def forward(
        self,
        x: torch.Tensor,
        mem: torch.Tensor,
        mem_pos: torch.Tensor,
        ptr: torch.Tensor,
        ptr_pos: torch.Tensor,
    ) -> torch.Tensor:
        """``x`` ``(N, C)``; ``mem``, ``mem_pos`` ``(M, N, Cm)``; ``ptr``, ``ptr_pos``
        ``(4P, Cm)``."""
        t = self.norm1(x)
        x = x + _linear(_attend(self.sa_q(t), self.sa_k(t), t), self.sa_vo_w, self.sa_vo_b)
        t = self.norm2(x)
        k_mem = self.ca_k(mem + mem_pos).reshape(-1, x.shape[-1])
        k_ptr = self.ca_k_ptr(ptr + ptr_pos)
        keys = torch.cat((k_mem, k_ptr), 0)
        values = torch.cat((mem.reshape(-1, mem.shape[-1]), ptr), 0)
        x = x + _linear(_attend(self.ca_q(t), keys, values), self.ca_vo_w, self.ca_vo_b)
        t = self.norm3(x)
        return x + self.linear2(self.activation(self.linear1(t)))


def sine_pe(positions: torch.Tensor, dim: int, temperature: float = 10000.0) -> torch.Tensor:
    """``sam2_utils.get_1d_sine_pe``."""
    half = dim // 2
    dim_t = torch.arange(half, dtype=torch.float32)
    dim_t = temperature ** (2 * (dim_t // 2) / half)
    pe = positions.unsqueeze(-1) / dim_t
    return torch.cat([pe.sin(), pe.cos()], dim=-1)


class MemoryAttentionGraph(nn.Module):
    """``memory_attention.onnx``: see the module doc for its inputs and output.

    Args:
        model: the official ``SAM2Base``.
        curr_pos: the frame's positional encoding at the embedding's level, ``(1, C, H, W)``.
        mem_pos: the memories' positional encoding, ``(1, Cm, H, W)``.
    """

    curr_pos: torch.Tensor
    mem_pos: torch.Tensor
    tpos: torch.Tensor
    no_mem_embed: torch.Tensor

    def __init__(self, model: Official, curr_pos: torch.Tensor, mem_pos: torch.Tensor) -> None:
        super().__init__()
        attention = model.memory_attention
        if not attention.pos_enc_at_input or not attention.batch_first:
            raise ExportError("the video graphs take SAM 2's memory attention layout")
        if not (model.add_tpos_enc_to_obj_ptrs and model.proj_tpos_enc_in_obj_ptrs):
            raise ExportError("the video graphs take SAM 2.1's pointer encoding")
        tokens = curr_pos.shape[-2] * curr_pos.shape[-1]
        self.layers = nn.ModuleList(_Layer(layer, tokens) for layer in attention.layers)
        self.norm = attention.norm
        self.register_buffer("curr_pos", 0.1 * curr_pos.detach().flatten(2)[0].t().contiguous())
        self.register_buffer("mem_pos", mem_pos.detach().flatten(2)[0].t().contiguous())
        self.register_buffer("tpos", model.maskmem_tpos_enc.detach().reshape(model.num_maskmem, -1))
        self.register_buffer("no_mem_embed", model.no_mem_embed.detach().reshape(-1))
        self.tpos_proj = model.obj_ptr_tpos_proj
        self.hidden, self.mem_dim = model.hidden_dim, model.mem_dim

    def forward(
        self,
        image_embeddings: torch.Tensor,
        memory: torch.Tensor,
        memory_tpos: torch.Tensor,
        obj_ptrs: torch.Tensor,
        obj_ptr_tpos: torch.Tensor,
    ) -> torch.Tensor:
        _, c, h, w = image_embeddings.shape
        # The encoder's output has the no-memory embedding added (for prompted frames).
        x = image_embeddings.reshape(c, h * w).t() - self.no_mem_embed + self.curr_pos
        mem_pos = self.mem_pos + self.tpos[memory_tpos].unsqueeze(1)
        split = self.hidden // self.mem_dim  # a pointer is this many memory tokens
        ptr = obj_ptrs.reshape(-1, self.mem_dim)
        ptr_pos = self.tpos_proj(sine_pe(obj_ptr_tpos, self.hidden))
        ptr_pos = ptr_pos.unsqueeze(1).expand(-1, split, -1).reshape(-1, self.mem_dim)
        for layer in self.layers:
            x = layer(x, memory, mem_pos, ptr, ptr_pos)
        return self.norm(x).t().reshape(1, c, h, w)


class MemoryEncoderGraph(nn.Module):
    """``memory_encoder.onnx``: ``(image_embeddings, mask_logits (1, 1, 256, 256), binarize
    (1,), object_score_logits (1, 1))`` -> ``memory_features`` ``(1, HW, Cm)``."""

    no_mem_embed: torch.Tensor

    def __init__(self, model: Official) -> None:
        super().__init__()
        self.model: Official = model
        self.register_buffer("no_mem_embed", model.no_mem_embed.detach().reshape(1, -1, 1, 1))
        self.side = model.image_size

    def forward(
        self,
        image_embeddings: torch.Tensor,
        mask_logits: torch.Tensor,
        binarize: torch.Tensor,
        object_score_logits: torch.Tensor,
    ) -> torch.Tensor:
        m = self.model
        pix = image_embeddings - self.no_mem_embed
        high = F.interpolate(
            mask_logits, (self.side, self.side), mode="bilinear", align_corners=False
        )
        b = binarize.reshape(1, 1, 1, 1)
        mask = b * (high > 0).float() + (1 - b) * torch.sigmoid(high)
        if m.sigmoid_scale_for_mem_enc != 1.0:
            mask = mask * m.sigmoid_scale_for_mem_enc
        if m.sigmoid_bias_for_mem_enc != 0.0:
            mask = mask + m.sigmoid_bias_for_mem_enc
        feats = m.memory_encoder(pix, mask, skip_mask_sigmoid=True)["vision_features"]
        if m.no_obj_embed_spatial is not None:
            absent = 1 - (object_score_logits > 0).float()
            feats = feats + absent[..., None, None] * m.no_obj_embed_spatial[..., None, None]
        return feats.flatten(2).transpose(1, 2)


class TrackDecoder(FastDecoderBase):
    """``track_decoder[_mask].onnx``: ``(pix_feat, high-res features, point_coords,
    point_labels[, mask_input, has_mask_input])`` -> ``low_res_masks`` ``(B, 4, 256, 256)``,
    ``iou_predictions`` ``(B, 4)``, ``object_score_logits`` ``(B, 1)``, ``obj_ptrs``
    ``(B, 4, C)``: :class:`FastDecoder` on a context computed in the graph from the
    (memory-conditioned) features, plus the tracker's occlusion handling."""

    no_obj_ptr: torch.Tensor

    def __init__(self, model: Official, spec: ModelSpec, with_mask: bool) -> None:
        super().__init__(model, spec, with_mask)
        if not model.pred_obj_scores or model.soft_no_obj_ptr or not model.fixed_no_obj_ptr:
            raise ExportError("the video graphs take SAM 2.1's hard no-object pointer")
        self.context = DecoderContext(model, spec)
        self.obj_ptr_proj = model.obj_ptr_proj
        self.register_buffer("no_obj_ptr", model.no_obj_ptr.detach().reshape(1, 1, -1))

    def track(self, pix_feat: torch.Tensor, *args: torch.Tensor) -> tuple[torch.Tensor, ...]:
        n_high = len(self.spec.high_res_shapes)
        ctx = self.context(pix_feat, *args[:n_high])
        hyper, queries, keys, feats = self._transformer(*ctx, *args[n_high:], all_tokens=True)
        s = 1  # the object-score token, then the IoU token, then the mask tokens
        tokens = queries[:, s + 1 : s + 1 + self.mask_decoder.num_mask_tokens]
        iou, score = self._scores(queries[:, : s + 1])
        present = (score > 0).float()  # (B, 1)
        masks = self._masks(hyper, keys, feats)
        masks = torch.where(present[:, :, None, None] > 0, masks, NO_OBJ_SCORE)
        ptrs = self.obj_ptr_proj(tokens) * present[:, :, None]
        ptrs = ptrs + (1 - present[:, :, None]) * self.no_obj_ptr
        return masks, iou, score, ptrs

    def forward(self, pix_feat: torch.Tensor, *args: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self.track(pix_feat, *args)


class MaskPromptGraph(nn.Module):
    """``mask_prompt.onnx``: ``(image_embeddings, mask (1, 1, S, S) of 0/1)`` -> the mask
    prompt's ``obj_ptr`` ``(1, C)`` (``_use_mask_as_output``)."""

    no_mem_embed: torch.Tensor
    no_obj_ptr: torch.Tensor

    def __init__(self, model: Official, spec: ModelSpec) -> None:
        super().__init__()
        self.decoder = TrackDecoder(model, spec, with_mask=True)
        self.mask_downsample = model.mask_downsample
        self.register_buffer("no_mem_embed", model.no_mem_embed.detach().reshape(1, -1, 1, 1))
        self.register_buffer("no_obj_ptr", model.no_obj_ptr.detach().reshape(1, -1))

    def forward(self, image_embeddings: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        # The pointer does not depend on the high-res features (only the masks do).
        high_res = [torch.zeros(1, *shape) for shape in self.decoder.spec.high_res_shapes]
        pix = image_embeddings - self.no_mem_embed
        # No point: the official code passes one "not a point", then pads with another.
        coords = torch.zeros(1, 2, 2)
        labels = -torch.ones(1, 2)
        small = self.mask_downsample(mask)
        _, _, _, ptrs = self.decoder.track(pix, *high_res, coords, labels, small, torch.ones(1))
        present = (mask.reshape(1, -1).amax(1, keepdim=True) > 0).float()
        return ptrs[:, 0] * present + (1 - present) * self.no_obj_ptr


# --------------------------------------------------------------------------------------
# Export and parity gate


def check_video_spec(spec: ModelSpec) -> None:
    """Raise :class:`ExportError` unless ``spec.video`` holds the official video
    predictor's settings (``build_sam2_video_predictor``'s model for the same config)."""
    from sam2.build_sam import build_sam2_video_predictor

    video = spec.video
    assert video is not None
    official = build_sam2_video_predictor(
        spec.official_builder,
        device="cpu",
        mode="eval",
        hydra_overrides_extra=sam2_overrides(spec),
    )
    names = {
        "num_maskmem": "num_maskmem",
        "max_obj_ptrs": "max_obj_ptrs_in_encoder",
        "mem_dim": "mem_dim",
        "memory_temporal_stride": "memory_temporal_stride_for_eval",
    }
    for field in video.__dataclass_fields__:
        if field == "roles":
            continue
        got = getattr(official, names.get(field, field))
        if got != getattr(video, field):
            raise ExportError(
                f"{spec.name}: the official video predictor has {names.get(field, field)}="
                f"{got!r}, samedge's VideoSpec {field}={getattr(video, field)!r}; update the "
                f"registry"
            )
    for flag in ("non_overlap_masks_for_mem_enc", "soft_no_obj_ptr"):
        if getattr(official, flag):
            raise ExportError(f"{spec.name}: samedge does not implement {flag}=True")
    if not (official.use_obj_ptrs_in_encoder and official.directly_add_no_mem_embed):
        raise ExportError(f"{spec.name}: samedge tracks with SAM 2.1's object pointers")
    del official


def _grid(model: Official) -> tuple[int, int]:
    """The official model's embedding grid (``image_size / backbone_stride`` a side: 64 x 64
    at 1024 pixels)."""
    side = int(model.sam_image_embedding_size)
    return (side, side)


def _fixed_memories(
    model: Official, features: torch.Tensor, low_res: int, frames: int, seed: int
) -> list[dict[str, Any]]:
    """Per frame, an official-looking output: one of four memories (the official encoder
    on random ``low_res`` x ``low_res`` logits, one of them for an absent object; bfloat16
    as the official predictor stores them) and a random pointer."""
    gen = torch.Generator().manual_seed(seed)
    grid = _grid(model)
    raw = features.flatten(2).permute(2, 0, 1) - model.no_mem_embed
    memories: list[tuple[torch.Tensor, list[torch.Tensor]]] = []
    with torch.no_grad():
        for i in range(4):
            logits = torch.randn(1, 1, low_res, low_res, generator=gen) * 8
            high = F.interpolate(
                logits, (model.image_size,) * 2, mode="bilinear", align_corners=False
            )
            score = torch.tensor([[1.0 if i else -1.0]])
            memories.append(
                model._encode_new_memory([raw], [grid], high, score, is_mask_from_pts=False)
            )
    return [
        {
            "maskmem_features": memories[i % 4][0].to(torch.bfloat16),
            "maskmem_pos_enc": memories[i % 4][1],
            "obj_ptr": torch.randn(1, model.hidden_dim, generator=gen),
        }
        for i in range(frames)
    ]


#: Memory-attention parity cases: (frame, conditioning frames, tracked frames, reverse,
#: video length): memories and pointers of several counts, forward and in reverse.
ATTENTION_CASES = (
    (1, (0,), (), False, 50),
    (5, (0,), (2, 3, 4), False, 50),
    (14, (30, 2), (15, 17), True, 40),
)


def _attention_feeds(
    spec: ModelSpec, case: tuple, embeddings: np.ndarray, outs: list[dict[str, Any]]
) -> dict[str, np.ndarray]:
    from ..video.memory import select_memories

    video = spec.video
    assert video is not None
    frame, cond, tracked, reverse, num_frames = case
    sel = select_memories(video, frame, cond, tracked, num_frames, reverse)
    memory = np.stack(
        [outs[t]["maskmem_features"].float().flatten(2)[0].t().numpy() for t in sel.memory_frames]
    )
    ptrs = [outs[t]["obj_ptr"][0].numpy() for t in sel.pointer_frames]
    hidden = spec.embedding_shape[0]
    return {
        "image_embeddings": embeddings,
        MEMORY_FEATURES: memory,
        MEMORY_TPOS: np.asarray(sel.memory_tpos, dtype=np.int64),
        OBJ_PTRS: np.stack(ptrs) if ptrs else np.zeros((0, hidden), np.float32),
        OBJ_PTR_TPOS: sel.pointer_tpos(),
    }


def _official_attention(
    model: Official, case: tuple, vision: tuple, outs: list[dict[str, Any]]
) -> np.ndarray:
    frame, cond, tracked, reverse, num_frames = case
    feats, pos = vision
    output_dict = {
        "cond_frame_outputs": {t: outs[t] for t in cond},
        "non_cond_frame_outputs": {t: outs[t] for t in tracked},
    }
    with torch.no_grad():
        out = model._prepare_memory_conditioned_features(
            frame_idx=frame,
            is_init_cond_frame=False,
            current_vision_feats=[feats],
            current_vision_pos_embeds=[pos],
            feat_sizes=[_grid(model)],
            output_dict=output_dict,
            num_frames=num_frames,
            track_in_reverse=reverse,
        )
    return out.numpy()


def export_video(
    spec: ModelSpec,
    model: Official,
    features: list[torch.Tensor],
    work: Path,
    export_graph: Callable[..., list[Path]],
    threads: int | None,
    say: Callable[[str], None],
) -> tuple[dict[str, list[Path]], dict[str, Any]]:
    """Trace the video graphs of ``spec.video.roles`` into ``work`` and check them against
    the official model, on the image encoder's outputs ``features`` of the export's image.

    Returns:
        ``({role: files}, parity report)``.

    Raises:
        ExportError: the official settings differ from ``spec.video``, or a graph differs
            from torch beyond :data:`VIDEO_TOL`.
    """
    video = spec.video
    assert video is not None
    say("video: checking the official tracker's settings")
    check_video_spec(spec)
    io = video.graph_io(spec)
    embeddings, high_res = features[0], features[1:]
    with torch.no_grad():
        # Sine encodings of the embedding grid: they depend on the shape alone.
        grid = spec.embedding_shape[1:]
        curr_pos = model.image_encoder.neck.position_encoding(torch.zeros(1, 1, *grid))
        mem_pos = model.memory_encoder.position_encoding(torch.zeros(1, 1, *grid))
        # The official tracker's own features: the encoder's, before the no-memory embedding
        # (the graphs subtract it from their input just so).
        raw = embeddings.flatten(2).permute(2, 0, 1) - model.no_mem_embed
    vision = (raw, curr_pos.flatten(2).permute(2, 0, 1))
    low_res = (spec.low_res_size,) * 2
    modules: dict[str, nn.Module] = {
        "memory_attention": MemoryAttentionGraph(model, curr_pos, mem_pos),
        "memory_encoder": MemoryEncoderGraph(model),
        "track_decoder": TrackDecoder(model, spec, with_mask=False),
        "track_decoder_mask": TrackDecoder(model, spec, with_mask=True),
        "mask_prompt": MaskPromptGraph(model, spec),
    }
    outs = _fixed_memories(model, embeddings, spec.low_res_size, 31, seed=5)
    feeds = _attention_feeds(spec, ATTENTION_CASES[1], embeddings.numpy(), outs)
    rng = np.random.default_rng(3)
    prompt = [torch.tensor([[[300.0, 400.0], [0.0, 0.0]]]), torch.tensor([[1.0, -1.0]])]
    mask_in = [
        torch.from_numpy(rng.standard_normal((1, 1, *low_res)).astype(np.float32) * 4),
        torch.ones(1),
    ]
    side = model.image_size
    full_mask = torch.zeros(1, 1, side, side)
    full_mask[..., side // 4 : side // 2, side // 3 : side // 2] = 1
    args = {
        "memory_attention": tuple(torch.from_numpy(feeds[n]) for n in io["memory_attention"][0]),
        "memory_encoder": (
            embeddings,
            torch.from_numpy(rng.standard_normal((1, 1, *low_res)).astype(np.float32) * 8),
            torch.zeros(1),
            torch.ones(1, 1),
        ),
        "track_decoder": (embeddings, *high_res, *prompt),
        "track_decoder_mask": (embeddings, *high_res, *prompt, *mask_in),
        "mask_prompt": (embeddings, full_mask),
    }
    dynamic = {
        "memory_attention": {
            MEMORY_FEATURES: {0: "memories"},
            MEMORY_TPOS: {0: "memories"},
            OBJ_PTRS: {0: "pointers"},
            OBJ_PTR_TPOS: {0: "pointers"},
        },
        "track_decoder": {POINT_COORDS: {1: "num_points"}, POINT_LABELS: {1: "num_points"}},
        "track_decoder_mask": {POINT_COORDS: {1: "num_points"}, POINT_LABELS: {1: "num_points"}},
    }
    from .attention import fused_sdpa
    from .exporter import OPSET

    fused = (partial(fused_sdpa, OPSET),)
    files = {}
    for role in video.roles:
        inputs, outputs = io[role]
        files[role] = export_graph(
            modules[role].eval(),
            args[role],
            work / f"{role}.onnx",
            list(inputs),
            list(outputs),
            dynamic.get(role),
            trace=fused if role == "memory_attention" else (),
            say=say,
        )
    parity = _video_parity(spec, model, work, embeddings, high_res, vision, outs, threads, say)
    return files, parity


def _rel_err(got: np.ndarray, want: np.ndarray) -> float:
    scale = max(1.0, float(np.max(np.abs(want)))) if want.size else 1.0
    if got.shape != want.shape:
        return math.inf
    return float(np.max(np.abs(got.astype(np.float64) - want), initial=0.0)) / scale


def _video_parity(
    spec: ModelSpec,
    model: Official,
    work: Path,
    embeddings: torch.Tensor,
    high_res: list[torch.Tensor],
    vision: tuple[torch.Tensor, torch.Tensor],
    outs: list[dict[str, Any]],
    threads: int | None,
    say: Callable[[str], None],
) -> dict[str, Any]:
    """Each video graph in ONNX Runtime against the official ``SAM2Base`` methods."""
    from ..runtime.postprocess import select_masks
    from ..runtime.session import create_session
    from ..video.masks import mask_prompt

    video = spec.video
    assert video is not None
    io = video.graph_io(spec)
    grid = _grid(model)
    low_res = (spec.low_res_size,) * 2
    sessions = {
        role: create_session(work / f"{role}.onnx", threads=threads) for role in video.roles
    }
    errors: dict[str, float] = {}

    def record(role: str, err: float) -> None:
        errors[role] = max(errors.get(role, 0.0), err)

    def run(role: str, values: list[Any]) -> list[np.ndarray]:
        names, outputs = io[role]
        feeds = {
            n: np.asarray(v, dtype=np.int64 if n == MEMORY_TPOS else np.float32)
            for n, v in zip(names, values, strict=True)
        }
        return sessions[role].run(list(outputs), feeds)

    emb = embeddings.numpy()
    hr = [h.numpy() for h in high_res]
    say("memory_attention: parity with torch")
    conditioned = []
    for case in ATTENTION_CASES:
        feeds = _attention_feeds(spec, case, emb, outs)
        got = sessions["memory_attention"].run([CONDITIONED_EMBEDDINGS], feeds)[0]
        conditioned.append(_official_attention(model, case, vision, outs))
        record("memory_attention", _rel_err(got, conditioned[-1]))

    say("memory_encoder: parity with torch")
    raw = [vision[0]]
    rng = np.random.default_rng(9)
    binarize = model.binarize_mask_from_pts_for_mem_enc
    try:
        for bin_flag, obj_score in ((0.0, 1.5), (1.0, 2.0), (0.0, -0.5)):
            logits = rng.standard_normal((1, 1, *low_res)).astype(np.float32) * 8
            got = run("memory_encoder", [emb, logits, [bin_flag], [[obj_score]]])[0]
            model.binarize_mask_from_pts_for_mem_enc = True
            with torch.no_grad():
                high = F.interpolate(
                    torch.from_numpy(logits),
                    (model.image_size,) * 2,
                    mode="bilinear",
                    align_corners=False,
                )
                want, _ = model._encode_new_memory(
                    raw, [grid], high, torch.tensor([[obj_score]]), is_mask_from_pts=bool(bin_flag)
                )
            record("memory_encoder", _rel_err(got, want.flatten(2).transpose(1, 2).numpy()))
    finally:
        model.binarize_mask_from_pts_for_mem_enc = binarize

    say("track_decoder: parity with torch")
    hr_t = [torch.from_numpy(h) for h in hr]
    prompted = torch.from_numpy(emb)
    tracked = torch.from_numpy(conditioned[1])
    point = (np.array([[[512.0, 300.0]]], np.float32), np.array([[1]], np.int32))
    box = (
        np.array([[[100.0, 200.0], [700.0, 900.0], [400.0, 500.0]]], np.float32),
        np.array([[2, 3, 0]], np.int32),
    )
    prev_logits = np.clip(rng.standard_normal((1, 1, *low_res)) * 8, -32, 32).astype(np.float32)
    # (features, points, labels, previous logits, multimask): a click, a box, a correction
    # with the previous logits, a tracked frame (no prompt at all).
    cases = [
        (prompted, *point, None, True),
        (prompted, *point, None, False),
        (prompted, *box, None, False),
        (tracked, *point, prev_logits, True),
        (tracked, None, None, None, True),
    ]
    for pix, coords, labels, prev, multimask in cases:
        point_inputs = None
        if coords is not None:
            point_inputs = {
                "point_coords": torch.from_numpy(coords),
                "point_labels": torch.from_numpy(labels),
            }
        with torch.no_grad():
            want = model._forward_sam_heads(
                pix,
                point_inputs,
                None if prev is None else torch.from_numpy(prev),
                hr_t,
                multimask,
            )
        # No points: a "not a point" of the official code; then its padding point.
        c = np.zeros((1, 1, 2), np.float32) if coords is None else coords
        lab = -np.ones((1, 1), np.float32) if labels is None else labels.astype(np.float32)
        c = np.concatenate([c, np.zeros((1, 1, 2), np.float32)], 1)
        lab = np.concatenate([lab, -np.ones((1, 1), np.float32)], 1)
        role = "track_decoder" if prev is None else "track_decoder_mask"
        extra = [] if prev is None else [prev, np.ones(1, np.float32)]
        low, iou, score, ptrs = run(role, [pix.numpy(), *hr, c, lab, *extra])
        if multimask:
            token = 1 + int(np.argmax(iou[0, 1:]))
            picked = low[:, token : token + 1]
        else:
            token, (picked, _) = 0, select_masks(low, iou, spec, False)
        record(
            role,
            max(
                _rel_err(picked, want[3].numpy()),
                _rel_err(ptrs[:, token], want[5].numpy()),
                _rel_err(score, want[6].numpy()),
            ),
        )

    say("mask_prompt: parity with torch")
    for shape in ((480, 854), (model.image_size,) * 2):
        m = np.zeros(shape, bool)
        if shape[0] == 480:
            m[100:300, 200:500] = True
        full, _ = mask_prompt(m, model.image_size, spec.low_res_size)
        got = run("mask_prompt", [emb, full[None, None]])[0]
        with torch.no_grad():
            raw_pix = vision[0].permute(1, 2, 0).reshape(1, -1, *grid)
            want = model._use_mask_as_output(raw_pix, hr_t, torch.from_numpy(full)[None, None])
        record("mask_prompt", _rel_err(got, want[5].numpy()))
    report = {
        "video_tolerance": VIDEO_TOL,
        "video_max_rel_error": errors,
        "video_passed": all(e <= VIDEO_TOL for e in errors.values()),
    }
    if not report["video_passed"]:
        worst = max(errors, key=errors.__getitem__)
        raise ExportError(
            f"{spec.name}: the video graph {worst} differs from torch by {errors[worst]:.2e} "
            f"(tolerance {VIDEO_TOL:.0e}); nothing was written"
        )
    return report
