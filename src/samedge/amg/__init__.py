"""Automatic mask generation ("segment everything") on exported models, torch-free.

>>> from samedge.amg import MaskGenerator
>>> generator = MaskGenerator("sam2.1_hiera_tiny")
>>> records = generator.generate("photo.jpg")  # the official generators' records

Settings are one frozen :class:`AmgSettings`, defaulting to the official generator's of the
model's family (``MaskGenerator("sam_vit_b", pred_iou_thresh=0.9)`` changes one of them).
"""

from __future__ import annotations

from .generator import AmgStats, GeneratedMasks, MaskGenerator, encode_mask
from .grid import box_nms, crop_boxes, layer_grids, mask_boxes, point_grid
from .regions import fill_low_res, remove_small_regions
from .settings import OUTPUT_MODES, AmgSettings, OutputMode

__all__ = [
    "OUTPUT_MODES",
    "AmgSettings",
    "AmgStats",
    "GeneratedMasks",
    "MaskGenerator",
    "OutputMode",
    "box_nms",
    "crop_boxes",
    "encode_mask",
    "fill_low_res",
    "layer_grids",
    "mask_boxes",
    "point_grid",
    "remove_small_regions",
]
