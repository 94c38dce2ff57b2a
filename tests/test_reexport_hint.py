"""A damaged model folder names the exact command that writes it again, weights included."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from samedge.cli.main import main
from samedge.manifest import ROLES, FileEntry, Manifest, sha256_file

from .conftest import shared_path


def _folder(tmp_path: Path, weights: dict[str, Any]) -> Path:
    """A model folder whose every graph is a small file listed with its true hash."""
    folder = tmp_path / "my model"
    folder.mkdir()
    files = {}
    for role in ROLES:
        path = folder / f"{role}.onnx"
        path.write_bytes(role.encode())
        files[role] = [FileEntry(path.name, sha256_file(path), path.stat().st_size)]
    manifest = Manifest(
        model="sam2.1_hiera_tiny",
        family="sam2",
        opset=17,
        precision={"encoder": "fp32", "decoder": "fp32"},
        weights=weights,
        files=files,
    )
    (folder / "samedge.json").write_text(manifest.to_json())
    return folder


def _segment_error(folder: Path, capsys: pytest.CaptureFixture[str]) -> str:
    image = shared_path("data", "images", "truck.jpg")
    argv = ["segment", str(image), "--model", str(folder), "--point", "10,10", "--out", "m.png"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("samedge: error: ") and err.count("\n") == 1, err
    return err


def test_a_corrupt_random_weight_export_names_its_seed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = _folder(tmp_path, {"source": "random-init", "seed": 7})
    (folder / "decoder.onnx").write_bytes(b"DECODER")  # same size, other bytes
    err = _segment_error(folder, capsys)
    command = f"samedge export sam2.1_hiera_tiny --random-init 7 --out '{folder}'"
    assert "decoder.onnx does not match its manifest" in err and f"'{command}'" in err
    (folder / "decoder.onnx").unlink()
    err = _segment_error(folder, capsys)
    assert "decoder file decoder.onnx is missing" in err and command in err


def test_a_corrupt_checkpoint_export_gets_no_seed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    weights = {"source": "checkpoint", "file": "sam2.1_hiera_tiny.pt", "sha256": "0" * 64}
    folder = _folder(tmp_path, weights)
    (folder / "encoder.onnx").write_bytes(b"ENCODER")
    err = _segment_error(folder, capsys)
    assert f"'samedge export sam2.1_hiera_tiny --out '{folder}''" in err
    assert "--random-init" not in err
