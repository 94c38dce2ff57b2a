"""Make ``torchvision`` importable when its compiled operators cannot load.

A torchvision wheel built against another torch build installs but cannot load its C++
extension; ``import torchvision`` then fails while registering fake kernels for
``torchvision::nms`` and ``torchvision::qnms``, and so do ``segment_anything`` and ``sam2``,
which import torchvision for their transforms. When (and only when) that extension is
missing, :func:`ensure_torchvision` defines those two operator schemas, with a pure-PyTorch
greedy NMS as the CPU kernel of ``nms``, so that the official packages import and their
automatic mask generators run (``torchvision.ops.nms`` and ``batched_nms`` then use the
pure-PyTorch kernel; other compiled operators still raise torchvision's own error).
Nothing changes when torchvision's own operators load.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import torch

_LIB: torch.library.Library | None = None


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Greedy non-maximum suppression with torchvision's semantics.

    Boxes are ``(N, 4)`` XYXY; returns the indices of kept boxes, by decreasing score.
    A box is suppressed when its IoU with a kept box is strictly greater than the threshold.
    """
    if boxes.numel() == 0:
        return torch.empty((0,), dtype=torch.int64, device=boxes.device)
    boxes = boxes.to(torch.float64)
    order = torch.argsort(scores, descending=True, stable=True)
    x0, y0, x1, y1 = boxes.unbind(1)
    areas = (x1 - x0) * (y1 - y0)
    suppressed = torch.zeros(len(order), dtype=torch.bool)
    keep = []
    for rank in range(len(order)):
        if suppressed[rank]:
            continue
        i = order[rank]
        keep.append(int(i))
        rest = order[rank + 1 :]
        w = (torch.minimum(x1[i], x1[rest]) - torch.maximum(x0[i], x0[rest])).clamp(min=0)
        h = (torch.minimum(y1[i], y1[rest]) - torch.maximum(y0[i], y0[rest])).clamp(min=0)
        inter = w * h
        iou = inter / (areas[i] + areas[rest] - inter)
        suppressed[rank + 1 :] |= iou > iou_threshold
    return torch.tensor(keep, dtype=torch.int64, device=scores.device)


def _extension_loads() -> bool:
    spec = importlib.util.find_spec("torchvision")
    if spec is None or spec.origin is None:
        return True  # not installed: nothing to repair, the import error will say so
    folder = Path(spec.origin).parent
    libs = list(folder.glob("_C*.so")) + list(folder.glob("_C*.pyd"))
    if not libs:
        return False
    try:
        torch.ops.load_library(str(libs[0]))
    except (OSError, RuntimeError):
        return False
    return True


def ensure_torchvision() -> None:
    """Import torchvision, defining its NMS operators first if its extension cannot load."""
    global _LIB
    if "torchvision" in sys.modules or _LIB is not None:
        return
    if not _extension_loads():
        _LIB = torch.library.Library("torchvision", "DEF")
        _LIB.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        _LIB.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        _LIB.impl("nms", nms, "CPU")
    import torchvision.ops.boxes

    if _LIB is not None:
        # torchvision.ops.nms / batched_nms check for the compiled extension before calling
        # torch.ops.torchvision.nms; the operator now exists, so let them through.
        torchvision.ops.boxes._assert_has_ops = lambda: None
