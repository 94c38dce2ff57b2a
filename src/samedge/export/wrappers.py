"""Export wrappers: the official modules rearranged into static ONNX graphs.

These graphs are exported:

* :class:`ImageEncoder`: the official image encoder (SAM 2: plus its feature preparation).
* :class:`DecoderContext`: the decoder's prompt-independent work, once per image.
* :class:`FastDecoder`: prompt encoder + mask decoder for ``B`` prompt sets;
* :class:`DecoderHead` + :class:`DecoderUpscaler`: the same decoder in two graphs, scores
  first, masks on demand.

:class:`PromptDecoder` is the official decoder maths as the official modules run it; it is
not exported but is the reference that the exported pair must match (the export's parity
gate). :class:`DecoderContext` + :class:`FastDecoder` compute the same function with the
same weights, reorganised for a CPU:

* the per-image part of the first transformer block (the image side's key and value
  projections, the positional encoding, the no-mask embedding) runs once per image instead
  of once per prompt; a mask prompt adds its contribution through the mask embedding's
  last (linear) layer folded into those projections, 16 instead of 256 input channels;
* the other cross-attentions never project the 64 x 64 image side: a prompt has only
  ``T`` tokens (about 8), so each head's token queries (or keys) are multiplied into the
  image-side projection weights first, giving ``heads x T`` rows of ``C`` weights that
  meet the image features once (see :meth:`FastDecoderBase._attend_image` and
  :meth:`FastDecoderBase._attend_tokens`): about 0.9 fewer GFLOP per prompt of one click and
  no per-head transposes of image-sized tensors. The cost grows with ``T``: measured on
  SAM 2.1 tiny (2 threads), a prompt of 1 point decodes in 21.9 instead of 28.3 ms, of 12
  points in the same time as projecting the image side, of 24 points 20 % slower;
* the image side never gets repeated per prompt: batch-1 tensors broadcast;
* linear layers run on 2-D views (one GEMM with the bias fused, no separate add);
* the transposed convolutions of the upscaling (kernel 2, stride 2, so one GEMM per pixel)
  stay in channels-last "phase" layout: no col2im, no pixel shuffle of features, layer
  norms over the last axis; only the four output masks are rearranged into image order.

Like the official ``SamOnnxModel``, control flow is replaced by arithmetic so the graphs
stay static: point labels select embeddings by multiplication, ``has_mask_input`` blends the
mask embedding in. Unlike it, the decoder stops at low-resolution logits of all four mask
tokens; choosing masks and upscaling happen on the host (``samedge.runtime.postprocess``),
which keeps one graph for every prompt type and every provider.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..specs import ModelSpec
from .build import Official, sam_api


def _sam_modules(spec: ModelSpec) -> bool:
    """The model has SAM's ``image_encoder``, ``prompt_encoder`` and ``mask_decoder``: the
    SAM-API families, and EfficientSAM (whose prompt encoder embeds points differently, has
    no mask prompt, and whose decoder differs in its first block and upscaling)."""
    return sam_api(spec) or spec.family == "efficientsam"


class ImageEncoder(nn.Module):
    """``image (1, 3, 1024, 1024)`` -> image embedding (+ SAM 2's high-res features)."""

    def __init__(self, model: nn.Module, spec: ModelSpec) -> None:
        super().__init__()
        self.model: Official = model
        self.spec = spec

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if _sam_modules(self.spec):
            return (self.model.image_encoder(image),)
        # As SAM2ImagePredictor.set_image, for one image.
        backbone_out = self.model.forward_image(image)
        _, vision_feats, _, _ = self.model._prepare_backbone_features(backbone_out)
        if self.model.directly_add_no_mem_embed:
            vision_feats[-1] = vision_feats[-1] + self.model.no_mem_embed
        shapes = [*self.spec.high_res_shapes, self.spec.embedding_shape]
        feats = [
            feat.permute(1, 2, 0).reshape(1, c, h, w)
            for feat, (c, h, w) in zip(vision_feats, shapes, strict=True)
        ]
        return (feats[-1], *feats[:-1])


class PromptDecoder(nn.Module):
    """Prompt encoder + mask decoder for ``B`` prompt sets of ``N`` points each.

    Inputs: image embedding ``(1, C, 64, 64)`` [+ high-res features], ``point_coords``
    ``(B, N, 2)`` in the 1024-pixel prompt frame (``spec.prompt_size``), ``point_labels``
    ``(B, N)`` float (1 positive, 0 negative, 2/3 box corners, -1 padding), ``mask_input``
    ``(B, 1, 256, 256)``
    and ``has_mask_input`` ``(B,)``.
    Outputs: ``low_res_masks`` ``(B, 4, 256, 256)``, ``iou_predictions`` ``(B, 4)`` [and
    ``object_score_logits`` ``(B, 1)`` for SAM 2].
    """

    prompt_encoder: Official
    mask_decoder: Official

    def __init__(self, model: nn.Module, spec: ModelSpec) -> None:
        super().__init__()
        self.spec = spec
        if _sam_modules(spec):
            self.prompt_encoder = model.prompt_encoder
            self.mask_decoder = model.mask_decoder
        else:
            self.prompt_encoder = model.sam_prompt_encoder
            self.mask_decoder = model.sam_mask_decoder

    def _embed_points(self, coords: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        pe = self.prompt_encoder
        if self.spec.family == "efficientsam":  # padded to 6 points as the official model
            return pe.embed(coords, labels)
        coords = (coords + 0.5) / self.spec.prompt_size
        embedding = pe.pe_layer._pe_encoding(coords)
        labels = labels.unsqueeze(-1)
        embedding = embedding * (labels != -1)
        embedding = embedding + pe.not_a_point_embed.weight * (labels == -1)
        for i in range(pe.num_point_embeddings):
            embedding = embedding + pe.point_embeddings[i].weight * (labels == i)
        return embedding

    def _embed_masks(self, mask_input: torch.Tensor, has_mask: torch.Tensor) -> torch.Tensor:
        pe = self.prompt_encoder
        has_mask = has_mask.reshape(-1, 1, 1, 1)
        no_mask = pe.no_mask_embed.weight.reshape(1, -1, 1, 1)
        return has_mask * pe.mask_downscaling(mask_input) + (1 - has_mask) * no_mask

    def forward(
        self, image_embeddings: torch.Tensor, *args: torch.Tensor
    ) -> tuple[torch.Tensor, ...]:
        n_high = len(self.spec.high_res_shapes)
        high_res = list(args[:n_high])
        point_coords, point_labels, mask_input, has_mask_input = args[n_high:]
        sparse = self._embed_points(point_coords, point_labels)
        image_pe = self.prompt_encoder.get_dense_pe()
        if not self.spec.mask_prompt:  # EfficientSAM: no dense embedding at all
            return self.mask_decoder.predict_masks(image_embeddings, image_pe, sparse)
        dense = self._embed_masks(mask_input, has_mask_input)
        if sam_api(self.spec):
            masks, iou = self.mask_decoder.predict_masks(
                image_embeddings=image_embeddings,
                image_pe=image_pe,
                sparse_prompt_embeddings=sparse,
                dense_prompt_embeddings=dense,
            )
            return masks, iou
        masks, iou, _, object_score = self.mask_decoder.predict_masks(
            image_embeddings=image_embeddings,
            image_pe=image_pe,
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            repeat_image=True,
            high_res_features=high_res,
        )
        return masks, iou, object_score


def _linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """``x @ weight.T + bias`` on a 2-D view: one Gemm with the bias fused in the graph."""
    shape = x.shape
    out = torch.addmm(bias, x.reshape(-1, shape[-1]), weight.t())
    return out.reshape(*shape[:-1], out.shape[-1])


def _linear_onto(x: torch.Tensor, weight: torch.Tensor, base: torch.Tensor) -> torch.Tensor:
    """``x @ weight.T + base`` for ``x`` ``(B, rows, K)`` and a per-image ``base`` of batch 1
    (``rows * N`` values): one Gemm whose addend is ``base`` repeated over the batch.

    The graph repeats ``base`` with an ``Expand``; for one prompt set that copy is
    needless, and :func:`samedge.export.graph.single_prompt_addends` gives those Gemms a
    branch that adds ``base`` directly.
    """
    b, rows, k = x.shape
    addend = base.reshape(1, rows, -1).expand(b, -1, -1).reshape(b * rows, -1)
    return torch.addmm(addend, x.reshape(b * rows, k), weight.t()).reshape(b, rows, -1)


def _split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """``(b, n, c)`` -> ``(b, heads, n, c / heads)``, as the official ``_separate_heads``."""
    b, n, c = x.shape
    return x.reshape(b, n, heads, c // heads).transpose(1, 2)


def _merge_heads(x: torch.Tensor) -> torch.Tensor:
    b, h, n, d = x.shape
    return x.transpose(1, 2).reshape(b, n, h * d)


def _scale(attn: Official) -> float:
    """The official attention's ``1 / sqrt(head dim)``, applied to the queries."""
    return 1.0 / math.sqrt(attn.internal_dim // attn.num_heads)


def _project(layer: nn.Linear, x: torch.Tensor, heads: int, scale: float = 1.0) -> torch.Tensor:
    out = _split_heads(_linear(x, layer.weight, layer.bias), heads)
    return out * scale if scale != 1.0 else out


def _attend(attn: Official, q: torch.Tensor, k_t: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """The official ``Attention`` after its projections (``q`` already scaled, keys given
    transposed: ``(B, heads, d, S)``, as the context stores the first block's image keys).

    Batch dimensions broadcast, so per-image tensors of batch 1 are never repeated.
    """
    weights = torch.softmax(q @ k_t, dim=-1)
    out = attn.out_proj
    return _linear(_merge_heads(weights @ v), out.weight, out.bias)


def _per_head(weight: torch.Tensor, heads: int) -> torch.Tensor:
    """A projection's ``(heads * d, C)`` weight as ``(heads, d, C)``: each head's rows."""
    return weight.reshape(heads, -1, weight.shape[-1])


def _convt_matrix(conv: nn.ConvTranspose2d) -> tuple[torch.Tensor, torch.Tensor]:
    """A kernel-2, stride-2 transposed convolution as ``(4 * out, in)`` [a, b, out] + bias."""
    w = conv.weight  # (in, out, 2, 2)
    assert conv.bias is not None  # the official upscaling convolutions have biases
    return w.permute(2, 3, 1, 0).reshape(-1, w.shape[0]), conv.bias.repeat(4)


def _conv_matrix(conv: nn.Conv2d) -> torch.Tensor:
    """A kernel-2, stride-2 convolution as ``(out, 4 * in)`` over [a, b, in] patches."""
    w = conv.weight  # (out, in, 2, 2)
    return w.permute(0, 2, 3, 1).reshape(w.shape[0], -1)


def _space_to_depth(x: torch.Tensor, side: int) -> torch.Tensor:
    """``(B, side * side, c)`` row-major pixels -> ``(B, side/2 * side/2, 4c)`` [a, b, c]."""
    c = x.shape[-1]
    half = side // 2
    x = x.reshape(-1, half, 2, half, 2, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, half * half, 4 * c)


class _DecoderParts(nn.Module):
    """The official prompt-encoder and mask-decoder modules of one model."""

    def __init__(self, model: nn.Module, spec: ModelSpec) -> None:
        super().__init__()
        self.spec = spec
        self.official = PromptDecoder(model, spec)
        self.prompt_encoder = self.official.prompt_encoder
        self.mask_decoder = self.official.mask_decoder
        self.transformer: Official = self.mask_decoder.transformer
        self.heads: int = self.transformer.layers[0].cross_attn_token_to_image.num_heads
        self.side = spec.embedding_shape[-1]  # the embedding is side x side pixels

    def dense_pe(self) -> torch.Tensor:
        """The image positional encoding, ``(1, HW, C)``."""
        return self.prompt_encoder.get_dense_pe().flatten(2).transpose(1, 2)

    def no_mask(self) -> torch.Tensor:
        """What the decoder adds to the image embedding without a mask prompt, ``(1, 1, C)``:
        the no-mask embedding; zero for a decoder that takes no mask prompt."""
        if not self.spec.mask_prompt:
            return torch.zeros(1, 1, self.spec.embedding_shape[0])
        return self.prompt_encoder.no_mask_embed.weight.reshape(1, 1, -1)


class DecoderContext(_DecoderParts):
    """The decoder's per-image work: image embedding [+ SAM 2 high-res features] -> context.

    Outputs (``spec.context_outputs``), float32, batch 1, ``HW`` = 64 x 64 pixels:
        ``ctx_keys`` ``(1, HW, C)``: image embedding + no-mask embedding, channels last;
        ``ctx_keys_pe`` ``(1, HW, C)``: the same + the positional encoding;
        ``ctx_k_t`` ``(1, heads, d, HW)``: first block's token-to-image keys, transposed;
        ``ctx_v`` ``(1, heads, HW, d)``: its values;
        SAM 2 only: ``ctx_feat_s1`` ``(1, HW, 4, C/4)`` and ``ctx_feat_s0``
        ``(1, HW, 16, C/8)``, the high-res features in the upscaling's phase layout, plus
        the bias of the transposed convolution they are added to (so the decoder adds
        one tensor where the official module adds a bias and then the feature).
    """

    def forward(self, image_embeddings: torch.Tensor, *high_res: torch.Tensor):
        keys = image_embeddings.flatten(2).transpose(1, 2) + self.no_mask()
        keys_pe = keys + self.dense_pe()
        t2i = self.transformer.layers[0].cross_attn_token_to_image
        out = [
            keys,
            keys_pe,
            _project(t2i.k_proj, keys_pe, self.heads).transpose(-1, -2),
            _project(t2i.v_proj, keys, self.heads),
        ]
        if high_res:
            side = self.side
            feat_s0, feat_s1 = high_res
            c1, c0 = feat_s1.shape[1], feat_s0.shape[1]
            dc1, _, _, dc2, _ = self.mask_decoder.output_upscaling
            s1 = feat_s1.reshape(c1, side, 2, side, 2).permute(1, 3, 2, 4, 0) + dc1.bias
            s0 = feat_s0.reshape(c0, side, 2, 2, side, 2, 2).permute(1, 4, 2, 5, 3, 6, 0)
            s0 = s0 + dc2.bias
            out += [s1.reshape(1, side * side, 4, c1), s0.reshape(1, side * side, 16, c0)]
        return tuple(out)


class FastDecoderBase(_DecoderParts):
    """:class:`FastDecoder`'s computation without a ``forward``: the graphs built from it
    (:class:`FastDecoder`, :class:`DecoderHead`, :class:`DecoderUpscaler`, the video
    tracker's ``TrackDecoder``) each take their own inputs."""

    def __init__(self, model: nn.Module, spec: ModelSpec, with_mask: bool) -> None:
        super().__init__(model, spec)
        self.with_mask = with_mask

    def _mask_features(self, mask_input: torch.Tensor) -> torch.Tensor:
        """The mask embedding before its last 1x1 convolution, channels last: ``(B, HW, 16)``."""
        conv1, ln1, act1, conv2, ln2, act2, _ = self.prompt_encoder.mask_downscaling
        side = 4 * self.side
        x = _space_to_depth(mask_input.reshape(-1, side * side, 1), side)
        x = _linear(x, _conv_matrix(conv1), conv1.bias)
        x = act1(F.layer_norm(x, (conv1.out_channels,), ln1.weight, ln1.bias, ln1.eps))
        x = _linear(_space_to_depth(x, side // 2), _conv_matrix(conv2), conv2.bias)
        return act2(F.layer_norm(x, (conv2.out_channels,), ln2.weight, ln2.bias, ln2.eps))

    def _mask_contribution(
        self, mask_input: torch.Tensor, has_mask: torch.Tensor
    ) -> list[torch.Tensor]:
        """A mask prompt's change to the keys (with or without the positional encoding: the
        same) and to the first block's transposed keys and values.

        The official mask embedding is ``conv1x1(h)`` of 16-channel features ``h`` and
        replaces the no-mask embedding. Its difference from the no-mask embedding reaches
        the first block only through linear maps, so those maps are applied to ``h`` with
        their weights multiplied out: 16 input channels per pixel instead of 256.
        """
        conv3 = self.prompt_encoder.mask_downscaling[-1]
        t2i = self.transformer.layers[0].cross_attn_token_to_image
        w3 = conv3.weight.reshape(conv3.weight.shape[0], -1)  # (C, 16)
        b3 = conv3.bias - self.no_mask().reshape(-1)
        h = self._mask_features(mask_input)
        gate = has_mask.reshape(-1, 1, 1)
        k, v = (
            _split_heads(_linear(h, proj.weight @ w3, proj.weight @ b3) * gate, self.heads)
            for proj in (t2i.k_proj, t2i.v_proj)
        )
        return [_linear(h, w3, b3) * gate, k.transpose(-1, -2), v]

    def _tokens(self, coords: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, int]:
        """Output tokens + point embeddings ``(B, T, C)``, and the index of the IoU token."""
        md = self.mask_decoder
        sparse = self.official._embed_points(coords, labels)
        parts = [md.iou_token.weight, md.mask_tokens.weight]
        if self.spec.has_object_score:
            parts.insert(0, md.obj_score_token.weight)
        tokens = torch.cat(parts, 0).unsqueeze(0).expand(sparse.shape[0], -1, -1)
        return torch.cat((tokens, sparse), 1), len(parts) - 2

    def _attend_image(
        self, attn: Official, q_in: torch.Tensor, x_k_t: torch.Tensor, x_v: torch.Tensor
    ) -> torch.Tensor:
        """Token-to-image attention without projecting the image: ``(B, T, C)``.

        ``q_in`` ``(B, T, C)`` token queries; ``x_k_t`` ``(B, C, HW)`` image keys input,
        transposed; ``x_v`` ``(B, HW, C)`` image values input. Per head, ``q k^T`` =
        ``(q W_k) x_k^T``: the ``T`` queries are multiplied into the key weights first (the
        key bias adds the same score to every image position of a query, which the softmax
        cancels). The values' weights apply after the attention (``P (x_v W_v^T + b) =
        (P x_v) W_v^T + b``, since each row of ``P`` sums to 1).
        """
        h = self.heads
        q = _project(attn.q_proj, q_in, h, _scale(attn))  # (B, h, T, d)
        b, _, t, _ = q.shape
        c = x_v.shape[-1]
        qk = (q @ _per_head(attn.k_proj.weight, h)).reshape(b, h * t, c)
        weights = torch.softmax(qk @ x_k_t, dim=-1)  # (B, hT, HW)
        pooled = (weights @ x_v).reshape(b, h, t, c)
        wv = _per_head(attn.v_proj.weight, h).transpose(1, 2)  # (h, C, d)
        out = pooled @ wv + attn.v_proj.bias.reshape(h, 1, -1)
        return _linear(_merge_heads(out), attn.out_proj.weight, attn.out_proj.bias)

    def _attend_tokens(
        self, attn: Official, x_q: torch.Tensor, k_in: torch.Tensor, v_in: torch.Tensor
    ) -> torch.Tensor:
        """Image-to-token attention without projecting the image: ``(B, HW, C)``.

        ``x_q`` ``(B, HW, C)`` image queries input; ``k_in``, ``v_in`` ``(B, T, C)`` token
        keys and values inputs. Per head, ``q k^T = x_q (W_q^T k^T) + b_q k^T``: the keys
        are multiplied into the query weights, and the values into the output projection's
        weights, so the image side meets two ``(C, heads x T)`` matrices instead of two
        ``C x C/2`` projections, and the heads are never split out of it. The output
        projection's bias is spread over the value rows (``b / heads`` on each): every
        head's attention weights sum to 1, so the product adds exactly ``b``, and the
        image-sized tensor is not passed over a second time to add it.
        """
        h, scale = self.heads, _scale(attn)
        k = _project(attn.k_proj, k_in, h, scale)  # (B, h, T, d)
        v = _project(attn.v_proj, v_in, h)
        b, _, t, _ = k.shape
        hw, c = x_q.shape[1:]
        kq = (k @ _per_head(attn.q_proj.weight, h)).reshape(b, h * t, c)
        bias = (k @ attn.q_proj.bias.reshape(h, -1, 1)).reshape(b, 1, h * t)
        vo = (v @ _per_head(attn.out_proj.weight.t(), h)).reshape(b, h * t, c)
        vo = vo + attn.out_proj.bias / h
        scores = (x_q @ kq.transpose(1, 2) + bias).reshape(b, hw, h, t)  # (B, HW, h, T)
        weights = torch.softmax(scores, dim=-1).reshape(b, hw, h * t)
        return weights @ vo

    def _transformer(
        self, *args: torch.Tensor, all_tokens: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, tuple[torch.Tensor, ...]]:
        """The two-way transformer on the prompts: returns the hypernetworks' mask vectors
        ``(B, M, c2)``, the final queries ``(B, T, C)`` (IoU, object-score tokens...; with
        ``all_tokens`` every token, the mask tokens and prompts' too, as the video tracker's
        object pointers need), the image side ``(B, HW, C)`` and the context's high-res
        features."""
        n_high = len(self.spec.high_res_shapes)
        keys, keys_pe, k_img, v_img = args[:4]
        feats = args[4 : 4 + n_high]
        coords, labels = args[4 + n_high : 6 + n_high]
        if self.with_mask:
            delta, dk, dv = self._mask_contribution(*args[6 + n_high :])
            keys, keys_pe, k_img, v_img = keys + delta, keys_pe + delta, k_img + dk, v_img + dv
        tokens, s = self._tokens(coords, labels)
        pe = self.dense_pe()
        h = self.heads
        queries = tokens
        for i, layer in enumerate(self.transformer.layers):
            sa = layer.self_attn
            t2i, i2t = layer.cross_attn_token_to_image, layer.cross_attn_image_to_token
            x = queries if layer.skip_first_layer_pe else queries + tokens
            # EfficientSAM's blocks attend over, and add to, the queries with their encoding
            # (the first block too); SAM's values and residual leave it out, and its first
            # block has no residual.
            residual = x if self.spec.family == "efficientsam" else queries
            attn = _attend(
                sa,
                _project(sa.q_proj, x, h, _scale(sa)),
                _project(sa.k_proj, x, h).transpose(-1, -2),
                _project(sa.v_proj, residual, h),
            )
            if layer.skip_first_layer_pe and self.spec.family != "efficientsam":
                queries = layer.norm1(attn)
            else:
                queries = layer.norm1(residual + attn)
            if i == 0:  # the first block's image keys and values come from the context
                q_tok = _project(t2i.q_proj, queries + tokens, h, _scale(t2i))
                attn = _attend(t2i, q_tok, k_img, v_img)
            else:
                keys_pe = keys + pe
                attn = self._attend_image(t2i, queries + tokens, keys_pe.transpose(1, 2), keys)
            queries = layer.norm2(queries + attn)
            queries = layer.norm3(queries + layer.mlp(queries))
            attn = self._attend_tokens(i2t, keys_pe, queries + tokens, queries)
            keys = layer.norm4(keys + attn)
        fin = self.transformer.final_attn_token_to_image
        attn = self._attend_image(fin, queries + tokens, (keys + pe).transpose(1, 2), keys)
        queries = self.transformer.norm_final_attn(queries + attn)
        md = self.mask_decoder
        mask_tokens = queries[:, s + 1 : s + 1 + md.num_mask_tokens]
        hyper = torch.stack(
            [mlp(mask_tokens[:, i, :]) for i, mlp in enumerate(md.output_hypernetworks_mlps)], 1
        )
        return hyper, queries if all_tokens else queries[:, : s + 1], keys, feats

    def _scores(self, queries: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """``iou_predictions`` [and ``object_score_logits``] from the final queries."""
        s = queries.shape[1] - 1  # the IoU token is the last one before the mask tokens
        iou = self.mask_decoder.iou_prediction_head(queries[:, s, :])
        if not self.spec.has_object_score:
            return (iou,)
        return iou, self.mask_decoder.pred_obj_score_head(queries[:, 0, :])

    def _upscaling(
        self,
    ) -> tuple[
        nn.ConvTranspose2d,
        Callable[[torch.Tensor], torch.Tensor],
        nn.Module,
        nn.ConvTranspose2d,
        nn.Module,
    ]:
        """The upscaling's transposed convolutions and activations, and its normalisation
        of ``(B, HW, 4, c1)`` phase-layout features: SAM's per-pixel layer norm over the
        channels, or EfficientSAM's ``GroupNorm(1, c1)`` over everything of one prompt set."""
        md = self.mask_decoder
        if self.spec.family == "efficientsam":
            (dc1, gn, act1), (dc2, _, act2) = md.final_output_upscaling_layers

            shape = (self.side * self.side, 4, gn.num_channels)  # static for the trace

            def norm(x: torch.Tensor) -> torch.Tensor:
                return F.layer_norm(x, shape, eps=gn.eps) * gn.weight + gn.bias

            return dc1, norm, act1, dc2, act2
        dc1, ln, act1, dc2, act2 = md.output_upscaling
        channels = (dc1.out_channels,)  # static for the trace

        def layer_norm(x: torch.Tensor) -> torch.Tensor:
            return F.layer_norm(x, channels, ln.weight, ln.bias, ln.eps)

        return dc1, layer_norm, act1, dc2, act2

    def _masks(
        self, hyper: torch.Tensor, keys: torch.Tensor, feats: tuple[torch.Tensor, ...]
    ) -> torch.Tensor:
        """Upscaling in phase layout, times the hypernetworks' vectors ``hyper``
        ``(B, M, c2)``: ``(B, M, 4 * side, 4 * side)`` logits.

        Row ``p`` of the ``(B, HW, 4, c1)`` and ``(B, HW, 16, c2)`` tensors is embedding
        pixel ``(i, j)``; the phases ``[a, b]`` and ``[a, b, a2, b2]`` are the output pixels
        ``(2i + a, 2j + b)`` and ``(4i + 2a + a2, 4j + 2b + b2)`` of the two transposed
        convolutions.
        """
        dc1, norm1, act1, dc2, act2 = self._upscaling()
        c1, c2 = dc1.out_channels, dc2.out_channels
        side, bsz = self.side, hyper.shape[0]
        hw = side * side
        w1, b1 = _convt_matrix(dc1)
        w2, b2 = _convt_matrix(dc2)
        if feats:  # SAM 2: the features (biases included) are each product's addend
            x = _linear_onto(keys, w1, feats[0]).reshape(bsz, hw, 4, c1)
        else:
            x = _linear(keys, w1, b1).reshape(bsz, hw, 4, c1)
        x = act1(norm1(x))
        x = x.reshape(bsz, hw * 4, c1)
        x = _linear_onto(x, w2, feats[1]) if feats else _linear(x, w2, b2)
        x = act2(x.reshape(bsz, hw, 16, c2))
        masks = hyper @ x.reshape(bsz, hw * 16, c2).transpose(1, 2)  # (B, M, HW * 16)
        masks = masks.reshape(bsz, -1, side, side, 2, 2, 2, 2).permute(0, 1, 2, 4, 6, 3, 5, 7)
        return masks.reshape(bsz, -1, side * 4, side * 4)


class FastDecoder(FastDecoderBase):
    """Prompt encoder + mask decoder on a :class:`DecoderContext`, for ``B`` prompt sets.

    Inputs: the context tensors, ``point_coords`` ``(B, N, 2)`` (1024-pixel input frame),
    ``point_labels`` ``(B, N)`` and, when ``with_mask``, ``mask_input`` ``(B, 1, 256, 256)``
    and ``has_mask_input`` ``(B,)``. Outputs as :class:`PromptDecoder`. Without mask inputs
    the graph does no mask-embedding work at all; that is the one every point and box
    prompt uses.
    """

    def forward(self, *args: torch.Tensor) -> tuple[torch.Tensor, ...]:
        hyper, queries, keys, feats = self._transformer(*args)
        return (self._masks(hyper, keys, feats), *self._scores(queries))


class DecoderHead(FastDecoder):
    """:class:`FastDecoder` (no mask input) up to the point where the masks are drawn.

    Same inputs; outputs ``iou_predictions`` [``object_score_logits``], the image side
    after the transformer ``(B, HW, C)`` and the hypernetworks' vectors ``(B, M, c2)``
    (``spec.head_outputs``). With :class:`DecoderUpscaler` it computes exactly what
    :class:`FastDecoder` does, in two calls, so that a caller who keeps masks only above
    a predicted IoU (segment everything) upscales only the prompts that have one.
    """

    def __init__(self, model: nn.Module, spec: ModelSpec) -> None:
        super().__init__(model, spec, with_mask=False)

    def forward(self, *args: torch.Tensor) -> tuple[torch.Tensor, ...]:
        hyper, queries, keys, _ = self._transformer(*args)
        return (*self._scores(queries), keys, hyper)


class DecoderUpscaler(FastDecoderBase):
    """The masks of :class:`DecoderHead`'s outputs: ``(image side, vectors [, SAM 2 context
    high-res features])`` -> ``low_res_masks`` ``(B, M, 256, 256)`` (``spec.upscaler_inputs``)."""

    def __init__(self, model: nn.Module, spec: ModelSpec) -> None:
        super().__init__(model, spec, with_mask=False)

    def forward(
        self, keys: torch.Tensor, hyper: torch.Tensor, *feats: torch.Tensor
    ) -> torch.Tensor:
        return self._masks(hyper, keys, feats)
