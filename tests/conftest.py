"""Shared fixtures: real photos from ../shared and models exported once per test session.

Test models are the official architectures with seeded random weights, exported by
samedge's own exporter (with its parity gate). Set ``SAMEDGE_TEST_MODELS=/some/dir`` to keep
them between sessions: each export is stored under a key that changes whenever the exporter's
source, the seed or the torch version changes, so a stale export is never reused.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
IMAGES = SHARED / "data" / "images"
TEST_SEED = 0

#: Real photos of four different sizes (800x534, 1072x603, 1800x1200, 2250x1500).
PARITY_PHOTOS = ("groceries.jpg", "dogs.jpg", "truck.jpg", "cars.jpg")

HAS_EXPORT = all(
    importlib.util.find_spec(m) is not None
    for m in ("torch", "onnx", "segment_anything", "sam2", "mobile_sam", "timm", "efficientsam")
)
requires_export = pytest.mark.skipif(
    not HAS_EXPORT, reason="needs the [export] extra: pip install 'samedge[export]'"
)


def shared_path(*parts: str) -> Path:
    """A file under ../shared, or skip the test with the reason when it is absent."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} not found: ../shared (test data) is not beside this checkout")
    return path


def _export_key(name: str, seed: int) -> str:
    import torch

    digest = hashlib.sha256()
    export_src = ROOT / "src" / "samedge"
    for path in sorted(export_src.rglob("*.py")):
        if path.parent.name == "export" or path.name in (
            "specs.py",
            "registry.py",
            "manifest.py",
        ):
            digest.update(path.read_bytes())
    digest.update(torch.__version__.encode())
    return f"{name}-seed{seed}-{digest.hexdigest()[:12]}"


@pytest.fixture(scope="session")
def export_test_model(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """``export_test_model(name) -> folder``: the model exported with seed 0, once per session."""
    if not HAS_EXPORT:
        pytest.skip("needs the [export] extra: pip install 'samedge[export]'")
    cache_root = os.environ.get("SAMEDGE_TEST_MODELS")
    root = Path(cache_root) if cache_root else tmp_path_factory.mktemp("models")
    done: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in done:
            from samedge.export import export_model
            from samedge.registry import get_spec

            folder = root / _export_key(name, TEST_SEED)
            if not (folder / "samedge.json").exists():
                export_model(get_spec(name), folder, seed=TEST_SEED)
            done[name] = folder
        return done[name]

    return get


@pytest.fixture(scope="session")
def torch_model() -> Callable[[str], object]:
    """``torch_model(name)``: the official PyTorch model with the test models' weights."""
    if not HAS_EXPORT:
        pytest.skip("needs the [export] extra: pip install 'samedge[export]'")
    cache: dict[str, object] = {}

    def get(name: str) -> object:
        if name not in cache:
            from samedge.export.build import build_model
            from samedge.registry import get_spec

            cache[name] = build_model(get_spec(name), seed=TEST_SEED)
        return cache[name]

    return get
