"""Per-stage latency bookkeeping and the end-of-run summary."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

#: Stages in pipeline order (``total`` is the whole ``process`` call).
STAGES = ("face", "gaze", "detect", "depth", "select", "encode", "decode", "total")


@contextmanager
def timed(latency: dict[str, float], stage: str) -> Iterator[None]:
    """Add the wall time of the ``with`` body, in ms, to ``latency[stage]``."""
    start = time.perf_counter()
    try:
        yield
    finally:
        latency[stage] = latency.get(stage, 0.0) + 1000 * (time.perf_counter() - start)


class LatencyStats:
    """Sums of per-frame stage latencies; :meth:`summary` gives FPS and shares."""

    def __init__(self) -> None:
        self.frames = 0
        self.sums: dict[str, float] = defaultdict(float)
        self.counts: dict[str, int] = defaultdict(int)

    def add(self, latency_ms: dict[str, float]) -> None:
        self.frames += 1
        for stage, ms in latency_ms.items():
            self.sums[stage] += ms
            self.counts[stage] += 1

    def summary(self) -> dict[str, Any]:
        """``frames``, ``fps`` (frames / summed ``total``), and per stage: ``runs`` (frames
        in which it ran), ``mean_ms`` (over those runs), ``share`` (of the summed total)."""
        total = self.sums.get("total", 0.0)
        stages = {
            s: {
                "runs": self.counts[s],
                "mean_ms": round(self.sums[s] / self.counts[s], 2),
                "share": round(self.sums[s] / total, 4) if total else 0.0,
            }
            for s in STAGES
            if self.counts.get(s)
        }
        return {
            "frames": self.frames,
            "fps": round(1000 * self.frames / total, 3) if total else 0.0,
            "stages": stages,
        }


def format_summary(summary: dict[str, Any]) -> str:
    """A small text table of :meth:`LatencyStats.summary`."""
    lines = [f"{summary['frames']} frames, {summary['fps']:.2f} FPS (pipeline time only)"]
    lines.append(f"{'stage':<8} {'runs':>5} {'mean ms':>9} {'share':>7}")
    for stage, row in summary["stages"].items():
        lines.append(
            f"{stage:<8} {row['runs']:>5} {row['mean_ms']:>9.1f} {100 * row['share']:>6.1f}%"
        )
    return "\n".join(lines)
