"""``AmgSettings``: the official generators' defaults per family, validation, overrides."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

from samedge.amg import AmgSettings, MaskGenerator
from samedge.errors import SamedgeError
from samedge.registry import get_spec, list_models

from .conftest import requires_export

SPECS = [get_spec(name) for name in list_models()]


@requires_export
@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_defaults_are_the_official_generators(spec) -> None:
    """Every setting the official generator of the family also has defaults alike."""
    from samedge.export.build import has_official_mask_generator, official_mask_generator_class
    from samedge.export.torch_compat import ensure_torchvision

    ensure_torchvision()
    if not has_official_mask_generator(spec):  # EfficientSAM: SAM's defaults
        assert AmgSettings.for_spec(spec) == AmgSettings.for_spec(get_spec("sam_vit_b"))
        return
    params = inspect.signature(official_mask_generator_class(spec)).parameters
    ours = AmgSettings.for_spec(spec)
    shared = [name for name in params if hasattr(ours, name)]
    assert {"pred_iou_thresh", "points_per_side", "crop_overlap_ratio"} <= set(shared)
    for name in shared:
        assert getattr(ours, name) == params[name].default, name
    assert ours.mask_threshold == spec.mask_threshold


def test_overrides_none_keeps_the_default_and_grids_replace_the_grid_size() -> None:
    spec = get_spec("sam2.1_hiera_tiny")
    base = AmgSettings.for_spec(spec)
    assert AmgSettings.for_spec(spec, pred_iou_thresh=None, mask_threshold=None) == base
    grid = np.array([[0.25, 0.5], [0.75, 0.5]])
    custom = AmgSettings.for_spec(spec, point_grids=[grid])
    assert custom.points_per_side is None
    np.testing.assert_array_equal(custom.grids()[0], grid)
    assert hash(custom) == hash(AmgSettings.for_spec(spec, point_grids=[grid.tolist()]))
    assert base.replace(pred_iou_thresh=0) == AmgSettings.for_spec(spec, pred_iou_thresh=0.0)
    assert len(base.grids()) == 1 and base.grids()[0].shape == (32 * 32, 2)


@pytest.mark.parametrize(
    "overrides, field",
    [
        ({"points_per_side": 0}, "points_per_side"),
        ({"points_per_batch": 0}, "points_per_batch"),
        ({"points_per_batch": 2.5}, "points_per_batch"),
        ({"crop_n_layers": -1}, "crop_n_layers"),
        ({"crop_n_points_downscale_factor": 0}, "crop_n_points_downscale_factor"),
        ({"fast_stride": 0}, "fast_stride"),
        ({"min_mask_region_area": -5}, "min_mask_region_area"),
        ({"pred_iou_thresh": "high"}, "pred_iou_thresh"),
        ({"stability_score_thresh": float("nan")}, "stability_score_thresh"),
        ({"crop_overlap_ratio": 1.0}, "crop_overlap_ratio"),
        ({"pred_iou_thresh": 1.5}, "pred_iou_thresh"),
        ({"pred_iou_thresh": -0.1}, "pred_iou_thresh"),
        ({"stability_score_thresh": 2}, "stability_score_thresh"),
        ({"stability_score_thresh": -1}, "stability_score_thresh"),
        ({"box_nms_thresh": 1.5}, "box_nms_thresh"),
        ({"crop_nms_thresh": -0.2}, "crop_nms_thresh"),
        ({"stability_score_offset": -1}, "stability_score_offset"),
        ({"output_mode": "png"}, "output_mode"),
        ({"use_m2m": "yes"}, "use_m2m"),
        ({"split_decoder": "auto"}, "split_decoder"),
        ({"point_grids": [[[0.5, 1.5]]]}, "point_grids"),
        ({"point_grids": [[[0.5, 0.5]]], "crop_n_layers": 1}, "point_grids"),
        ({"pred_iou": 0.5}, "pred_iou"),
    ],
)
def test_invalid_settings_are_one_line_errors_naming_the_field(overrides, field) -> None:
    with pytest.raises(SamedgeError) as info:
        AmgSettings.for_spec(get_spec("sam_vit_b"), **overrides)
    message = str(info.value)
    assert field in message and "\n" not in message


def test_range_ends_and_any_finite_mask_threshold_are_accepted() -> None:
    spec = get_spec("sam_vit_b")
    for name in ("pred_iou_thresh", "stability_score_thresh", "box_nms_thresh", "crop_nms_thresh"):
        assert getattr(AmgSettings.for_spec(spec, **{name: 0}), name) == 0.0
        assert getattr(AmgSettings.for_spec(spec, **{name: 1}), name) == 1.0
    assert AmgSettings.for_spec(spec, stability_score_offset=0).stability_score_offset == 0.0
    assert AmgSettings.for_spec(spec, mask_threshold=-3.5).mask_threshold == -3.5


def test_m2m_needs_a_model_that_takes_a_mask_prompt() -> None:
    """EfficientSAM has no mask prompt: --use-m2m failed after decoding had started, with
    a message about clicking more points."""
    with pytest.raises(SamedgeError, match="EfficientSAM-Ti does not take: drop --use-m2m"):
        AmgSettings.for_spec(get_spec("efficientsam_ti"), use_m2m=True)
    assert AmgSettings.for_spec(get_spec("efficientsam_ti"), use_m2m=False).use_m2m is False
    assert AmgSettings.for_spec(get_spec("sam2.1_hiera_tiny"), use_m2m=True).use_m2m is True


def test_both_or_neither_grid_source_is_an_error() -> None:
    base = AmgSettings.for_spec(get_spec("sam_vit_b"))
    with pytest.raises(SamedgeError, match="exactly one of points_per_side and point_grids"):
        base.replace(point_grids=[[[0.5, 0.5]]])
    with pytest.raises(SamedgeError, match="exactly one of points_per_side and point_grids"):
        base.replace(points_per_side=None)


class _FakePredictor:
    """What the generator's constructor reads from a predictor: its spec."""

    def __init__(self, name: str) -> None:
        self.spec = get_spec(name)


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_generator_defaults_come_from_the_spec(spec) -> None:
    generator = MaskGenerator(_FakePredictor(spec.name))
    assert generator.settings == AmgSettings.for_spec(spec)
    assert generator.settings.pred_iou_thresh == spec.amg.pred_iou_thresh
    given = AmgSettings.for_spec(spec, points_per_side=4)
    changed = MaskGenerator(_FakePredictor(spec.name), given, fast=True).settings
    assert changed == given.replace(fast=True)
    with pytest.raises(SamedgeError, match="unknown segment-everything setting 'iou'"):
        MaskGenerator(_FakePredictor(spec.name), iou=0.5)
