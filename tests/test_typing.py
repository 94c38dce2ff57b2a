"""The package's annotations hold: mypy passes on src/samedge with pyproject's [tool.mypy]."""

from __future__ import annotations

import subprocess
import sys

import pytest

from .conftest import ROOT

pytest.importorskip("mypy", reason="needs the [dev] extra: pip install 'samedge[dev]'")


def test_mypy_finds_no_errors() -> None:
    # The default .mypy_cache (git-ignored) beside pyproject.toml: ~25 s on 2 cores without
    # it, ~1 s with it.
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, f"mypy:\n{result.stdout}{result.stderr}"
