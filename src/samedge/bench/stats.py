"""Summaries of timing samples."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .results import StageStats


def summarize(values_s: Sequence[float]) -> StageStats:
    """The summary (in ms) of samples given in seconds.

    Raises:
        ValueError: no samples.
    """
    if not len(values_s):
        raise ValueError("no samples")
    ms = np.asarray(values_s, dtype=np.float64) * 1000.0
    return StageStats(
        count=int(ms.size),
        min=round(float(ms.min()), 3),
        median=round(float(np.median(ms)), 3),
        mean=round(float(ms.mean()), 3),
        p90=round(float(np.percentile(ms, 90)), 3),
        max=round(float(ms.max()), 3),
    )
