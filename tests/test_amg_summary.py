"""The words for a segment-everything run's counts, shared by the CLI and the web UI."""

from __future__ import annotations

from samedge.amg.summary import outcome


def stats(prompts: int, drawn: int, upscaled: int, masks: int) -> dict[str, int]:
    return {"prompts": prompts, "drawn": drawn, "upscaled": upscaled, "masks": masks}


def test_all_points_drawn_mentions_no_others() -> None:
    assert outcome(stats(1024, 1024, 40, 12), 0.8, 0.95) == "masks drawn for 1024 of 1024 points"


def test_some_points_not_drawn_says_why() -> None:
    text = outcome(stats(1024, 300, 40, 12), 0.8, 0.95)
    assert text == (
        "masks drawn for 300 of 1024 points (the others had no predicted IoU above the threshold)"
    )


def test_no_mask_names_the_filter_and_the_setting_to_lower() -> None:
    iou = outcome(stats(1024, 0, 0, 0), 0.88, 0.95)
    assert iou.endswith("no mask: none had a predicted IoU of 0.88 or more (lower pred_iou_thresh)")
    stable = outcome(stats(16, 16, 5, 0), 0.8, 0.95)
    assert stable == (
        "masks drawn for 16 of 16 points; no mask: none had a stability score of 0.95 or "
        "more (lower stability_score_thresh)"
    )
    assert "no point to prompt" in outcome(stats(0, 0, 0, 0), 0.8, 0.95)
