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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


#: Added to the object-score head's output bias of the checkpoint export's weights. With the
#: plain seeded weights SAM 2.1's tracker can declare the object absent after the prompt, and
#: video parity would compare no-object constants (see tests/video/test_video_parity.py).
OBJECT_SCORE_BIAS = 1.0


#: Encoder input of the SAM 2.1 tiny that ``checkpoint_export`` writes (``samedge export
#: --image-size``): a 16 x 16 embedding grid, 16x fewer tokens than at 1024 pixels, the same
#: arithmetic. The long video parity matrices and the web UI's video tests run on it (on the
#: 2-core AVX2 EPYC a 40-frame, three-object run takes ~35 s against ~145 s at 512 pixels).
SMALL_IMAGE_SIZE = 256


@dataclass(frozen=True)
class CheckpointExport:
    """One run of ``samedge export sam2.1_hiera_tiny --checkpoint FILE --image-size
    SMALL_IMAGE_SIZE --out FOLDER``."""

    folder: Path
    checkpoint: Path
    weights: dict[str, Any]
    returncode: int
    stdout: str
    stderr: str
    image_size: int = SMALL_IMAGE_SIZE


@pytest.fixture(scope="session")
def checkpoint_export(tmp_path_factory: pytest.TempPathFactory) -> CheckpointExport:
    """SAM 2.1 tiny exported from a checkpoint file at :data:`SMALL_IMAGE_SIZE` pixels by the
    command line, once per session, in a process of its own under umask 027: the seed-0 test
    weights with the object-score head's bias raised by :data:`OBJECT_SCORE_BIAS` (the image
    encoder's weights are the seeded export's; no parameter of SAM 2.1 depends on the input
    size). The export tests read its output and files; the video parity tests run its graphs
    against the official predictor on the same weights."""
    if not HAS_EXPORT:
        pytest.skip("needs the [export] extra: pip install 'samedge[export]'")
    import subprocess
    import sys

    import torch

    from samedge.export.build import build_model
    from samedge.registry import get_spec

    model = build_model(get_spec("sam2.1_hiera_tiny"), seed=TEST_SEED)
    head = model.sam_mask_decoder.pred_obj_score_head
    last = head.layers[-1] if hasattr(head, "layers") else head
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    name = next(k for k, v in model.named_parameters() if v is last.bias)
    weights[name] += OBJECT_SCORE_BIAS
    tmp = tmp_path_factory.mktemp("checkpoint-export")
    checkpoint = tmp / "sam2.1_hiera_tiny.pt"
    torch.save({"model": weights}, checkpoint)
    folder = tmp / f"tiny-{SMALL_IMAGE_SIZE}"
    argv = ["export", "sam2.1_hiera_tiny", "--checkpoint", str(checkpoint)]
    argv += ["--image-size", str(SMALL_IMAGE_SIZE), "--out", str(folder)]
    previous = os.umask(0o027)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "samedge", *argv, "--threads", "2"],
            capture_output=True,
            text=True,
            timeout=1800,
        )
    finally:
        os.umask(previous)
    return CheckpointExport(folder, checkpoint, weights, done.returncode, done.stdout, done.stderr)


@pytest.fixture(scope="session")
def small_checkpoint_export(checkpoint_export: CheckpointExport) -> CheckpointExport:
    """:data:`checkpoint_export`, for the tests that need it to have succeeded."""
    assert checkpoint_export.returncode == 0, checkpoint_export.stderr[-2000:]
    return checkpoint_export
