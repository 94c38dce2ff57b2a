"""Settings read from the environment: ``SAMEDGE_THREADS`` and friends."""

from __future__ import annotations

import os

import pytest

from samedge.errors import SamedgeError
from samedge.runtime.policy import default_threads


def test_samedge_threads_sets_the_thread_count(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAMEDGE_THREADS", " 3 ")
    assert default_threads() == 3
    monkeypatch.setenv("SAMEDGE_THREADS", "")  # empty: as if unset
    assert default_threads() == len(os.sched_getaffinity(0))
    monkeypatch.delenv("SAMEDGE_THREADS")
    assert default_threads() == len(os.sched_getaffinity(0))


@pytest.mark.parametrize("text", ["abc", "0", "-2", "2.5", "1e3"])
def test_a_bad_samedge_threads_is_one_line_naming_the_variable(
    text: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SAMEDGE_THREADS", text)
    with pytest.raises(SamedgeError) as info:
        default_threads()
    message = str(info.value)
    assert message.startswith("SAMEDGE_THREADS must be a positive number") and "\n" not in message
    assert f"got '{text}'" in message
