"""One-Euro filter behaviour and the one-frame hold."""

from __future__ import annotations

import numpy as np
import pytest

from samedge.gaze.filters import HoldLast, OneEuroFilter


def run(f: OneEuroFilter, values, fps=30.0):
    return np.array([f(v, i / fps) for i, v in enumerate(values)])


def test_first_sample_passes_and_constant_stays_constant():
    out = run(OneEuroFilter(), [5.0] * 20)
    assert np.allclose(out, 5.0)


def test_jitter_is_reduced():
    rng = np.random.default_rng(0)
    noisy = 10 + rng.normal(0, 2, 300)
    out = run(OneEuroFilter(min_cutoff=0.5, beta=0.0), noisy)
    assert out[50:].std() < 0.35 * noisy[50:].std()
    assert out[50:].mean() == pytest.approx(10, abs=0.5)


def test_step_lags_then_converges_and_beta_cuts_lag():
    step = [0.0] * 10 + [30.0] * 60
    slow = run(OneEuroFilter(min_cutoff=0.5, beta=0.0), step)
    fast = run(OneEuroFilter(min_cutoff=0.5, beta=0.5), step)
    assert 0 < slow[10] < 30  # lags behind the step
    assert fast[12] > slow[12]  # speed raises the cutoff: less lag
    assert fast[-1] == pytest.approx(30, abs=0.5)
    assert np.all(np.diff(slow[10:]) >= 0)  # no overshoot


def test_lower_min_cutoff_smooths_more():
    rng = np.random.default_rng(1)
    noisy = rng.normal(0, 1, 200)
    a = run(OneEuroFilter(min_cutoff=0.2, beta=0), noisy)
    b = run(OneEuroFilter(min_cutoff=5.0, beta=0), noisy)
    assert a.std() < b.std()


def test_reset_and_repeated_timestamps():
    f = OneEuroFilter()
    f(1.0, 0.0)
    assert np.isfinite(f(2.0, 0.0))
    f.reset()
    assert f(7.0, 5.0) == 7.0


def test_bad_parameters():
    with pytest.raises(ValueError, match="min_cutoff"):
        OneEuroFilter(min_cutoff=0)


def test_hold_last_keeps_one_frame_then_clears():
    hold: HoldLast[str] = HoldLast(1)
    assert hold.update("a") == ("a", False)
    assert hold.update(None) == ("a", True)
    assert hold.update(None) == (None, False)
    assert hold.update(None) == (None, False)
    assert hold.update("b") == ("b", False)
    assert hold.update(None) == ("b", True)
    assert hold.update("c") == ("c", False)
