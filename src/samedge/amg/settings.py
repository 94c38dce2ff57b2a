"""The settings of one segment-everything run, with the official defaults of each family.

>>> from samedge import get_spec
>>> settings = AmgSettings.for_spec(get_spec("sam2.1_hiera_tiny"), points_per_side=16)
>>> settings.pred_iou_thresh  # SAM2AutomaticMaskGenerator's default
0.8
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any, Literal

import numpy as np

from ..errors import SamedgeError
from ..specs import ModelSpec

OutputMode = Literal["binary_mask", "uncompressed_rle", "coco_rle", "polygons"]
OUTPUT_MODES: tuple[str, ...] = ("binary_mask", "uncompressed_rle", "coco_rle", "polygons")

#: A point grid as stored in :class:`AmgSettings`: ``(x, y)`` pairs normalised to [0, 1].
Grid = tuple[tuple[float, float], ...]


@dataclass(frozen=True, kw_only=True)
class AmgSettings:
    """What :class:`~samedge.amg.MaskGenerator` does, with the official generators' names.

    Build it with :meth:`for_spec`, which takes every default from the model's
    :class:`~samedge.specs.ModelSpec` (``spec.amg`` and ``spec.mask_threshold``); the fields
    without a default here are the ones a family may change.

    Attributes:
        points_per_side: grid points per side (``points_per_side**2`` prompts in crop
            layer 0); ``None`` when ``point_grids`` is given.
        points_per_batch: prompts per decoder call.
        pred_iou_thresh: keep masks whose predicted IoU is above this, in [0, 1] (0: keep
            all).
        stability_score_thresh: keep masks whose stability score is at least this, in
            [0, 1] (0: keep all).
        stability_score_offset: logit offset of the stability score, >= 0.
        mask_threshold: logit threshold of the masks (any finite number).
        box_nms_thresh: box IoU above which a mask duplicates a better one in a crop, in
            [0, 1].
        crop_nms_thresh: box IoU for duplicates between crops, in [0, 1].
        crop_overlap_ratio: overlap of neighbouring crops, as a fraction of the short side,
            in [0, 1).
        crop_n_layers: extra layers of crops (layer ``i`` has ``2**i x 2**i`` crops).
        crop_n_points_downscale_factor: layer ``i`` uses ``points_per_side / f**i`` points.
        point_grids: explicit grids, one per layer, each ``(x, y)`` pairs normalised to
            [0, 1] (any ``(n, 2)`` array-likes are accepted and stored as tuples).
        min_mask_region_area: remove holes and islands smaller than this, in pixels
            (``ModelSpec.small_regions`` says how).
        output_mode: segmentation format of :meth:`~samedge.amg.MaskGenerator.generate`.
        use_m2m: refine each mask once with its own logits (SAM 2 option).
        multimask_output: three masks per point (default) or one.
        fast: coarse-to-fine point sampling (see :mod:`samedge.amg.generator`).
        fast_stride: the coarse grid takes every ``fast_stride``-th point per side.
        split_decoder: draw a point's masks only when one of them passes
            ``pred_iou_thresh``: ``None`` (default) when it pays (see
            :data:`~samedge.amg.generator.SPLIT_MAX_SHARE`), ``True`` whenever the model
            folder has the split decoder, ``False`` never.
    """

    points_per_side: int | None
    points_per_batch: int
    pred_iou_thresh: float
    stability_score_thresh: float
    stability_score_offset: float
    mask_threshold: float
    box_nms_thresh: float
    crop_nms_thresh: float
    crop_overlap_ratio: float
    crop_n_layers: int = 0
    crop_n_points_downscale_factor: int = 1
    point_grids: tuple[Grid, ...] | None = None
    min_mask_region_area: int = 0
    output_mode: OutputMode = "binary_mask"
    use_m2m: bool = False
    multimask_output: bool = True
    fast: bool = False
    fast_stride: int = 2
    split_decoder: bool | None = None

    @classmethod
    def for_spec(cls, spec: ModelSpec, **overrides: Any) -> AmgSettings:
        """The official defaults of ``spec``'s family, with ``overrides`` (field names).

        An override of ``None`` keeps the default, so optional CLI flags pass straight
        through; ``point_grids`` without ``points_per_side`` clears the grid size.

        Raises:
            SamedgeError: an unknown field name, an invalid value, or ``use_m2m`` for a
                model that takes no mask prompt (EfficientSAM).
        """
        _check_names(overrides)
        given = {k: v for k, v in overrides.items() if v is not None}
        if "point_grids" in given and "points_per_side" not in given:
            given["points_per_side"] = None
        defaults = dataclasses.asdict(spec.amg) | {"mask_threshold": spec.mask_threshold}
        del defaults["generator"]  # where the defaults come from, not a setting
        if given.get("use_m2m") and not spec.mask_prompt:  # else refused mid-decoding
            raise SamedgeError(
                f"use_m2m refines each mask with its own logits as a mask prompt, which "
                f"{spec.title} does not take: drop --use-m2m"
            )
        return cls(**(defaults | given))

    @staticmethod
    def source(spec: ModelSpec) -> str:
        """One line saying whose defaults :meth:`for_spec` gives ``spec``: its family's
        official generator, or SAM's where the family publishes none (EfficientSAM)."""
        if spec.amg.generator is None:
            return (
                f"{spec.title} has no official mask generator: using "
                f"SamAutomaticMaskGenerator's defaults"
            )
        return f"defaults of {spec.amg.generator}"

    def replace(self, **changes: Any) -> AmgSettings:
        """A copy with ``changes`` (validated like the constructor's arguments).

        Raises:
            SamedgeError: an unknown field name or an invalid value.
        """
        _check_names(changes)
        return dataclasses.replace(self, **changes)

    def __post_init__(self) -> None:
        if (self.points_per_side is None) == (self.point_grids is None):
            raise SamedgeError("give exactly one of points_per_side and point_grids")
        _at_least(self, "points_per_side", 1, optional=True)
        _at_least(self, "points_per_batch", 1)
        _at_least(self, "crop_n_layers", 0)
        _at_least(self, "crop_n_points_downscale_factor", 1)
        _at_least(self, "min_mask_region_area", 0)
        _at_least(self, "fast_stride", 1)
        if self.point_grids is not None:
            grids = _as_grids(self.point_grids, self.crop_n_layers)
            object.__setattr__(self, "point_grids", grids)
        for name in (
            "pred_iou_thresh",
            "stability_score_thresh",
            "stability_score_offset",
            "mask_threshold",
            "box_nms_thresh",
            "crop_nms_thresh",
            "crop_overlap_ratio",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise SamedgeError(f"{name} must be a number, got {value!r}")
            if not math.isfinite(value):
                raise SamedgeError(f"{name} must be finite, got {value}")
            object.__setattr__(self, name, float(value))
        # Predicted IoUs, stability scores and box IoUs lie in [0, 1], so a threshold outside
        # it keeps every mask or none (the official generators document [0, 1] and check
        # nothing); a negative offset would make the "intersection" larger than the union.
        for name in (
            "pred_iou_thresh",
            "stability_score_thresh",
            "box_nms_thresh",
            "crop_nms_thresh",
        ):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise SamedgeError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if self.stability_score_offset < 0.0:
            raise SamedgeError(
                f"stability_score_offset must be >= 0, got {self.stability_score_offset}"
            )
        if not 0.0 <= self.crop_overlap_ratio < 1.0:
            raise SamedgeError(
                f"crop_overlap_ratio must be in [0, 1), got {self.crop_overlap_ratio}"
            )
        if self.output_mode not in OUTPUT_MODES:
            raise SamedgeError(
                f"unknown output_mode '{self.output_mode}'; use one of {', '.join(OUTPUT_MODES)}"
            )
        for name in ("use_m2m", "multimask_output", "fast"):
            if not isinstance(getattr(self, name), bool):
                raise SamedgeError(f"{name} must be True or False, got {getattr(self, name)!r}")
        if self.split_decoder not in (None, True, False):
            raise SamedgeError(
                f"split_decoder must be None, True or False, got {self.split_decoder!r}"
            )

    def grids(self) -> list[np.ndarray]:
        """float64 ``(n, 2)`` normalised point grid of each crop layer (``crop_n_layers + 1``)."""
        from .grid import layer_grids

        if self.point_grids is not None:
            return [np.array(g, dtype=np.float64).reshape(-1, 2) for g in self.point_grids]
        assert self.points_per_side is not None  # __post_init__: exactly one of the two
        return layer_grids(
            self.points_per_side, self.crop_n_layers, self.crop_n_points_downscale_factor
        )


_FIELDS = frozenset(f.name for f in fields(AmgSettings))


def _check_names(values: dict[str, Any]) -> None:
    unknown = sorted(set(values) - _FIELDS)
    if unknown:
        raise SamedgeError(
            f"unknown segment-everything setting '{unknown[0]}'; "
            f"known: {', '.join(sorted(_FIELDS))}"
        )


def _at_least(settings: AmgSettings, name: str, low: int, optional: bool = False) -> None:
    value = getattr(settings, name)
    if optional and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise SamedgeError(f"{name} must be an integer, got {value!r}")
    if value < low:
        raise SamedgeError(f"{name} must be >= {low}, got {value}")
    object.__setattr__(settings, name, int(value))


def _as_grids(grids: Sequence[Any], crop_n_layers: int) -> tuple[Grid, ...]:
    """``grids`` as hashable tuples; float64 values survive the round trip exactly."""
    arrays = [np.asarray(g, dtype=np.float64).reshape(-1, 2) for g in grids]
    if len(arrays) < crop_n_layers + 1:
        raise SamedgeError(
            f"point_grids has {len(arrays)} grids; crop_n_layers={crop_n_layers} "
            f"needs {crop_n_layers + 1} (one per layer)"
        )
    if any(not np.all((g >= 0) & (g <= 1)) for g in arrays):
        raise SamedgeError("point_grids must hold points normalised to [0, 1]")
    return tuple(tuple((float(x), float(y)) for x, y in g.tolist()) for g in arrays)


__all__ = ["OUTPUT_MODES", "AmgSettings", "OutputMode"]
