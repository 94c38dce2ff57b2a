"""Automatic mask generation ("segment everything") on exported models, torch-free.

>>> from samedge.amg import MaskGenerator
>>> generator = MaskGenerator("sam2.1_hiera_tiny")
>>> records = generator.generate("photo.jpg")  # the official generators' records
"""

from __future__ import annotations

from .generator import (
    DEFAULT_PRED_IOU_THRESH,
    OUTPUT_MODES,
    GeneratedMasks,
    MaskGenerator,
    encode_mask,
)
from .grid import box_nms, crop_boxes, layer_grids, mask_boxes, point_grid
from .regions import fill_low_res, remove_small_regions

__all__ = [
    "DEFAULT_PRED_IOU_THRESH",
    "OUTPUT_MODES",
    "GeneratedMasks",
    "MaskGenerator",
    "box_nms",
    "crop_boxes",
    "encode_mask",
    "fill_low_res",
    "layer_grids",
    "mask_boxes",
    "point_grid",
    "remove_small_regions",
]
