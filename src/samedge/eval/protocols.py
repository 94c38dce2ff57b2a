"""Prompting protocols: how a ground-truth instance becomes the prompts a model sees.

Static protocols make one prompt per instance and one predictor call:

``points``      ``k`` distinct object pixels drawn uniformly at random (all positive), from a
                generator seeded with ``(seed, crc32(sample_id))`` so every sample's points
                are reproducible and independent of dataset order or ``--limit``.
``center``      one positive point at the object pixel farthest from the mask's border.
``box``         the tight ground-truth box ``(x0, y0, x1, y1)`` with ``x1``/``y1`` the last
                object column/row (inclusive, as the official SAM tools compute boxes).
``box+center``  that box and the centre point.

A single point is predicted with ``multimask_output=True`` and the highest-scoring of the
three masks is kept (SAM's advice for ambiguous prompts); every other prompt uses
``multimask_output=False``.

The interactive protocol ``clicks`` simulates a user (:func:`interactive`): the first click
goes to the centre of the largest missed region (the whole object at first) and is
predicted with ``multimask_output=True`` keeping the highest-scoring mask; each later click
is placed by :func:`samedge.eval.clicks.next_click` on the current prediction and predicted
with all clicks so far plus the previous chosen low-res logits as ``mask_input`` and
``multimask_output=False`` (the RITM-style practice). IoU is measured after every click.

The ``auto`` protocol uses no ground truth to prompt: :mod:`samedge.saliency`'s five clicks
on the image's most salient blob (the same prompt for every instance of an image), predicted
together with ``multimask_output=False``. Beside the mask's IoU it records the saliency
blob's IoU with the instance and how many clicks fall inside the instance (a click on an
ignore pixel, e.g. GrabCut's boundary band, does not count as inside). An image with no
salient blob scores IoU 0 for each of its instances (the auto prompt failed).
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from ..runtime.types import MaskPrediction
from .clicks import Click, center_point, next_click
from .datasets import Instance
from .metrics import iou

if TYPE_CHECKING:
    from ..saliency import AutoPrompt

STATIC_PROTOCOLS = ("points", "center", "box", "box+center")
INTERACTIVE = "clicks"
AUTO = "auto"
PROTOCOLS = (*STATIC_PROTOCOLS, INTERACTIVE, AUTO)


@runtime_checkable
class PromptPredictor(Protocol):
    """What evaluation needs from a model; :class:`samedge.Predictor` satisfies it.

    ``encode`` takes a uint8 ``(H, W, 3)`` RGB image and returns an opaque embedding that
    ``predict`` takes for every prompt on that image. ``predict`` follows
    :meth:`samedge.Predictor.predict`: points ``(N, 2)`` XY pixels, labels ``(N,)``, box
    ``(4,)`` XYXY pixels, ``mask_input`` ``(1, 256, 256)`` low-res logits of a previous
    prediction; it returns a :class:`MaskPrediction` with one prompt set (``B = 1``). The
    prompt is passed by keyword (``Predictor.predict`` has ``boxes`` between ``box`` and
    ``mask_input``).
    """

    def encode(self, image: np.ndarray) -> Any: ...

    def predict(
        self,
        embedding: Any,
        *,
        points: Any = None,
        labels: Any = None,
        box: Any = None,
        mask_input: Any = None,
        multimask_output: bool = True,
    ) -> MaskPrediction: ...


@dataclass(frozen=True)
class Prompt:
    """One predictor call's prompt in original-image pixels.

    Attributes:
        points: float64 ``(N, 2)`` XY, or ``None``.
        labels: int64 ``(N,)`` 1 object / 0 background, or ``None``.
        box: float64 ``(4,)`` XYXY, or ``None``.
        multimask_output: ask for three masks and keep the best-scoring one.
    """

    points: np.ndarray | None = None
    labels: np.ndarray | None = None
    box: np.ndarray | None = None
    multimask_output: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "points": None if self.points is None else self.points.tolist(),
            "labels": None if self.labels is None else self.labels.tolist(),
            "box": None if self.box is None else self.box.tolist(),
            "multimask_output": self.multimask_output,
        }


@dataclass(frozen=True)
class Step:
    """The result of one predictor call.

    Attributes:
        prompt: what was asked.
        mask: bool ``(H, W)`` the chosen mask.
        score: its predicted IoU.
        low_res_logits: float32 ``(256, 256)`` its low-res logits.
        iou: IoU against the ground truth (outside the ignore region).
        click: the click that led to this step (interactive protocol only).
    """

    prompt: Prompt
    mask: np.ndarray
    score: float
    low_res_logits: np.ndarray
    iou: float
    click: Click | None = None


def gt_box(mask: np.ndarray) -> np.ndarray:
    """float64 ``(4,)`` XYXY tight box of a non-empty bool mask, last column/row inclusive."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    return np.array([cols[0], rows[0], cols[-1], rows[-1]], dtype=np.float64)


def random_points(instance: Instance, k: int, seed: int) -> np.ndarray:
    """float64 ``(k, 2)`` XY of ``k`` distinct object pixels (with repeats only when the
    object has fewer than ``k`` pixels), seeded by ``seed`` and the sample id."""
    rng = np.random.default_rng([seed, zlib.crc32(instance.sample_id.encode())])
    ys, xs = np.nonzero(instance.mask)
    idx = rng.choice(len(xs), size=k, replace=len(xs) < k)
    return np.stack([xs[idx], ys[idx]], axis=1).astype(np.float64)


def static_prompt(protocol: str, instance: Instance, num_points: int = 1, seed: int = 0) -> Prompt:
    """The prompt of a static protocol (see the module docstring) for one instance."""
    if protocol == "points":
        points = random_points(instance, num_points, seed)
        labels = np.ones(num_points, dtype=np.int64)
        return Prompt(points, labels, None, multimask_output=num_points == 1)
    if protocol in ("center", "box+center"):
        x, y = center_point(instance.mask)
        center = np.array([[x, y]], dtype=np.float64)
        if protocol == "center":
            return Prompt(center, np.ones(1, dtype=np.int64), None, multimask_output=True)
        return Prompt(center, np.ones(1, dtype=np.int64), gt_box(instance.mask), False)
    if protocol == "box":
        return Prompt(None, None, gt_box(instance.mask), False)
    raise ValueError(f"unknown static protocol '{protocol}'")


def run_prompt(
    predictor: PromptPredictor,
    embedding: Any,
    prompt: Prompt,
    instance: Instance,
    mask_input: np.ndarray | None = None,
    click: Click | None = None,
) -> Step:
    """One predictor call; keeps the highest-scoring mask."""
    result = predictor.predict(
        embedding,
        points=prompt.points,
        labels=prompt.labels,
        box=prompt.box,
        mask_input=None if mask_input is None else mask_input[None],
        multimask_output=prompt.multimask_output,
    )
    best = int(np.argmax(result.scores[0]))
    mask = result.masks[0, best]
    return Step(
        prompt=prompt,
        mask=mask,
        score=float(result.scores[0, best]),
        low_res_logits=result.low_res_logits[0, best],
        iou=iou(mask, instance.mask, instance.ignore),
        click=click,
    )


def interactive(
    predictor: PromptPredictor,
    embedding: Any,
    instance: Instance,
    max_clicks: int = 20,
    clicks: Sequence[Click] | None = None,
    mask_prompt: bool = True,
    max_points: int | None = None,
) -> list[Step]:
    """Simulated clicking on one instance (see the module docstring).

    Args:
        max_clicks: most clicks to make.
        clicks: replay these clicks instead of simulating them (fidelity mode: a second
            model sees exactly the clicks the first one got, with its own logits fed back).
        mask_prompt: the model takes a mask prompt (``ModelSpec.mask_prompt``); without
            one, each click is predicted from the clicks alone (no previous logits).
        max_points: most points the model takes per prompt (``ModelSpec.max_points``):
            clicking stops there.

    Returns:
        One :class:`Step` per click. Fewer than ``max_clicks`` when the prediction has no
        error left outside the ignore region (IoU 1), when ``clicks`` is shorter, or at
        ``max_points``.
    """
    steps: list[Step] = []
    points: list[tuple[int, int]] = []
    labels: list[int] = []
    pred = np.zeros_like(instance.mask)
    logits: np.ndarray | None = None
    limit = max_clicks if clicks is None else min(max_clicks, len(clicks))
    limit = limit if max_points is None else min(limit, max_points)
    for k in range(limit):
        click = next_click(instance.mask, pred, instance.ignore) if clicks is None else clicks[k]
        if click is None:
            break
        points.append((click.x, click.y))
        labels.append(click.label)
        prompt = Prompt(
            np.asarray(points, dtype=np.float64),
            np.asarray(labels, dtype=np.int64),
            None,
            multimask_output=k == 0,
        )
        step = run_prompt(
            predictor, embedding, prompt, instance, logits if mask_prompt else None, click
        )
        steps.append(step)
        pred, logits = step.mask, step.low_res_logits
    return steps


def auto_steps(
    predictor: PromptPredictor, embedding: Any, auto: AutoPrompt | None, instance: Instance
) -> list[Step]:
    """The ``auto`` protocol's one predictor call, or none when the image has no salient
    blob (``auto`` is ``None``)."""
    if auto is None:
        return []
    prompt = Prompt(auto.points, auto.labels, None, multimask_output=False)
    return [run_prompt(predictor, embedding, prompt, instance)]


def auto_quality(auto: AutoPrompt | None, instance: Instance) -> dict[str, Any]:
    """How well the saliency stage alone found ``instance``: the blob's IoU with it and the
    clicks that fall inside it (blob IoU 0 and no clicks when there was no blob)."""
    if auto is None:
        return {"backend": None, "blob_iou": 0.0, "clicks": 0, "clicks_inside": 0}
    cols = np.clip(np.round(auto.points[:, 0]).astype(int), 0, instance.mask.shape[1] - 1)
    rows = np.clip(np.round(auto.points[:, 1]).astype(int), 0, instance.mask.shape[0] - 1)
    inside = instance.mask[rows, cols]
    if instance.ignore is not None:
        inside &= ~instance.ignore[rows, cols]
    return {
        "backend": auto.backend,
        "blob_iou": iou(auto.blob, instance.mask, instance.ignore),
        "clicks": len(auto.points),
        "clicks_inside": int(inside.sum()),
    }


def parse_protocols(text: str | Sequence[str]) -> tuple[str, ...]:
    """Protocol names from ``"center,box"`` or a list; raises ``ValueError`` on unknown."""
    items = text.split(",") if isinstance(text, str) else [p for t in text for p in t.split(",")]
    names = tuple(dict.fromkeys(p.strip() for p in items if p.strip()))
    unknown = [p for p in names if p not in PROTOCOLS]
    if unknown or not names:
        raise ValueError(
            f"unknown protocol '{','.join(unknown)}'; choose from {', '.join(PROTOCOLS)}"
        )
    return names
