"""Summaries of timing samples."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def summarize(values_s: Sequence[float]) -> dict[str, float | int]:
    """``count``, ``min``, ``median``, ``mean``, ``p90`` and ``max`` of samples, in ms.

    ``p90`` is the 90th percentile with linear interpolation (NumPy's default).
    """
    if not len(values_s):
        raise ValueError("no samples")
    ms = np.asarray(values_s, dtype=np.float64) * 1000.0
    return {
        "count": int(ms.size),
        "min": round(float(ms.min()), 3),
        "median": round(float(np.median(ms)), 3),
        "mean": round(float(ms.mean()), 3),
        "p90": round(float(np.percentile(ms, 90)), 3),
        "max": round(float(ms.max()), 3),
    }
