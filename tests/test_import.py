"""Importing samedge must be cheap and free of side effects."""

from __future__ import annotations

import subprocess
import sys


def _run(code: str) -> str:
    return subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout.strip()


def test_import_does_not_load_torch_or_onnxruntime() -> None:
    out = _run(
        "import sys, logging, samedge; "
        "print(sorted(m for m in ('torch', 'onnxruntime', 'cv2') if m in sys.modules), "
        "logging.getLogger().handlers)"
    )
    assert out == "[] []"


def test_public_names_resolve_lazily() -> None:
    out = _run(
        "import sys, samedge; samedge.list_models(); samedge.get_spec('sam_vit_b'); "
        "print('onnxruntime' in sys.modules); samedge.Predictor; "
        "print('onnxruntime' in sys.modules)"
    )
    assert out.splitlines() == ["False", "False"]
