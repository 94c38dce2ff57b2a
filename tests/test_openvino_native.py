"""``--provider openvino`` without onnxruntime-openvino: the image encoder on OpenVINO's own
runtime (same ``encoder.onnx``), the decoders on ONNX Runtime's CPU provider."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from samedge import Predictor
from samedge.errors import ArtifactError
from samedge.runtime import openvino_native
from samedge.runtime import session as sessions
from samedge.runtime.openvino_native import OpenVINOSession

from .conftest import shared_path

pytest.importorskip("openvino")  # extra [openvino]


@pytest.fixture(autouse=True)
def _no_openvino_provider(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests are about the plain onnxruntime build (no OpenVINO provider)."""
    available = [p for p in sessions.available_providers() if p != "OpenVINOExecutionProvider"]
    monkeypatch.setattr(sessions, "available_providers", lambda: list(available))


def test_openvino_is_native_only_when_asked_first_and_without_the_provider(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert sessions.native_openvino("openvino")
    assert sessions.native_openvino(["OpenVINOExecutionProvider", "cpu"])
    assert not sessions.native_openvino(None)
    assert not sessions.native_openvino("cpu,openvino")
    both = ["OpenVINOExecutionProvider", "CPUExecutionProvider"]
    monkeypatch.setattr(sessions, "available_providers", lambda: list(both))
    assert not sessions.native_openvino("openvino")  # ONNX Runtime's provider runs it all


@pytest.mark.parametrize("name", ["sam2.1_hiera_tiny", "sam_vit_b"])
def test_openvino_encoder_matches_onnx_runtime(
    export_test_model: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    monkeypatch.setenv("SAMEDGE_HOME", str(tmp_path))
    folder = export_test_model(name)
    photo = shared_path("data", "images", "dog.jpg")
    ov = Predictor.from_pretrained(folder, providers="openvino", threads=2)
    cpu = Predictor.from_pretrained(folder, threads=2)
    assert ov.providers == {"encoder": "OpenVINO (CPU)", "decoder": "CPUExecutionProvider"}
    a, b = ov.encode(photo), cpu.encode(photo)
    for got, want in zip(
        (a.image_embeddings, *a.high_res_features, *a.context),
        (b.image_embeddings, *b.high_res_features, *b.context),
        strict=True,
    ):
        assert got.shape == want.shape and got.dtype == np.float32
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-4 * float(np.abs(want).max()))
    prompt = {"points": [[400, 300]], "labels": [1], "boxes": [[100, 80, 600, 500]]}
    pa, pb = ov.predict(a, **prompt), cpu.predict(b, **prompt)
    np.testing.assert_allclose(pa.scores, pb.scores, atol=1e-4)
    assert np.mean(pa.masks == pb.masks) > 0.999
    # The compiled encoder is cached per graph file under the samedge home.
    (cache,) = (tmp_path / "engines" / "openvino").iterdir()
    assert cache.name.startswith(f"{name}-encoder-") and any(cache.iterdir())


@pytest.mark.slow
def test_the_video_tracker_encodes_on_openvino_too(
    export_test_model: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``VideoPredictor`` with ``providers="openvino"``: the frames' encoder on OpenVINO's
    runtime (sharing the image predictor's compiled-model cache), the tracking graphs on
    ONNX Runtime; three tracked frames agree with the all-ONNX-Runtime tracker."""
    from samedge.video import VideoPredictor
    from samedge.video.io import FrameFolder

    monkeypatch.setenv("SAMEDGE_HOME", str(tmp_path))
    folder = export_test_model("sam2.1_hiera_tiny")
    frames = FrameFolder(shared_path("data", "davis2016", "JPEGImages", "car-shadow"), count=3)
    runs = []
    for providers in ("openvino", None):
        tracker = VideoPredictor.from_pretrained(folder, providers=providers, threads=2)
        state = tracker.init_state(frames.size, num_frames=len(frames))
        tracker.add_prompt(state, 0, frames[0], 1, box=[380.0, 140.0, 700.0, 420.0])
        runs.append((tracker.providers, list(tracker.propagate(state, frames))))
    (ov_providers, ov), (cpu_providers, cpu) = runs
    assert ov_providers["encoder"] == "OpenVINO (CPU)"
    assert cpu_providers["encoder"] == ov_providers["memory_attention"] == "CPUExecutionProvider"
    assert [r.frame_index for r in ov] == [r.frame_index for r in cpu] == [0, 1, 2]
    for a, b in zip(ov, cpu, strict=True):
        scale = float(np.abs(b.low_res_logits).max())
        np.testing.assert_allclose(a.low_res_logits, b.low_res_logits, atol=1e-3 * scale)
        np.testing.assert_allclose(a.object_scores, b.object_scores, atol=1e-3)
        assert np.mean(a.masks == b.masks) > 0.999
    (cache,) = (tmp_path / "engines" / "openvino").iterdir()
    assert cache.name.startswith("sam2.1_hiera_tiny-encoder-")


def test_openvino_missing_falls_back_to_onnx_runtime(
    export_test_model: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(openvino_native, "installed", lambda: False)
    assert not sessions.native_openvino("openvino")
    with caplog.at_level(logging.WARNING):
        predictor = Predictor.from_pretrained(
            export_test_model("sam2.1_hiera_tiny"), providers="openvino", threads=1
        )
    assert set(predictor.providers.values()) == {"CPUExecutionProvider"}
    assert "it needs onnxruntime-openvino" in caplog.text


def test_openvino_session_reports_an_unloadable_graph_in_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "encoder.onnx"
    bad.write_bytes(b"not an onnx model")
    expected = r"^OpenVINO cannot load encoder\.onnx on CPU: "
    with pytest.raises(ArtifactError, match=expected) as info:
        OpenVINOSession(bad)
    message = str(info.value)
    assert "\n" not in message and "Exception from" not in message
    assert message.endswith("or use --provider cpu)")
