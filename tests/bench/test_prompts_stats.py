"""The seeded prompt generator and the timing summaries."""

from __future__ import annotations

import numpy as np
import pytest

from samedge.bench.prompts import KINDS, BenchPrompt, generate_prompts
from samedge.bench.results import StageStats
from samedge.bench.stats import summarize


def test_same_seed_same_prompts_and_new_runs_differ() -> None:
    a = generate_prompts(0, "truck.jpg", (1200, 1800), run=0, count=6)
    b = generate_prompts(0, "truck.jpg", (1200, 1800), run=0, count=6)
    assert a == b
    assert generate_prompts(0, "truck.jpg", (1200, 1800), run=1, count=6) != a
    assert generate_prompts(1, "truck.jpg", (1200, 1800), run=0, count=6) != a
    assert generate_prompts(0, "dog.jpg", (1200, 1800), run=0, count=6) != a


@pytest.mark.parametrize("size", [(534, 800), (1500, 2250), (64, 48)])
def test_prompts_lie_inside_the_image_and_cover_every_kind(size: tuple[int, int]) -> None:
    height, width = size
    prompts = [p for run in range(4) for p in generate_prompts(3, "x.png", size, run, 3)]
    assert {p.kind for p in prompts} == set(KINDS)
    for p in prompts:
        assert BenchPrompt.from_dict(p.to_dict()) == p
        xy = np.asarray(p.points).reshape(-1, 2)
        assert len(xy) == len(p.labels)
        assert np.all((xy >= 0) & (xy <= [width, height]))
        if p.box is not None:
            x0, y0, x1, y1 = p.box
            assert 0 <= x0 <= x1 <= width and 0 <= y0 <= y1 <= height
            assert np.all((xy >= [x0, y0]) & (xy <= [x1, y1]))
        expected = {
            "point": (1, False, True),
            "box": (0, True, False),
            "box+points": (2, True, False),
        }
        n, has_box, multimask = expected[p.kind]
        assert (len(p.points), p.box is not None, p.multimask) == (n, has_box, multimask)
        assert p.num_points == n + (2 if has_box else 0)


def test_summarize_in_ms() -> None:
    s = summarize([0.004, 0.001, 0.002, 0.003, 0.010])
    expected = {"count": 5, "min": 1.0, "median": 3.0, "mean": 4.0, "p90": 7.6, "max": 10.0}
    assert s.to_dict() == expected
    assert list(s.to_dict()) == list(expected)  # the JSON's key order
    assert StageStats.from_dict(expected) == s
    with pytest.raises(ValueError):
        summarize([])
