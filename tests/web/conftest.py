"""Fixtures of the web UI tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

IMAGES = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "images"


@pytest.fixture(scope="session")
def photo() -> Callable[[str], Path]:
    """``photo(name)``: a real photo from ../shared/data/images, or skip when it is absent."""

    def get(name: str) -> Path:
        path = IMAGES / name
        if not path.exists():
            pytest.skip(f"{path} not found: ../shared (test data) is not beside this checkout")
        return path

    return get
