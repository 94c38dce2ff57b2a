"""The Everything tab says why it found no mask, in the CLI's words, and names no "others"
when every point was drawn."""

from __future__ import annotations

import pytest

from samedge.web.engine import Engine, EverythingParams

from ..conftest import shared_path
from .test_web_engine import _choice, engine  # noqa: F401 - the module's engine fixture


@pytest.mark.slow
def test_no_mask_gives_the_reason_and_all_drawn_mentions_no_others(
    engine: Engine,  # noqa: F811 - the imported fixture
) -> None:
    image = engine.load(shared_path("data", "images", "groceries.jpg"), "groceries.jpg")
    strict = EverythingParams(points_per_side=4, pred_iou_thresh=1.0, stability_score_thresh=0.0)
    none = engine.everything(image, strict, _choice(engine), "s-none")
    assert none.masks is not None and len(none.masks) == 0
    assert "0 masks (masks drawn for " in none.message
    assert "no mask: none had a predicted IoU of 1 or more (lower pred_iou_thresh)" in none.message
    keep = EverythingParams(points_per_side=4, pred_iou_thresh=0.0, stability_score_thresh=0.0)
    every = engine.everything(image, keep, _choice(engine), "s-all")
    assert "masks drawn for 16 of 16 points)" in every.message
    assert "the others" not in every.message
