"""EfficientSAM's official model called as its example calls it, behind ``SamPredictor``'s
methods, for the comparisons with the official code (parity tests, ``bench
--compare-torch``, ``eval --against torch``).

EfficientSAM has no predictor and no package: its example (``EfficientSAM_example.py``)
converts the photo with ``ToTensor``, calls the model on it with points ``(1, 1, N, 2)`` in
pixels (a box as two corners labelled 2 and 3), and the model stretches the image to
1024 x 1024, decodes and upscales the logits bicubically to the photo's size.
:class:`ExamplePredictor` runs the same official methods in that order, split where
``SamPredictor`` splits (``set_image`` once, ``predict`` per prompt), so that one image can
take many prompts. The official code must be importable as ``efficient_sam``
(``ModelSpec.reference_source`` says where it comes from).
"""

from __future__ import annotations

import importlib

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .build import Official
from .efficientsam import EfficientSam


def official_model(weights: EfficientSam) -> nn.Module:
    """The official ``EfficientSam`` of ``weights``'s size (ViT-Ti or ViT-S) with the
    weights of ``weights`` (samedge's network), loaded strictly: every tensor name must
    match."""
    build = importlib.import_module("efficient_sam.efficient_sam").build_efficient_sam
    dim, heads = weights.width, weights.heads
    model = build(encoder_patch_embed_dim=dim, encoder_num_heads=heads, checkpoint=None)
    model.load_state_dict(weights.state_dict(), strict=True)
    return model.eval()


class _Upscale:
    """The example's mask upscaling (inside ``EfficientSam.predict_masks`` when given an
    output size): bicubic from the low-res logits straight to the photo's size."""

    def __call__(self, low_res: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        return F.interpolate(low_res, size, mode="bicubic")


class ExamplePredictor:
    """``set_image`` / ``predict`` as ``SamPredictor``'s, computed by the official model.

    ``predict`` returns the masks in token order (the example then sorts them by predicted
    IoU and keeps the first).
    """

    def __init__(self, model: EfficientSam) -> None:
        self.model: Official = official_model(model)
        self.upscale = _Upscale()
        self._embedding: torch.Tensor | None = None
        self._size = (0, 0)

    @torch.no_grad()
    def set_image(self, image: np.ndarray) -> None:
        """``image``: ``H x W x 3`` uint8 RGB, converted as ``ToTensor`` does."""
        tensor = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float() / 255
        self._size = (image.shape[0], image.shape[1])
        # EfficientSam.get_image_embeddings, with its two steps called from here.
        self._embedding = self.model.image_encoder(self.model.preprocess(tensor[None]))

    @torch.no_grad()
    def predict(
        self,
        point_coords: np.ndarray | None = None,
        point_labels: np.ndarray | None = None,
        box: np.ndarray | None = None,
        multimask_output: bool = True,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Masks for one prompt set (or one per box for ``box`` ``(B, 4)``), in pixels.

        Returns ``(masks (B?, K, H, W) bool, scores (B?, K), low-res logits (B?, K, 256,
        256))`` with ``K`` = 3 or 1; the leading ``B`` only for several boxes.
        """
        if self._embedding is None:
            raise RuntimeError("call set_image first")
        boxes = None if box is None else np.asarray(box, np.float32).reshape(-1, 4)
        queries = 1 if boxes is None else len(boxes)
        parts, labels = [], []
        if boxes is not None:  # the corners first: the model keeps the first 6 points
            parts.append(boxes.reshape(queries, 2, 2))
            labels.append(np.tile(np.array([2, 3], np.float32), (queries, 1)))
        if point_coords is not None:
            pts = np.asarray(point_coords, np.float32).reshape(1, -1, 2)
            parts.append(np.repeat(pts, queries, axis=0))
            lbl = np.asarray(point_labels, np.float32).reshape(1, -1)
            labels.append(np.repeat(lbl, queries, axis=0))
        pts_t = torch.from_numpy(np.concatenate(parts, axis=1))[None]
        lbl_t = torch.from_numpy(np.concatenate(labels, axis=1))[None]
        h, w = self._size
        low, iou = self.model.predict_masks(
            self._embedding, pts_t, lbl_t, multimask_output, input_h=h, input_w=w
        )
        low, iou = low[0], iou[0]  # (queries, K, 256, 256), (queries, K)
        logits = self.upscale(low, (h, w))
        masks, scores, low_res = (logits >= 0).numpy(), iou.numpy(), low.numpy()
        if box is not None and np.ndim(box) == 2:
            return masks, scores, low_res
        return masks[0], scores[0], low_res[0]
