"""EfficientSAM (yformer/EfficientSAM) built in samedge's own code, for export.

The authors publish no package, so the network is written here: a plain ViT image encoder
(ViT-Ti or ViT-S, global attention, a SAM-style neck), a prompt encoder that embeds only
points and box corners, and a two-way-transformer mask decoder. Module and parameter names
follow the official checkpoint's state dict (``{"model": state_dict}``), so the official
``.pt`` files load strictly with ``torch.load(..., weights_only=True)``.
``tests/test_efficientsam_network.py`` proves the network equal to the official code on the same
weights.

What differs from SAM, and where samedge handles it:

* Preprocessing: the image is stretched to 1024 x 1024 (bilinear), scaled to [0, 1], then
  ImageNet mean/std: ``ModelSpec.resize = "stretch"``.
* Prompts: every prompt set is exactly :data:`MAX_POINTS` points, padded with
  ``(-1, -1)`` points labelled -1 or truncated. A point's embedding is its positional
  encoding (padding points included) plus a learnt vector per label: -1 (padding), 1
  (foreground), 2 and 3 (box corners); a background point (0) gets none.
  :meth:`PromptEncoder.embed` does the padding inside the graph.
* No mask prompt and no dense embedding: the decoder's image side is the embedding itself
  (``ModelSpec.mask_prompt = False``: no ``decoder_mask.onnx``).
* The decoder's activations are GELU; its first upscaling layer normalises with
  ``GroupNorm(1, C)`` (over channels and pixels) instead of SAM's per-pixel layer norm.
* Masks: the low-res logits go straight to the original size by bicubic interpolation
  (``ModelSpec.mask_upscale = "bicubic"``).
"""

from __future__ import annotations

import itertools
import math
from typing import ClassVar

import torch
from torch import nn

from .pos_embed import axis_matrix

#: Points per prompt set after padding or truncation (``decoder_max_num_input_points``).
MAX_POINTS = 6
IMAGE_SIZE = 1024
PATCH = 16
#: Side (pixels) of the images the encoder's position table was learnt at (ViT pretraining).
PRETRAIN_SIZE = 224
#: ``official_builder`` -> (embedding width, heads) of the ViT image encoder.
VARIANTS: dict[str, tuple[int, int]] = {"vit_t": (192, 3), "vit_s": (384, 6)}


class _Mlp(nn.Module):
    """``fc(act(linear(...)))`` with ``num_layers`` hidden linear + activation pairs, named
    as the official ``MLPBlock`` (``layers.i.0``, ``fc``)."""

    def __init__(self, dim_in: int, hidden: int, dim_out: int, num_layers: int) -> None:
        super().__init__()
        widths = [dim_in] + [hidden] * num_layers
        self.layers = nn.ModuleList(
            nn.Sequential(nn.Linear(a, b), nn.GELU()) for a, b in itertools.pairwise(widths)
        )
        self.fc = nn.Linear(hidden, dim_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return self.fc(x)


# -- image encoder ---------------------------------------------------------------------


class _SelfAttention(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).unbind(2)
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))  # (b, heads, n, d)
        weights = torch.softmax((q @ k.transpose(-1, -2)) * (c // self.heads) ** -0.5, dim=-1)
        return self.proj((weights @ v).transpose(1, 2).reshape(b, n, c))


class _FeedForward(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class _Block(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = _SelfAttention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = _FeedForward(dim, 4 * dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class _ChannelNorm(nn.Module):
    """Layer norm over the channels of an NCHW map (eps 1e-6)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(1, keepdim=True)
        var = (x - mean).pow(2).mean(1, keepdim=True)
        x = (x - mean) / torch.sqrt(var + 1e-6)
        return x * self.weight[:, None, None] + self.bias[:, None, None]


class _PatchEmbed(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, dim, kernel_size=PATCH, stride=PATCH)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)


class ImageEncoder(nn.Module):
    """``(1, 3, 1024, 1024)`` normalised image -> ``(1, 256, 64, 64)`` embedding.

    A 12-block ViT with global attention; its absolute position table (learnt for 14 x 14
    patches plus a class token) is resized bicubically to 64 x 64, then a 1x1 and a 3x3
    convolution, each followed by a channel layer norm, map it to 256 channels.
    """

    def __init__(self, dim: int, heads: int, depth: int = 12, out_dim: int = 256) -> None:
        super().__init__()
        self.img_size = IMAGE_SIZE
        self.patch_embed = _PatchEmbed(dim)
        grid = PRETRAIN_SIZE // PATCH
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + grid * grid, dim))
        self.blocks = nn.ModuleList(_Block(dim, heads) for _ in range(depth))
        self.neck = nn.Sequential(
            nn.Conv2d(dim, out_dim, kernel_size=1, bias=False),
            _ChannelNorm(out_dim),
            nn.Conv2d(out_dim, out_dim, kernel_size=3, padding=1, bias=False),
            _ChannelNorm(out_dim),
        )

    def _positions(self, side: int) -> torch.Tensor:
        """The position table without its class token, ``(1, side, side, dim)``."""
        table = self.pos_embed[:, 1:]
        grid = math.isqrt(table.shape[1])
        table = table.reshape(1, grid, grid, -1).permute(0, 3, 1, 2)
        if grid != side:
            # Bicubic ``F.interpolate`` (align_corners=False) as ``A P A^T``: the same
            # function, but the graph folds two small products at load time where it had a
            # ``Resize`` of a constant, which OpenVINO folds with its scalar reference code
            # (12.5 s of a 12.8 s compile; see samedge.export.pos_embed).
            axis = axis_matrix(grid, side)
            table = axis @ table @ axis.t()
        return table.permute(0, 2, 3, 1)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(image).permute(0, 2, 3, 1)  # (B, 64, 64, dim)
        b, side, _, dim = x.shape
        x = (x + self._positions(side)).reshape(b, side * side, dim)
        for block in self.blocks:
            x = block(x)
        return self.neck(x.reshape(b, side, side, dim).permute(0, 3, 1, 2))


# -- prompt encoder --------------------------------------------------------------------


class _RandomFourierPE(nn.Module):
    """SAM's positional encoding by random spatial frequencies (a buffer in the checkpoint)."""

    positional_encoding_gaussian_matrix: torch.Tensor

    def __init__(self, features: int) -> None:
        super().__init__()
        self.register_buffer("positional_encoding_gaussian_matrix", torch.randn(2, features))

    def encode(self, unit_xy: torch.Tensor) -> torch.Tensor:
        """``(..., 2)`` XY in [0, 1] -> ``(..., 2 * features)``."""
        angles = (2 * unit_xy - 1) @ self.positional_encoding_gaussian_matrix * (2 * math.pi)
        return torch.cat([angles.sin(), angles.cos()], dim=-1)

    def grid(self, side: int) -> torch.Tensor:
        """Encoding of every pixel centre of a ``side x side`` grid, ``(C, side, side)``."""
        centres = (torch.arange(side, dtype=torch.float32) + 0.5) / side
        xy = torch.stack(torch.meshgrid(centres, centres, indexing="xy"), dim=-1)
        return self.encode(xy.to(self.positional_encoding_gaussian_matrix.device)).permute(2, 0, 1)


class PromptEncoder(nn.Module):
    """Points and box corners -> ``(B, MAX_POINTS, C)`` sparse embeddings."""

    #: Point label -> name of its learnt embedding; label 0 (background) has none.
    LABEL_EMBEDDINGS: ClassVar[dict[int, str]] = {
        -1: "invalid_points",
        1: "point_embeddings",
        2: "bbox_top_left_embeddings",
        3: "bbox_bottom_right_embeddings",
    }

    def __init__(self, dim: int = 256, side: int = IMAGE_SIZE // PATCH) -> None:
        super().__init__()
        self.side = side
        self.pe_layer = _RandomFourierPE(dim // 2)
        for name in self.LABEL_EMBEDDINGS.values():
            setattr(self, name, nn.Embedding(1, dim))

    def get_dense_pe(self) -> torch.Tensor:
        """Positional encoding of the image embedding's pixels, ``(1, C, 64, 64)``."""
        return self.pe_layer.grid(self.side).unsqueeze(0)

    @staticmethod
    def padded(coords: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Prompt sets of any length as the official model feeds them to its prompt encoder.

        ``coords`` ``(B, N, 2)`` in the 1024-pixel frame, ``labels`` ``(B, N)``. Negative
        coordinates and the coordinates of padding points (label -1, wherever they come
        from) become -1; the sets are then padded with ``(-1, -1)`` points labelled -1, or
        cut, to :data:`MAX_POINTS` points. Written as a concatenation and a slice, so a
        graph with a dynamic ``N`` stays static.
        """
        coords = torch.where(coords >= 0, coords, -1.0)
        coords = torch.where(labels.unsqueeze(-1) == -1, -1.0, coords)
        b = coords.shape[0]
        pad_xy = torch.full((1, MAX_POINTS, 2), -1.0).expand(b, -1, -1)
        pad_lbl = torch.full((1, MAX_POINTS), -1.0).expand(b, -1)
        coords = torch.cat([coords, pad_xy], dim=1)[:, :MAX_POINTS]
        labels = torch.cat([labels.to(coords.dtype), pad_lbl], dim=1)[:, :MAX_POINTS]
        return coords, labels

    def forward(self, coords: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Embeddings of ``(B, N, 2)`` points already padded (see :meth:`padded`)."""
        embedding = self.pe_layer.encode((coords + 0.5) / IMAGE_SIZE)
        labels = labels.unsqueeze(-1)
        for label, name in self.LABEL_EMBEDDINGS.items():
            embedding = embedding + getattr(self, name).weight * (labels == label)
        return embedding

    def embed(self, coords: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """:meth:`forward` of :meth:`padded` prompt sets: ``(B, MAX_POINTS, C)``."""
        return self(*self.padded(coords, labels))


# -- mask decoder ----------------------------------------------------------------------


class _Attention(nn.Module):
    """Attention with projections to ``dim / downsample`` channels (SAM's decoder
    attention); attribute names as the official ``AttentionForTwoWayAttentionBlock``."""

    def __init__(self, dim: int, heads: int, downsample: int = 1) -> None:
        super().__init__()
        self.num_heads = heads
        self.internal_dim = dim // downsample
        self.q_proj = nn.Linear(dim, self.internal_dim)
        self.k_proj = nn.Linear(dim, self.internal_dim)
        self.v_proj = nn.Linear(dim, self.internal_dim)
        self.out_proj = nn.Linear(self.internal_dim, dim)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        return x.reshape(b, n, self.num_heads, c // self.num_heads).transpose(1, 2)

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        q, k, v = (
            self._heads(self.q_proj(q)),
            self._heads(self.k_proj(k)),
            self._heads(self.v_proj(v)),
        )
        scale = 1.0 / math.sqrt(self.internal_dim / self.num_heads)
        out = torch.softmax((q @ k.transpose(-1, -2)) * scale, dim=-1) @ v
        b, h, n, d = out.shape
        return self.out_proj(out.transpose(1, 2).reshape(b, n, h * d))


class _TwoWayBlock(nn.Module):
    def __init__(self, dim: int, heads: int, mlp_dim: int, skip_first_layer_pe: bool) -> None:
        super().__init__()
        self.self_attn = _Attention(dim, heads)
        self.norm1 = nn.LayerNorm(dim)
        self.cross_attn_token_to_image = _Attention(dim, heads, downsample=2)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = _Mlp(dim, mlp_dim, dim, num_layers=1)
        self.norm3 = nn.LayerNorm(dim)
        self.norm4 = nn.LayerNorm(dim)
        self.cross_attn_image_to_token = _Attention(dim, heads, downsample=2)
        self.skip_first_layer_pe = skip_first_layer_pe

    def forward(
        self,
        queries: torch.Tensor,
        keys: torch.Tensor,
        query_pe: torch.Tensor,
        key_pe: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        # Unlike SAM's first block, the residual is kept, and later blocks add the
        # positional encoding to the residual too.
        if not self.skip_first_layer_pe:
            queries = queries + query_pe
        queries = self.norm1(queries + self.self_attn(queries, queries, queries))
        attn = self.cross_attn_token_to_image(queries + query_pe, keys + key_pe, keys)
        queries = self.norm2(queries + attn)
        queries = self.norm3(queries + self.mlp(queries))
        attn = self.cross_attn_image_to_token(keys + key_pe, queries + query_pe, queries)
        return queries, self.norm4(keys + attn)


class TwoWayTransformer(nn.Module):
    def __init__(self, dim: int = 256, heads: int = 8, mlp_dim: int = 2048, depth: int = 2) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            _TwoWayBlock(dim, heads, mlp_dim, skip_first_layer_pe=i == 0) for i in range(depth)
        )
        self.final_attn_token_to_image = _Attention(dim, heads, downsample=2)
        self.norm_final_attn = nn.LayerNorm(dim)

    def forward(
        self, image: torch.Tensor, image_pe: torch.Tensor, tokens: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``image``, ``image_pe`` ``(B, C, H, W)``, ``tokens`` ``(B, T, C)`` -> the tokens
        and the image side ``(B, HW, C)`` after the transformer."""
        keys = image.flatten(2).transpose(1, 2)
        key_pe = image_pe.flatten(2).transpose(1, 2)
        queries = tokens
        for layer in self.layers:
            queries, keys = layer(queries, keys, tokens, key_pe)
        attn = self.final_attn_token_to_image(queries + tokens, keys + key_pe, keys)
        return self.norm_final_attn(queries + attn), keys


class MaskDecoder(nn.Module):
    """Sparse embeddings + image embedding -> logits of all mask tokens and their IoU.

    Token 0 is the single-mask output, tokens 1..3 the multimask outputs.
    """

    def __init__(self, dim: int = 256, num_multimask_outputs: int = 3) -> None:
        super().__init__()
        self.transformer = TwoWayTransformer(dim)
        self.num_mask_tokens = num_multimask_outputs + 1
        self.iou_token = nn.Embedding(1, dim)
        self.mask_tokens = nn.Embedding(self.num_mask_tokens, dim)
        widths = (dim, 64, 32)
        self.final_output_upscaling_layers = nn.ModuleList(
            nn.Sequential(
                nn.ConvTranspose2d(c_in, c_out, kernel_size=2, stride=2),
                nn.GroupNorm(1, c_out) if i == 0 else nn.Identity(),
                nn.GELU(),
            )
            for i, (c_in, c_out) in enumerate(itertools.pairwise(widths))
        )
        self.output_hypernetworks_mlps = nn.ModuleList(
            _Mlp(dim, dim, widths[-1], num_layers=2) for _ in range(self.num_mask_tokens)
        )
        self.iou_prediction_head = _Mlp(dim, 256, self.num_mask_tokens, num_layers=2)

    def predict_masks(
        self, image_embeddings: torch.Tensor, image_pe: torch.Tensor, sparse: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``image_embeddings`` ``(1 or B, C, 64, 64)``, ``sparse`` ``(B, N, C)`` ->
        ``(B, 4, 256, 256)`` logits and ``(B, 4)`` IoU predictions."""
        b = sparse.shape[0]
        out_tokens = torch.cat([self.iou_token.weight, self.mask_tokens.weight], dim=0)
        tokens = torch.cat([out_tokens.unsqueeze(0).expand(b, -1, -1), sparse], dim=1)
        image = image_embeddings.expand(b, -1, -1, -1)
        queries, keys = self.transformer(image, image_pe.expand(b, -1, -1, -1), tokens)
        _, c, h, w = image.shape
        x = keys.transpose(1, 2).reshape(b, c, h, w)
        for layer in self.final_output_upscaling_layers:
            x = layer(x)
        mask_out = queries[:, 1 : 1 + self.num_mask_tokens]
        hyper = torch.stack(
            [mlp(mask_out[:, i]) for i, mlp in enumerate(self.output_hypernetworks_mlps)], dim=1
        )
        _, c2, h2, w2 = x.shape
        masks = (hyper @ x.reshape(b, c2, h2 * w2)).reshape(b, -1, h2, w2)
        return masks, self.iou_prediction_head(queries[:, 0])


class EfficientSam(nn.Module):
    """The whole network: ``image_encoder``, ``prompt_encoder``, ``mask_decoder``."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.width, self.heads = dim, heads
        self.image_encoder = ImageEncoder(dim, heads)
        self.prompt_encoder = PromptEncoder()
        self.mask_decoder = MaskDecoder()

    def decode(
        self, image_embeddings: torch.Tensor, coords: torch.Tensor, labels: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``coords`` ``(B, N, 2)`` (1024-pixel frame), ``labels`` ``(B, N)`` ->
        ``(B, 4, 256, 256)`` logits of every mask token and ``(B, 4)`` IoU predictions."""
        sparse = self.prompt_encoder.embed(coords, labels)
        return self.mask_decoder.predict_masks(
            image_embeddings, self.prompt_encoder.get_dense_pe(), sparse
        )


def build_efficientsam(variant: str) -> EfficientSam:
    """EfficientSAM ``variant`` (``"vit_t"`` or ``"vit_s"``, see :data:`VARIANTS`) with
    default initialisation, in eval mode."""
    dim, heads = VARIANTS[variant]
    return EfficientSam(dim, heads).eval()
