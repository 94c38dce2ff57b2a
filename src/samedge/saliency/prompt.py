"""SqueezeSAM's five-click rule: a saliency map becomes five positive clicks.

The rule, with its parameters:

1. **Threshold**: a pixel is salient when its saliency is above
   ``max(otsu(map), min_threshold)``. Otsu's threshold (on the map quantised to 256
   levels) adapts to each map's contrast; the floor (default 0.25) keeps a dark map, e.g.
   U²-Net-p's output for an image with no subject, from being split at noise level.
2. **Blobs**: 8-connected components of the salient pixels; components smaller than
   ``min_area`` (default 0.5 % of the image) are dropped as specks.
3. **Most salient blob**: the one with the largest *summed* saliency. Summed rather than
   mean: the mean prefers a small, very bright speck (a highlight, a logo) to the large,
   strongly salient subject a photographer means; the sum weighs brightness and extent.
4. **Four sections**: the blob is cut by the vertical and horizontal lines through its
   centroid (quadrants around the centroid: top-left, top-right, bottom-left,
   bottom-right; a pixel on a line goes to the left / top side). Quadrants follow the
   blob wherever its mass is, where bounding-box halves would leave sections nearly
   empty for a blob that is not box-shaped.
5. **Five clicks**: the centre of mass (unweighted mean of pixel coordinates) of the
   whole blob, then of each section, all positive. A centre that falls off the blob (a
   ring, a crescent) is moved to the nearest blob pixel of its section, so every click
   lands on the blob. A section with no pixel (a blob one pixel thick) gives no click, so
   degenerate blobs get fewer than five.

Coordinates are XY pixels of the original image (column, row), the frame of
:meth:`samedge.Predictor.predict`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import SamedgeError

MIN_THRESHOLD = 0.25
MIN_AREA_FRACTION = 0.005
SECTIONS = ("blob", "top-left", "top-right", "bottom-left", "bottom-right")


class NoSalientObjectError(SamedgeError):
    """The saliency map has no blob above the threshold and the minimum area."""


@dataclass(frozen=True)
class AutoPrompt:
    """The clicks the five-click rule made, with what they came from.

    Attributes:
        points: float64 ``(N, 2)`` XY pixels, ``N <= 5``: the blob's centre, then the
            top-left, top-right, bottom-left, bottom-right sections' centres.
        labels: int64 ``(N,)``, all 1 (positive).
        sections: ``(N,)`` names of what each point is the centre of (see :data:`SECTIONS`).
        blob: bool ``(H, W)`` the chosen blob.
        saliency: float32 ``(H, W)`` the saliency map in [0, 1].
        threshold: the saliency threshold used.
        score: the blob's summed saliency.
        backend: the saliency backend's name.
    """

    points: np.ndarray
    labels: np.ndarray
    sections: tuple[str, ...]
    blob: np.ndarray
    saliency: np.ndarray
    threshold: float
    score: float
    backend: str

    def __post_init__(self) -> None:
        n = len(self.points)
        if self.points.shape != (n, 2) or self.labels.shape != (n,) or len(self.sections) != n:
            raise ValueError("points (N, 2), labels (N,) and sections (N,) must agree")
        if self.blob.shape != self.saliency.shape or self.blob.dtype != np.bool_:
            raise ValueError("blob must be a bool mask of the saliency map's shape")

    @property
    def area(self) -> int:
        """Blob pixels."""
        return int(np.count_nonzero(self.blob))

    def to_json(self) -> dict[str, object]:
        return {
            "backend": self.backend,
            "threshold": round(self.threshold, 6),
            "blob_area": self.area,
            "blob_score": round(self.score, 3),
            "points": self.points.tolist(),
            "labels": self.labels.tolist(),
            "sections": list(self.sections),
        }


def threshold_of(saliency: np.ndarray, min_threshold: float = MIN_THRESHOLD) -> float:
    """``max(otsu, min_threshold)`` of a [0, 1] map (Otsu on 256 levels)."""
    import cv2  # imported here: the CLI imports this package to list the backends

    levels = np.round(np.clip(saliency, 0.0, 1.0) * 255).astype(np.uint8)
    otsu, _ = cv2.threshold(levels, 0, 255, cv2.THRESH_BINARY | cv2.THRESH_OTSU)
    return max(float(otsu) / 255.0, min_threshold)


def _centre(ys: np.ndarray, xs: np.ndarray) -> tuple[float, float]:
    """Centre of mass of pixels ``(ys, xs)``; the nearest of them when it is off them."""
    cx, cy = float(xs.mean()), float(ys.mean())
    rx, ry = round(cx), round(cy)
    if np.any((xs == rx) & (ys == ry)):
        return cx, cy
    i = int(np.argmin((xs - cx) ** 2 + (ys - cy) ** 2))
    return float(xs[i]), float(ys[i])


def five_clicks(
    saliency: np.ndarray,
    min_threshold: float = MIN_THRESHOLD,
    min_area: int | None = None,
    backend: str = "",
) -> AutoPrompt:
    """Apply the five-click rule (module docstring) to a saliency map.

    Args:
        saliency: float ``(H, W)`` in [0, 1].
        min_threshold: floor of the threshold.
        min_area: smallest blob in pixels (``None``: 0.5 % of the image).

    Raises:
        NoSalientObjectError: no blob passes the threshold and the minimum area.
    """
    import cv2

    saliency = np.asarray(saliency, dtype=np.float32)
    height, width = saliency.shape
    if min_area is None:
        min_area = max(1, round(MIN_AREA_FRACTION * height * width))
    threshold = threshold_of(saliency, min_threshold)
    salient = (saliency > threshold).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(salient, connectivity=8)
    sums = np.bincount(labels.ravel(), weights=saliency.ravel(), minlength=count)
    candidates = [k for k in range(1, count) if stats[k, cv2.CC_STAT_AREA] >= min_area]
    if not candidates:
        peak = float(saliency.max()) if saliency.size else 0.0
        raise NoSalientObjectError(
            f"no salient object: no blob of at least {min_area} px above saliency "
            f"{threshold:.2f} (the map's peak is {peak:.2f}); give a --point or --box instead"
        )
    best = max(candidates, key=lambda k: sums[k])
    blob = labels == best
    ys, xs = np.nonzero(blob)
    cx, cy = float(xs.mean()), float(ys.mean())
    left, top = xs <= cx, ys <= cy
    parts = {
        "blob": np.ones_like(left),
        "top-left": left & top,
        "top-right": ~left & top,
        "bottom-left": left & ~top,
        "bottom-right": ~left & ~top,
    }
    points, names = [], []
    for name in SECTIONS:
        part = parts[name]
        if part.any():
            points.append(_centre(ys[part], xs[part]))
            names.append(name)
    return AutoPrompt(
        points=np.asarray(points, dtype=np.float64),
        labels=np.ones(len(points), dtype=np.int64),
        sections=tuple(names),
        blob=blob,
        saliency=saliency,
        threshold=threshold,
        score=float(sums[best]),
        backend=backend,
    )
