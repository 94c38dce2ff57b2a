"""Prompts of ``samedge track``, given per frame and object on the command line.

Syntax (``FRAME`` is the 0-based frame index, ``OBJ`` a positive object id, default 1)::

    --point FRAME:X,Y[,LABEL][@OBJ]     LABEL 1 = object (default), 0 = background
    --box   FRAME:X0,Y0,X1,Y1[@OBJ]
    --mask  FRAME:PNG[@OBJ]             a mask image the size of the frame, object = non-zero

Coordinates are pixels of the frame (x right, y down). ``--point 0:410,200`` puts one
positive click on frame 0 for object 1; ``--point 0:600,300@2 --point 0:620,330,0@2`` gives
object 2 a positive and a negative click; ``--box 30:10,20,200,240@3`` a box on frame 30.
Repeated prompts for the same frame and object are combined (points add up; one box and no
mask with points or a box). The parsers check the syntax only; :func:`group_prompts` checks
the prompts against the video (frame range, frame size) and reads mask files.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import PromptError
from ..maskutils import colour_max

_INT = r"(?:0|[1-9][0-9]*)"
_FRAME = re.compile(rf"\s*({_INT})\s*:(.*)\Z", re.S)
_OBJ = re.compile(rf"(.*)@\s*({_INT})\s*\Z", re.S)


class PromptSyntaxError(PromptError):
    """A ``--point``/``--box``/``--mask`` value that does not follow the syntax."""


@dataclass(frozen=True)
class PointPrompt:
    """One click: ``(x, y)`` pixels on frame ``frame``, ``label`` 1 object / 0 background."""

    frame: int
    x: float
    y: float
    label: int = 1
    obj: int = 1
    text: str = field(default="", compare=False, repr=False)  # as typed, for messages

    def __str__(self) -> str:
        return self.text or f"{self.frame}:{self.x:g},{self.y:g},{self.label}@{self.obj}"


@dataclass(frozen=True)
class BoxPrompt:
    """A box ``(x0, y0, x1, y1)`` in pixels on frame ``frame``."""

    frame: int
    box: tuple[float, float, float, float]
    obj: int = 1
    text: str = field(default="", compare=False, repr=False)

    def __str__(self) -> str:
        return self.text or f"{self.frame}:{','.join(f'{v:g}' for v in self.box)}@{self.obj}"


@dataclass(frozen=True)
class MaskPrompt:
    """A mask image file for frame ``frame`` (object = its non-zero pixels)."""

    frame: int
    path: Path
    obj: int = 1
    text: str = field(default="", compare=False, repr=False)

    def __str__(self) -> str:
        return self.text or f"{self.frame}:{self.path}@{self.obj}"


@dataclass(frozen=True)
class ObjectPrompt:
    """Everything given for one object on one frame: what ``VideoPredictor.add_prompt`` takes.

    Attributes:
        points: ``(N, 2)`` float32 XY pixels, or ``None``.
        labels: ``(N,)`` int32 (1 object, 0 background), or ``None``.
        box: ``(4,)`` float32 XYXY, or ``None``.
        mask: ``H x W`` bool at the frame's size, or ``None`` (then points or a box).
    """

    frame: int
    obj: int
    points: np.ndarray | None = None
    labels: np.ndarray | None = None
    box: np.ndarray | None = None
    mask: np.ndarray | None = field(default=None, repr=False)

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {"frame": self.frame, "object": self.obj}
        if self.points is not None and self.labels is not None:
            out["points"] = self.points.tolist()
            out["labels"] = self.labels.tolist()
        if self.box is not None:
            out["box"] = self.box.tolist()
        if self.mask is not None:
            out["mask_area"] = int(np.count_nonzero(self.mask))
        return out


def _split(text: str, what: str, syntax: str) -> tuple[int, str, int]:
    """``FRAME:BODY[@OBJ]`` -> ``(frame, body, obj)``."""
    match = _FRAME.match(text)
    if match is None:
        raise PromptSyntaxError(
            f"invalid {what} {_show(text)}: expected {syntax} (FRAME is a frame index 0, 1, ...)"
        )
    frame, body = int(match.group(1)), match.group(2)
    obj = 1
    tail = _OBJ.match(body)
    if tail is not None:
        body, obj = tail.group(1), int(tail.group(2))
        if obj < 1:
            raise PromptSyntaxError(
                f"invalid {what} {_show(text)}: object ids start at 1 (@1, @2, ...)"
            )
    return frame, body, obj


def _flat(text: str) -> str:
    """``text`` on one line, shortened if long."""
    flat = " ".join(text.split()) if text.strip() else repr(text)
    return flat if len(flat) <= 60 else flat[:57] + "..."


def _show(text: str) -> str:
    return repr(_flat(text))


def _numbers(body: str, counts: tuple[int, ...], what: str, text: str, syntax: str) -> list[float]:
    try:
        values = [float(v) for v in body.split(",")]
    except ValueError:
        values = []
    # float() also reads "nan", "inf" and "1e999": no pixel is there.
    if len(values) not in counts or not all(math.isfinite(v) for v in values):
        raise PromptSyntaxError(f"invalid {what} {_show(text)}: expected {syntax}")
    return values


def parse_point(text: str) -> PointPrompt:
    """``FRAME:X,Y[,LABEL][@OBJ]`` (raises :class:`PromptSyntaxError`, one line)."""
    syntax = "FRAME:X,Y[,LABEL][@OBJ], e.g. 0:410,200 or 12:80,95,0@2"
    frame, body, obj = _split(text, "point", syntax)
    values = _numbers(body, (2, 3), "point", text, syntax)
    label = 1
    if len(values) == 3:
        if values[2] not in (0.0, 1.0):
            raise PromptSyntaxError(
                f"invalid point {_show(text)}: LABEL must be 1 (object) or 0 (background)"
            )
        label = int(values[2])
    return PointPrompt(frame, values[0], values[1], label, obj, _flat(text))


def parse_box(text: str) -> BoxPrompt:
    """``FRAME:X0,Y0,X1,Y1[@OBJ]`` (raises :class:`PromptSyntaxError`, one line)."""
    syntax = "FRAME:X0,Y0,X1,Y1[@OBJ], e.g. 0:100,80,380,300"
    frame, body, obj = _split(text, "box", syntax)
    x0, y0, x1, y1 = _numbers(body, (4,), "box", text, syntax)
    if x1 < x0 or y1 < y0:
        raise PromptSyntaxError(
            f"invalid box {_show(text)}: the corners are X0,Y0 (top left) then X1,Y1 "
            f"(bottom right), with X0 <= X1 and Y0 <= Y1"
        )
    return BoxPrompt(frame, (x0, y0, x1, y1), obj, _flat(text))


def parse_mask(text: str) -> MaskPrompt:
    """``FRAME:PNG[@OBJ]`` (raises :class:`PromptSyntaxError`, one line). A path that itself
    ends in ``@<digits>`` needs an explicit ``@OBJ`` after it."""
    syntax = "FRAME:PNG[@OBJ], e.g. 0:first_mask.png@1"
    frame, body, obj = _split(text, "mask", syntax)
    if not body.strip():
        raise PromptSyntaxError(f"invalid mask {_show(text)}: expected {syntax}")
    return MaskPrompt(frame, Path(body), obj, _flat(text))


def read_mask(path: Path, size: tuple[int, int]) -> np.ndarray:
    """The bool mask in image ``path`` (non-zero pixels in any colour channel; an alpha
    channel is ignored, as an opaque black background would otherwise be the object),
    checked to be ``size = (width, height)`` and not empty."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.load()
            # A palette image reads as its indices, 0 the background (DAVIS annotations).
            data = colour_max(np.asarray(im)) != 0
    except FileNotFoundError:
        raise PromptError(f"mask file not found: {path}") from None
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError):
        raise PromptError(f"cannot read mask {path}: not an image Pillow can decode") from None
    if data.shape[::-1] != tuple(size):
        raise PromptError(
            f"mask {path} is {data.shape[1]}x{data.shape[0]}, the video's frames are "
            f"{size[0]}x{size[1]}"
        )
    if not data.any():
        raise PromptError(f"mask {path} is empty (no non-zero pixel): nothing to track")
    return data


def check_inside(x: float, y: float, size: tuple[int, int], what: str) -> None:
    width, height = size
    if not (0 <= x <= width and 0 <= y <= height):
        raise PromptError(
            f"{what} ({x:g}, {y:g}) lies outside the {width}x{height} frame; "
            f"coordinates are pixels with x in [0, {width}] and y in [0, {height}]"
        )


def _check_frame(frame: int, frames: int, what: str) -> None:
    if frame >= frames:
        raise PromptError(
            f"{what} is on frame {frame}, past the end of the video (frames 0..{frames - 1})"
        )


def group_prompts(
    points: Iterable[PointPrompt] = (),
    boxes: Iterable[BoxPrompt] = (),
    masks: Iterable[MaskPrompt] = (),
    *,
    frames: int,
    size: tuple[int, int],
) -> list[ObjectPrompt]:
    """The prompts of each (frame, object), in frame order then object id, checked against a
    video of ``frames`` frames of ``size = (width, height)`` pixels.

    Raises:
        PromptError: no prompt at all, a frame past the end, a point or box outside the
            frame, two boxes or two masks for one object on one frame, a mask together
            with points or a box, an unreadable, empty or wrongly sized mask (one line).
    """
    points, boxes, masks = list(points), list(boxes), list(masks)
    if not (points or boxes or masks):
        raise PromptError(
            "no prompt: give at least one --point FRAME:X,Y, --box FRAME:X0,Y0,X1,Y1 or "
            "--mask FRAME:PNG (add @OBJ for objects other than 1)"
        )
    keyed: dict[tuple[int, int], dict[str, list]] = {}

    def slot(frame: int, obj: int) -> dict[str, list]:
        return keyed.setdefault((frame, obj), {"points": [], "boxes": [], "masks": []})

    for p in points:
        _check_frame(p.frame, frames, f"point {p}")
        check_inside(p.x, p.y, size, f"point {p}")
        slot(p.frame, p.obj)["points"].append(p)
    for b in boxes:
        _check_frame(b.frame, frames, f"box {b}")
        check_inside(b.box[0], b.box[1], size, f"box {b} corner")
        check_inside(b.box[2], b.box[3], size, f"box {b} corner")
        slot(b.frame, b.obj)["boxes"].append(b)
    for m in masks:
        _check_frame(m.frame, frames, f"mask {m}")
        slot(m.frame, m.obj)["masks"].append(m)

    out = []
    for (frame, obj), given in sorted(keyed.items()):
        where = f"object {obj} on frame {frame}"
        if len(given["boxes"]) > 1:
            raise PromptError(f"{where} has {len(given['boxes'])} boxes; give one box per object")
        if len(given["masks"]) > 1:
            raise PromptError(f"{where} has {len(given['masks'])} masks; give one")
        if given["masks"] and (given["points"] or given["boxes"]):
            raise PromptError(
                f"{where} has a mask and points or a box; a mask replaces them: give the "
                f"corrections on a later frame, or use another object id"
            )
        pts: Sequence[PointPrompt] = given["points"]
        out.append(
            ObjectPrompt(
                frame=frame,
                obj=obj,
                points=np.array([(p.x, p.y) for p in pts], np.float32) if pts else None,
                labels=np.array([p.label for p in pts], np.int32) if pts else None,
                box=np.array(given["boxes"][0].box, np.float32) if given["boxes"] else None,
                mask=read_mask(given["masks"][0].path, size) if given["masks"] else None,
            )
        )
    return out
