"""Which SAM model gaze uses when none is given: EfficientViT-SAM L0 when it is exported
(the real-time choice), else SAM 2.1 tiny with a one-line note; the same in the web UI's
Gaze tab."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

from samedge.cli.main import main
from samedge.errors import ModelNotFoundError
from samedge.gaze.factory import DEFAULT_MODELS, default_model
from samedge.registry import list_models

from ..conftest import shared_path

L0, TINY = DEFAULT_MODELS


def test_the_defaults_are_registered_models() -> None:
    assert set(DEFAULT_MODELS) <= set(list_models())


def test_l0_first_then_tiny_with_a_note_then_the_export_command() -> None:
    assert default_model([TINY, L0]) == (L0, None)
    name, note = default_model([TINY, "sam_vit_b"])
    assert name == TINY
    assert note == f"{L0}, the real-time choice, is not exported: run 'samedge export {L0}'"
    with pytest.raises(ModelNotFoundError, match=f"run 'samedge export {L0}'"):
        default_model(["sam_vit_b"])


def test_the_cache_decides(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAMEDGE_HOME", str(tmp_path))
    with pytest.raises(ModelNotFoundError, match="no SAM model for gaze"):
        default_model()
    (tmp_path / "models" / TINY).mkdir(parents=True)
    (tmp_path / "models" / TINY / "samedge.json").write_text("{}")
    assert default_model()[0] == TINY
    (tmp_path / "models" / L0).mkdir()
    (tmp_path / "models" / L0 / "samedge.json").write_text("{}")
    assert default_model() == (L0, None)


def test_gaze_without_model_uses_l0_from_the_cache(
    export_test_model: Callable[[str], Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    pytest.importorskip("openvino", reason="needs the [gaze] extra: pip install 'samedge[gaze]'")
    home = tmp_path / "home"
    (home / "models").mkdir(parents=True)
    (home / "models" / L0).symlink_to(export_test_model(L0))
    monkeypatch.setenv("SAMEDGE_HOME", str(home))
    models = shared_path("models")
    photo = shared_path("data", "interactive", "GrabCut", "data_GT", "person1.jpg")
    out = tmp_path / "gaze.png"
    argv = [
        "gaze", "--image", str(photo), "--face-model", str(models / "face"),
        "--gaze-models", str(models / "gaze"), "--detector",
        str(models / "detection" / "yolox_nano.onnx"), "--threads", "2", "--min-iou", "0",
        "--mode", "points", "--out", str(out),
    ]  # fmt: skip
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert f"SAM model: {L0}\n" in err
    written = cv2.imread(str(out))
    assert written.shape == cv2.imread(str(photo)).shape
    assert not np.array_equal(written, cv2.imread(str(photo)))


def test_web_gaze_tab_starts_on_l0_when_offered(tmp_path: Path) -> None:
    pytest.importorskip("gradio")
    from samedge.web.gaze_tab import default_label
    from samedge.web.models import ModelCatalog, ModelEntry

    def entry(name: str) -> ModelEntry:
        return ModelEntry(f"{name} (export)", name, "fp32", tmp_path / name, True)

    both = ModelCatalog([entry("sam_vit_b"), entry(TINY), entry(L0)], ["cpu"])
    assert default_label(both) == (f"{L0} (export)", None)
    label, note = default_label(ModelCatalog([entry("sam_vit_b"), entry(TINY)], ["cpu"]))
    assert label == f"{TINY} (export)" and note is not None and f"samedge export {L0}" in note
    label, note = default_label(ModelCatalog([entry("sam_vit_b")], ["cpu"]))
    assert (
        label == "sam_vit_b (export)"
        and note == f"{L0}, the real-time choice, is not offered by this server"
    )
