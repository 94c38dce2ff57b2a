"""What a segment-everything run's counts mean, in words: one text for the CLI and the web UI."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def outcome(stats: Mapping[str, Any], pred_iou_thresh: float, stability_score_thresh: float) -> str:
    """How many points had their masks drawn and, when no mask was kept, which filter
    removed them and the setting to lower.

    Args:
        stats: :attr:`GeneratedMasks.stats` (``prompts``, ``drawn``, ``upscaled``, ``masks``).
        pred_iou_thresh, stability_score_thresh: the run's filter settings.
    """
    prompts, drawn = int(stats["prompts"]), int(stats["drawn"])
    text = f"masks drawn for {drawn} of {prompts} points"
    if drawn < prompts:
        text += " (the others had no predicted IoU above the threshold)"
    if int(stats["masks"]) > 0:
        return text
    if prompts == 0:
        return f"{text}; no mask: the image gave no point to prompt"
    if int(stats["upscaled"]) == 0:
        return (
            f"{text}; no mask: none had a predicted IoU of {pred_iou_thresh:g} or more "
            f"(lower pred_iou_thresh)"
        )
    return (
        f"{text}; no mask: none had a stability score of {stability_score_thresh:g} or more "
        f"(lower stability_score_thresh)"
    )
