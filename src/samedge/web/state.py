"""Per-session state of the web UI: the current image and each tab's prompts.

Both are immutable values: every action returns a new one, so the UI can keep them in
per-session state and undo is a stack of earlier values. Coordinates are pixels of the
original image (x right, y down); boxes are XYXY.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np

from ..errors import PromptError

Mode = Literal["point", "box", "box_points"]
ClickKind = Literal["positive", "negative", "corner"]

#: Which click kinds each prompt tab accepts.
MODE_CLICKS: dict[str, tuple[str, ...]] = {
    "point": ("positive", "negative"),
    "box": ("corner",),
    "box_points": ("positive", "negative", "corner"),
}

#: Limits that keep one request cheap whatever a client sends.
MAX_POINTS = 64
MAX_BOXES = 32

#: Longest side of the picture shown in the browser; larger images are shown scaled down
#: (clicks are mapped back to original pixels, masks are computed at full resolution).
DEFAULT_MAX_DISPLAY_SIDE = 1600


def image_digest(pixels: np.ndarray) -> str:
    """sha256 of an image's decoded pixels and shape: the same picture has the same key
    whichever file format it arrived in."""
    digest = hashlib.sha256()
    digest.update(repr((pixels.shape, str(pixels.dtype))).encode())
    digest.update(np.ascontiguousarray(pixels).data)
    return digest.hexdigest()


@dataclass(frozen=True, eq=False)
class LoadedImage:
    """An uploaded image, decoded once.

    Attributes:
        pixels: ``H x W x 3`` uint8 RGB, read-only, at the original resolution.
        sha256: :func:`image_digest` of ``pixels`` (the embedding cache key).
        name: a file-name-safe stem for downloads (never used as a server path).
        scale: ``display size / original size`` (``<= 1``).
        display: ``pixels`` resized by ``scale`` (the picture the browser shows and clicks).
    """

    pixels: np.ndarray
    sha256: str
    name: str
    scale: float
    display: np.ndarray

    @classmethod
    def create(
        cls, pixels: np.ndarray, name: str, max_display_side: int = DEFAULT_MAX_DISPLAY_SIDE
    ) -> LoadedImage:
        import cv2

        pixels = np.ascontiguousarray(pixels)
        if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[2] != 3:
            raise ValueError(f"pixels must be H x W x 3 uint8, got {pixels.dtype} {pixels.shape}")
        pixels.setflags(write=False)
        height, width = pixels.shape[:2]
        scale = min(1.0, max_display_side / max(height, width))
        if scale < 1.0:
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            display = cv2.resize(pixels, size, interpolation=cv2.INTER_AREA)
            display.setflags(write=False)
        else:
            display = pixels
        return cls(pixels, image_digest(pixels), name, scale, display)

    @property
    def size(self) -> tuple[int, int]:
        """``(H, W)`` of the original image."""
        return int(self.pixels.shape[0]), int(self.pixels.shape[1])

    def to_original(self, x: float, y: float) -> tuple[float, float]:
        """Map a click on the displayed picture to original pixels, clamped to the image."""
        height, width = self.size
        if not (math.isfinite(x) and math.isfinite(y)):
            raise PromptError(f"click position ({x}, {y}) is not a number")
        ox = min(max(float(x) / self.scale, 0.0), float(width))
        oy = min(max(float(y) / self.scale, 0.0), float(height))
        return round(ox, 1), round(oy, 1)


@dataclass(frozen=True)
class Prompts:
    """The prompts of one tab, in original-image pixels.

    ``point`` mode: any number of positive / negative points, one object.
    ``box`` mode: any number of boxes, one object (and one mask) per box.
    ``box_points`` mode: at most one box plus any number of points, all for one object;
    drawing a second box replaces the first.

    A box is drawn with two clicks: the first sets ``corner``, the second completes it.
    """

    mode: Mode
    points: tuple[tuple[float, float], ...] = ()
    labels: tuple[int, ...] = ()
    boxes: tuple[tuple[float, float, float, float], ...] = ()
    corner: tuple[float, float] | None = None
    history: tuple[Prompts, ...] = field(default=(), repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.mode not in MODE_CLICKS:
            raise ValueError(f"unknown prompt mode {self.mode!r}")

    @property
    def empty(self) -> bool:
        """No complete prompt yet (a pending first corner does not count)."""
        return not self.points and not self.boxes

    @property
    def can_undo(self) -> bool:
        return bool(self.history)

    def _push(self, **changes: Any) -> Prompts:
        snapshot = replace(self, history=())
        return replace(self, **changes, history=(*self.history, snapshot))

    def add(self, kind: str, x: float, y: float) -> Prompts:
        """The prompts after one click of ``kind`` at original pixel ``(x, y)``.

        Raises:
            PromptError: a click kind this tab does not take, or too many prompts.
        """
        if kind not in MODE_CLICKS[self.mode]:
            allowed = ", ".join(MODE_CLICKS[self.mode])
            raise PromptError(f"the {self.mode} tab takes {allowed} clicks, not '{kind}'")
        if kind == "corner":
            if self.corner is None:
                return self._push(corner=(x, y))
            (cx, cy) = self.corner
            box = (min(cx, x), min(cy, y), max(cx, x), max(cy, y))
            if self.mode == "box_points":
                return self._push(boxes=(box,), corner=None)
            if len(self.boxes) >= MAX_BOXES:
                raise PromptError(f"at most {MAX_BOXES} boxes at a time; clear or undo some")
            return self._push(boxes=(*self.boxes, box), corner=None)
        if len(self.points) >= MAX_POINTS:
            raise PromptError(f"at most {MAX_POINTS} points at a time; clear or undo some")
        label = 1 if kind == "positive" else 0
        return self._push(points=(*self.points, (x, y)), labels=(*self.labels, label))

    def undo(self) -> Prompts:
        """The prompts before the last click (unchanged if there is nothing to undo)."""
        if not self.history:
            return self
        return replace(self.history[-1], history=self.history[:-1])

    def clear(self) -> Prompts:
        """No prompts and no undo history."""
        return Prompts(self.mode)

    def predict_kwargs(self) -> dict[str, Any] | None:
        """Keyword arguments for :meth:`samedge.Predictor.predict`, or ``None`` when empty.

        A single point alone asks for three candidate masks (the best is kept), as SAM
        recommends for ambiguous clicks; every other combination asks for one mask per
        object.
        """
        if self.empty:
            return None
        kwargs: dict[str, Any] = {}
        if self.points:
            kwargs["points"] = np.asarray(self.points, dtype=np.float64)
            kwargs["labels"] = np.asarray(self.labels, dtype=np.float64)
        if self.boxes:
            boxes = np.asarray(self.boxes, dtype=np.float64)
            if self.mode == "box":
                kwargs["boxes"] = boxes
            else:
                kwargs["box"] = boxes[0]
        kwargs["multimask_output"] = len(self.points) == 1 and not self.boxes
        return kwargs

    def summary(self) -> str:
        """A short description, e.g. ``"2 points (1 positive, 1 negative), 1 box"``."""
        parts = []
        if self.points:
            positive = sum(self.labels)
            parts.append(
                f"{len(self.points)} point{'s' * (len(self.points) != 1)} "
                f"({positive} positive, {len(self.points) - positive} negative)"
            )
        if self.boxes:
            parts.append(f"{len(self.boxes)} box{'es' * (len(self.boxes) != 1)}")
        if self.corner is not None:
            parts.append("first corner set: click the opposite corner")
        return ", ".join(parts) if parts else "no prompts"
