"""Validating user prompts and turning them into the decoder's point sequences.

Boxes become two corner points labelled 2 and 3. The sequence order and the extra padding
point follow the official predictor of each family (``ModelSpec.box_first`` and
``ModelSpec.pad_point``), and coordinates are mapped from the original image to the
encoder's input frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import PromptError
from ..specs import ModelSpec


@dataclass(frozen=True)
class DecoderPrompts:
    """Decoder-ready prompt arrays for ``B`` prompt sets of ``N`` points each."""

    point_coords: np.ndarray  # float32 (B, N, 2), encoder input frame
    point_labels: np.ndarray  # float32 (B, N)
    mask_input: np.ndarray  # float32 (B, 1, 256, 256)
    has_mask_input: np.ndarray  # float32 (B,)

    @property
    def batch(self) -> int:
        return int(self.point_coords.shape[0])

    def rows(self, start: int, stop: int) -> DecoderPrompts:
        """Prompt sets ``start:stop``."""
        return DecoderPrompts(
            self.point_coords[start:stop],
            self.point_labels[start:stop],
            self.mask_input[start:stop],
            self.has_mask_input[start:stop],
        )


def as_array(value: object, name: str, dtype: type = np.float64) -> np.ndarray:
    """``value`` (the prompt argument ``name``) as an array, or a :class:`PromptError`."""
    try:
        return np.asarray(value, dtype=dtype)
    except (TypeError, ValueError, OverflowError):
        # Not the value's repr: an array's spans lines and a long list floods the message.
        raise PromptError(
            f"{name} must be numbers (finite, within float range), got {_describe(value)}"
        ) from None


def _describe(value: object) -> str:
    shape = getattr(value, "shape", None)
    if shape is not None:
        return f"an array of {getattr(value, 'dtype', '?')} with shape {tuple(shape)}"
    text = " ".join(repr(value).split())
    return text if len(text) <= 60 else f"{type(value).__name__} {text[:57]}..."


def _check_inside(xy: np.ndarray, size: tuple[int, int], what: str) -> None:
    height, width = size
    if not np.all(np.isfinite(xy)):
        raise PromptError(f"{what} has non-finite coordinates")
    bad = (xy[..., 0] < 0) | (xy[..., 0] > width) | (xy[..., 1] < 0) | (xy[..., 1] > height)
    if np.any(bad):
        x, y = xy[bad][0]
        raise PromptError(
            f"{what} ({x:g}, {y:g}) lies outside the {width}x{height} image; "
            f"coordinates are pixels with x in [0, {width}] and y in [0, {height}]"
        )


def normalize_prompts(
    spec: ModelSpec,
    original_size: tuple[int, int],
    input_size: tuple[int, int],
    points: object = None,
    labels: object = None,
    box: object = None,
    boxes: object = None,
    mask_input: object = None,
) -> DecoderPrompts:
    """Validate prompts in original-image pixels and build the decoder inputs.

    Args:
        points: ``(N, 2)`` for one prompt set or ``(B, N, 2)`` for ``B`` sets, XY pixels.
        labels: ``(N,)`` or ``(B, N)``: 1 foreground, 0 background. Required with points.
        box: one ``(4,)`` XYXY box.
        boxes: ``(B, 4)`` XYXY boxes, one prompt set per box (with ``points`` of shape
            ``(B, N, 2)`` each set also gets its own points).
        mask_input: low-res logits from a previous prediction, ``(256, 256)``,
            ``(1, 256, 256)`` or ``(B, 1, 256, 256)``.

    Raises:
        PromptError: no prompt at all, malformed shapes, labels other than 0/1, points or
            boxes outside the image, batch sizes that do not agree, more points than
            ``spec.max_points``, or a mask prompt for a model without one
            (``spec.mask_prompt``).
    """
    if box is not None and boxes is not None:
        raise PromptError("give either box or boxes, not both")
    box_arr = None
    if box is not None or boxes is not None:
        box_arr = as_array(box if box is not None else boxes, "box")
        if box is not None and box_arr.shape != (4,):
            got = f"{box_arr.size} numbers" if box_arr.ndim == 1 else f"shape {box_arr.shape}"
            raise PromptError(f"a box is (x0, y0, x1, y1), got {got}")
        box_arr = box_arr.reshape(-1, 4) if box is not None else box_arr
        if box_arr.ndim != 2 or box_arr.shape[1] != 4 or len(box_arr) == 0:
            raise PromptError(f"boxes must be (B, 4) XYXY, got shape {box_arr.shape}")
        _check_inside(box_arr.reshape(-1, 2, 2), original_size, "box corner")
        if np.any(box_arr[:, 2] < box_arr[:, 0]) or np.any(box_arr[:, 3] < box_arr[:, 1]):
            raise PromptError("boxes must be (x0, y0, x1, y1) with x0 <= x1 and y0 <= y1")

    pts = lbl = None
    if points is not None:
        if labels is None:
            raise PromptError("points need labels (1 = foreground, 0 = background)")
        pts = as_array(points, "points")
        lbl = as_array(labels, "labels")
        if pts.ndim == 2:
            pts, lbl = pts[None], lbl[None] if lbl.ndim == 1 else lbl
        if pts.ndim != 3 or pts.shape[2] != 2 or pts.shape[1] == 0:
            raise PromptError(f"points must be (N, 2) or (B, N, 2) XY pixels, got {pts.shape}")
        if lbl.shape != pts.shape[:2]:
            raise PromptError(f"labels {lbl.shape} must match points {pts.shape[:2]}")
        if not np.all(np.isin(lbl, (0, 1))):
            raise PromptError("labels must be 1 (foreground) or 0 (background)")
        _check_inside(pts, original_size, "point")
    elif labels is not None:
        raise PromptError("labels were given without points")

    if pts is None and box_arr is None:
        raise PromptError(
            "no prompt: give at least one point or a box (mask_input only refines them)"
        )
    batch = max(len(x) for x in (pts, box_arr) if x is not None)
    if batch == 0:  # points of shape (0, N, 2): the decoder cannot run an empty batch
        raise PromptError("no prompt: points of shape (0, N, 2) hold no prompt set")
    for arr, what in ((pts, "points"), (box_arr, "boxes")):
        if arr is not None and len(arr) != batch:
            raise PromptError(
                f"{what} describe {len(arr)} prompt sets but {batch} were given elsewhere; "
                f"pair B boxes with points of shape (B, N, 2)"
            )

    scale = np.array(
        [input_size[1] / original_size[1], input_size[0] / original_size[0]], dtype=np.float64
    )
    parts: list[tuple[np.ndarray, np.ndarray]] = []  # (XY (B, n, 2), labels (B, n))
    box_part = None
    if box_arr is not None:
        box_part = (box_arr.reshape(batch, 2, 2) * scale, np.tile([2.0, 3.0], (batch, 1)))
    if box_part is not None and spec.box_first:
        parts.append(box_part)
    if pts is not None:
        assert lbl is not None  # checked with the points above
        parts.append((pts * scale, lbl))
    if box_part is not None and not spec.box_first:
        parts.append(box_part)
    if spec.pad_point == "always" or box_arr is None:
        parts.append((np.zeros((batch, 1, 2)), -np.ones((batch, 1))))
    coords = np.concatenate([xy for xy, _ in parts], axis=1).astype(np.float32)
    labels_out = np.concatenate([lb for _, lb in parts], axis=1).astype(np.float32)
    given = int(np.count_nonzero(labels_out[0] != -1))
    if spec.max_points is not None and given > spec.max_points:
        raise PromptError(
            f"{spec.title} takes at most {spec.max_points} points per prompt set (a box counts "
            f"as 2), got {given}"
        )

    side = spec.low_res_size
    if mask_input is not None and not spec.mask_prompt:
        raise PromptError(
            f"{spec.title} takes no mask prompt (mask_input): refine with more points instead"
        )
    if mask_input is None:
        masks = np.zeros((batch, 1, side, side), dtype=np.float32)
        has_mask = np.zeros(batch, dtype=np.float32)
    else:
        masks = as_array(mask_input, "mask_input", np.float32)
        if not np.all(np.isfinite(masks)):
            raise PromptError(
                "mask_input has non-finite values; pass a previous prediction's logits"
            )
        if masks.shape[-2:] != (side, side) or masks.size not in (side * side, batch * side * side):
            raise PromptError(
                f"mask_input must be the {side}x{side} low-res logits of a previous prediction "
                f"(shape (1, {side}, {side}) or ({batch}, 1, {side}, {side})), got {masks.shape}"
            )
        masks = np.broadcast_to(masks.reshape(-1, 1, side, side), (batch, 1, side, side))
        has_mask = np.ones(batch, dtype=np.float32)
    return DecoderPrompts(coords, labels_out, np.ascontiguousarray(masks), has_mask)
