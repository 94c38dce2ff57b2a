"""Export wrappers: the official modules rearranged into two static ONNX graphs.

Like the official ``SamOnnxModel``, control flow is replaced by arithmetic so the graphs
stay static: point labels select embeddings by multiplication, ``has_mask_input`` blends the
mask embedding in. Unlike it, the decoder stops at low-resolution logits of all four mask
tokens; choosing masks and upscaling happen on the host (``samedge.runtime.postprocess``),
which keeps one graph for every prompt type and every provider.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from ..specs import ModelSpec


class PixelShuffleUpsample(nn.Module):
    """``ConvTranspose2d(kernel_size=2, stride=2)`` computed as a GEMM plus a pixel shuffle.

    With kernel and stride 2 every output pixel receives exactly one input pixel, so the
    transposed convolution is a 1x1 convolution to ``4 * C_out`` channels followed by
    depth-to-space: the same products and sums, in a form ONNX Runtime runs as one MatMul
    and one DepthToSpace instead of its slow generic ConvTranspose kernel.
    """

    def __init__(self, deconv: nn.ConvTranspose2d) -> None:
        super().__init__()
        if deconv.kernel_size != (2, 2) or deconv.stride != (2, 2) or deconv.padding != (0, 0):
            raise ValueError(
                "only ConvTranspose2d(kernel_size=2, stride=2, padding=0) is supported"
            )
        c_in, c_out = deconv.weight.shape[:2]
        # Row (co, di, dj) of the GEMM holds weight[:, co, di, dj]: pixel_shuffle's channel order.
        weight = deconv.weight.detach().permute(1, 2, 3, 0).reshape(c_out * 4, c_in)
        self.weight = nn.Parameter(weight[:, :, None, None].contiguous(), requires_grad=False)
        bias = deconv.bias.detach() if deconv.bias is not None else torch.zeros(c_out)
        self.bias = nn.Parameter(bias.repeat_interleave(4).contiguous(), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pixel_shuffle(F.conv2d(x, self.weight, self.bias), 2)


def _fast_upscaling(decoder: nn.Module) -> nn.Module:
    """A copy of a mask decoder whose 2x2 transposed convolutions are pixel-shuffle GEMMs."""
    decoder = copy.deepcopy(decoder)
    for i, layer in enumerate(decoder.output_upscaling):
        if isinstance(layer, nn.ConvTranspose2d):
            decoder.output_upscaling[i] = PixelShuffleUpsample(layer)
    return decoder


class ImageEncoder(nn.Module):
    """``image (1, 3, 1024, 1024)`` -> image embedding (+ SAM 2's high-res features)."""

    def __init__(self, model: nn.Module, spec: ModelSpec) -> None:
        super().__init__()
        self.model = model
        self.spec = spec

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if self.spec.family == "sam":
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
    ``(B, N, 2)`` in the encoder's 1024-pixel input frame, ``point_labels`` ``(B, N)`` float
    (1 positive, 0 negative, 2/3 box corners, -1 padding), ``mask_input`` ``(B, 1, 256, 256)``
    and ``has_mask_input`` ``(B,)``.
    Outputs: ``low_res_masks`` ``(B, 4, 256, 256)``, ``iou_predictions`` ``(B, 4)`` [and
    ``object_score_logits`` ``(B, 1)`` for SAM 2].
    """

    def __init__(self, model: nn.Module, spec: ModelSpec, fast: bool = True) -> None:
        """``fast=False`` keeps the official modules untouched (the parity reference)."""
        super().__init__()
        self.spec = spec
        if spec.family == "sam":
            self.prompt_encoder = model.prompt_encoder
            decoder = model.mask_decoder
        else:
            self.prompt_encoder = model.sam_prompt_encoder
            decoder = model.sam_mask_decoder
        self.mask_decoder = _fast_upscaling(decoder) if fast else decoder

    def _embed_points(self, coords: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        pe = self.prompt_encoder
        coords = (coords + 0.5) / self.spec.image_size
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
        dense = self._embed_masks(mask_input, has_mask_input)
        image_pe = self.prompt_encoder.get_dense_pe()
        if self.spec.family == "sam":
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
