"""Prompts of each protocol, and what the interactive protocol sends to the predictor."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from samedge.eval.datasets import Instance
from samedge.eval.protocols import interactive, parse_protocols, random_points, static_prompt
from samedge.runtime.types import MaskPrediction


def _instance() -> Instance:
    mask = np.zeros((60, 80), bool)
    mask[10:31, 20:61] = True  # 41 x 21, middle (40, 20)
    return Instance("a", mask)


def test_static_prompts() -> None:
    inst = _instance()
    center = static_prompt("center", inst)
    assert center.points.tolist() == [[40.0, 20.0]] and center.labels.tolist() == [1]
    assert center.multimask_output and center.box is None
    box = static_prompt("box", inst)
    assert box.box.tolist() == [20.0, 10.0, 60.0, 30.0] and box.points is None
    assert not box.multimask_output
    both = static_prompt("box+center", inst)
    assert both.box.tolist() == box.box.tolist() and both.points.tolist() == [[40.0, 20.0]]
    assert not both.multimask_output
    assert static_prompt("points", inst, num_points=1).multimask_output
    many = static_prompt("points", inst, num_points=5, seed=3)
    assert not many.multimask_output and many.labels.tolist() == [1] * 5


def test_random_points_are_distinct_object_pixels_and_seeded() -> None:
    inst = _instance()
    pts = random_points(inst, 50, seed=1)
    assert len({tuple(p) for p in pts.tolist()}) == 50
    assert inst.mask[pts[:, 1].astype(int), pts[:, 0].astype(int)].all()
    np.testing.assert_array_equal(pts, random_points(inst, 50, seed=1))
    assert not np.array_equal(pts, random_points(inst, 50, seed=2))
    assert not np.array_equal(pts, random_points(Instance("b", inst.mask), 50, seed=1))


class _Recorder:
    """Predicts a fixed wrong mask (the object's left half plus a false-positive block)
    and records every call."""

    def __init__(self, inst: Instance) -> None:
        self.mask = inst.mask.copy()
        self.mask[:, 40:] = False
        self.mask[45:58, 2:30] = True
        self.calls: list[dict[str, Any]] = []

    def encode(self, image: np.ndarray) -> None:
        return None

    def predict(self, embedding, points=None, labels=None, box=None, mask_input=None,
                multimask_output=True) -> MaskPrediction:  # fmt: skip
        k = 3 if multimask_output else 1
        n = len(self.calls)
        low = np.full((1, k, 256, 256), float(n), np.float32)
        low[0, :, 0, 0] = np.arange(k)  # tells the masks apart
        self.calls.append(
            {"points": points, "labels": labels, "mask_input": mask_input, "multi": k == 3}
        )
        scores = np.array([[0.1, 0.9, 0.5][:k]], np.float32)
        return MaskPrediction(np.repeat(self.mask[None, None], k, 1), scores, low)


def test_interactive_feeds_back_the_kept_logits() -> None:
    inst = _instance()
    model = _Recorder(inst)
    steps = interactive(model, None, inst, max_clicks=3)
    assert len(steps) == 3 and len(model.calls) == 3
    first, second, third = model.calls
    assert first["multi"] and first["mask_input"] is None
    assert first["points"].tolist() == [[40.0, 20.0]] and first["labels"].tolist() == [1]
    # click 2 uses the best-scoring mask (index 1) of click 1 and one output
    assert not second["multi"] and second["mask_input"].shape == (1, 256, 256)
    assert second["mask_input"][0, 0, 0] == 1.0 and second["mask_input"][0, 1, 1] == 0.0
    assert third["mask_input"][0, 1, 1] == 1.0  # the logits of call 2
    # missed right half (41 x 21 minus 20 columns) is larger than the 13 x 28 false positive
    assert second["labels"].tolist() == [1, 1] and second["points"][1, 0] >= 40
    assert [s.click.positive for s in steps] == [True, True, True]


def test_parse_protocols() -> None:
    assert parse_protocols("center, box") == ("center", "box")
    assert parse_protocols(["clicks", "box,clicks"]) == ("clicks", "box")
    with pytest.raises(ValueError, match="unknown protocol 'zoom'"):
        parse_protocols("center,zoom")
