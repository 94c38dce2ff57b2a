"""Temporal smoothing: the One-Euro filter and a one-frame hold of the last result."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


def _alpha(cutoff: float, dt: float) -> float:
    tau = 1.0 / (2.0 * math.pi * cutoff)
    return 1.0 / (1.0 + tau / dt)


@dataclass
class OneEuroFilter:
    """The One-Euro filter (Casiez, Roussel and Vogel, CHI 2012) for one scalar signal.

    A low-pass filter whose cutoff rises with the signal's speed: slow changes (jitter) are
    smoothed hard, fast ones (a real glance) pass with little lag.

    Attributes:
        min_cutoff: cutoff frequency (Hz) at rest; lower = smoother, more lag.
        beta: how fast the cutoff rises with speed; higher = less lag on fast moves.
        d_cutoff: cutoff (Hz) of the speed estimate.
    """

    min_cutoff: float = 1.0
    beta: float = 0.05
    d_cutoff: float = 1.0

    def __post_init__(self) -> None:
        if self.min_cutoff <= 0 or self.d_cutoff <= 0 or self.beta < 0:
            raise ValueError("One-Euro needs min_cutoff > 0, d_cutoff > 0 and beta >= 0")
        self.reset()

    def reset(self) -> None:
        self._x: float | None = None
        self._dx = 0.0
        self._t: float | None = None

    def __call__(self, x: float, t: float) -> float:
        """Filter sample ``x`` taken at time ``t`` (seconds); returns the smoothed value."""
        if self._x is None or self._t is None:
            self._x, self._t = float(x), float(t)
            return float(x)
        dt = t - self._t if t > self._t else 1e-3  # a repeated timestamp counts as 1 ms
        dx = (x - self._x) / dt
        a_d = _alpha(self.d_cutoff, dt)
        self._dx = a_d * dx + (1 - a_d) * self._dx
        cutoff = self.min_cutoff + self.beta * abs(self._dx)
        a = _alpha(cutoff, dt)
        self._x = a * x + (1 - a) * self._x
        self._t = t
        return self._x


class HoldLast(Generic[T]):
    """Keep the last value for ``frames`` empty frames, then forget it.

    ``update(value)`` returns ``(value, False)`` for a new value; for ``None`` it returns
    ``(previous, True)`` while the hold lasts, then ``(None, False)``.
    """

    def __init__(self, frames: int = 1) -> None:
        self.frames = frames
        self._last: T | None = None
        self._missed = 0

    def update(self, value: T | None) -> tuple[T | None, bool]:
        if value is not None:
            self._last, self._missed = value, 0
            return value, False
        self._missed += 1
        if self._last is not None and self._missed <= self.frames:
            return self._last, True
        self._last = None
        return None, False

    def reset(self) -> None:
        self._last, self._missed = None, 0
