"""Seeded benchmark prompts: the same seed gives the same prompts on every machine and side.

Kinds, drawn in turn: a single foreground click (``point``), a box (``box``), and a box with
one foreground and one background click inside it (``box+points``). Coordinates are XY
pixels of the original image.
"""

from __future__ import annotations

import zlib
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

KINDS = ("point", "box", "box+points")


@dataclass(frozen=True)
class BenchPrompt:
    """One prompt set for one image.

    Attributes:
        kind: ``"point"``, ``"box"`` or ``"box+points"``.
        points: ``(N, 2)`` XY pixels as nested lists (empty for a box alone).
        labels: ``(N,)`` 1 foreground / 0 background.
        box: XYXY pixels, or ``None``.
        multimask: ask for three candidate masks (what the official notebooks do for a
            single click) or one.
    """

    kind: str
    points: list[list[float]]
    labels: list[int]
    box: list[float] | None
    multimask: bool

    @property
    def num_points(self) -> int:
        """Points plus box corners, as the decoder sees them (before padding)."""
        return len(self.points) + (2 if self.box is not None else 0)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BenchPrompt:
        return cls(**data)


def _rng(seed: int, image_key: str, run: int) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(image_key.encode()), run])


def generate_prompts(
    seed: int, image_key: str, size: tuple[int, int], run: int, count: int
) -> list[BenchPrompt]:
    """``count`` prompts for one image in one run.

    Args:
        seed: benchmark seed.
        image_key: a stable name of the image (its file name), so adding images does not
            change the prompts of the others.
        size: ``(H, W)`` of the image.
        run: run index; each run gets new prompts.
        count: prompts per image.
    """
    rng = _rng(seed, image_key, run)
    height, width = size
    prompts = []
    for i in range(count):
        kind = KINDS[(run + i) % len(KINDS)]
        w = float(rng.uniform(0.15, 0.7) * width)
        h = float(rng.uniform(0.15, 0.7) * height)
        x0 = float(rng.uniform(0, width - w))
        y0 = float(rng.uniform(0, height - h))
        box = [round(x0, 1), round(y0, 1), round(x0 + w, 1), round(y0 + h, 1)]
        inside = [
            [
                round(float(rng.uniform(box[0], box[2])), 1),
                round(float(rng.uniform(box[1], box[3])), 1),
            ]
            for _ in range(2)
        ]
        if kind == "point":
            prompts.append(BenchPrompt(kind, inside[:1], [1], None, True))
        elif kind == "box":
            prompts.append(BenchPrompt(kind, [], [], box, False))
        else:
            prompts.append(BenchPrompt(kind, inside, [1, 0], box, False))
    return prompts
