"""The Gaze tab's handlers on real frames, with the real face / gaze / detector models from
../shared/models and the seed-0 SAM 2.1 Hiera-T test export (real graphs, meaningless masks:
``min_iou`` is 0 so a mask is chosen whatever its score)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

from samedge.imageio import load_image
from samedge.web.engine import Engine
from samedge.web.gaze import GazeModels, GazeService, GazeSettings
from samedge.web.models import ModelCatalog, PredictorPool, discover_models

from ..conftest import shared_path

gr = pytest.importorskip("gradio", reason="needs the [web] extra: pip install 'samedge[web]'")
pytest.importorskip("openvino", reason="needs the [gaze] extra: pip install 'samedge[gaze]'")

from samedge.web.gaze_tab import GazeHandlers  # noqa: E402  (needs gradio)

TINY = "sam2.1_hiera_tiny"
STAGES = ("face", "gaze", "detect", "encode", "decode")


def shared_models() -> GazeModels:
    models = shared_path("models")
    return GazeModels(
        face_model=models / "face",
        gaze_models=models / "gaze",
        detector_model=models / "detection" / "yolox_nano.onnx",
    )


@pytest.fixture(scope="module")
def engine(export_test_model: Callable[[str], Path], tmp_path_factory: pytest.TempPathFactory):
    catalog = ModelCatalog(discover_models([str(export_test_model(TINY))]), ["cpu"])
    return Engine(catalog, out_dir=tmp_path_factory.mktemp("web-out"), pool=PredictorPool(2))


@pytest.fixture(scope="module")
def handlers(engine: Engine) -> GazeHandlers:
    return GazeHandlers(GazeService(engine, shared_models()))


def settings(engine: Engine, mode: str = "boxes", min_iou: float = 0.0) -> list:
    entry = engine.catalog.entries[0]
    return [entry.label, entry.precision, "cpu", mode, min_iou]


def bedroom_frame(index: int) -> np.ndarray:
    cap = cv2.VideoCapture(str(shared_path("data", "video", "bedroom.mp4")))
    try:
        for _ in range(index + 1):
            ok, bgr = cap.read()
            assert ok
    finally:
        cap.release()
    return np.ascontiguousarray(bgr[:, :, ::-1])


def stage_ms(message: str) -> dict[str, str]:
    """``{"face": "14 ms", "encode": "–", ...}`` from the latency line."""
    first = message.split("\n")[0]
    parts = [p.strip().replace("*", "") for p in first.split("·")]
    return {p.split(" ")[0]: p.split(" ", 1)[1] for p in parts if p.split(" ")[0] in STAGES}


@pytest.mark.slow
def test_a_webcam_frame_comes_back_annotated_with_stage_times(engine, handlers):
    # Frame 10 of the clip: the girl looks at a person whose box the gaze ray crosses.
    frame = bedroom_frame(10)
    picture, message = handlers.on_frame(frame, *settings(engine))
    assert isinstance(picture, np.ndarray) and picture.shape == frame.shape == (540, 960, 3)
    assert picture.dtype == np.uint8
    times = stage_ms(message)
    assert set(times) == set(STAGES), message
    assert all(t.endswith(" ms") for t in times.values()), message  # every stage ran
    assert "FPS" in message and "looking at **person**" in message
    assert "random test weights" in message
    assert handlers.service._sessions[""].pipeline.stats.frames == 1
    # The chosen mask is blended in and the boxes and the arrow are drawn; elsewhere the
    # picture is the frame itself.
    changed = np.any(picture != frame, axis=-1)
    assert 0.005 < changed.mean() < 0.9


@pytest.mark.slow
def test_frames_without_a_candidate_skip_sam_and_sessions_keep_their_own_state(engine, handlers):
    service = handlers.service
    frame = bedroom_frame(0)  # a face, but no box on the gaze ray
    _, first = handlers.on_frame(frame, *settings(engine), request=_Request("viewer-a"))
    _, second = handlers.on_frame(frame, *settings(engine), request=_Request("viewer-b"))
    for message in (first, second):
        times = stage_ms(message)
        assert times["encode"] == "–" and times["decode"] == "–"
        assert times["face"].endswith(" ms") and "no target: no candidate box" in message
    a, b = service._sessions["viewer-a"], service._sessions["viewer-b"]
    assert a.pipeline is not b.pipeline  # own filters and held target
    assert a.pipeline.face_detector is b.pipeline.face_detector  # shared networks
    assert len(service._stages) == 1
    # A frame arriving while the pipeline is busy is skipped, not queued.
    with service._busy:
        skipped = handlers.on_frame(frame, *settings(engine), request=_Request("viewer-a"))
    assert skipped == [gr.skip(), gr.skip()]  # both widgets keep what they show
    _, after = handlers.on_frame(frame, *settings(engine), request=_Request("viewer-a"))
    assert "1 skipped while busy" in after and "shown " in after


@pytest.mark.slow
def test_an_uploaded_image_is_processed_from_a_fresh_state(engine, handlers, tmp_path):
    photo = shared_path("data", "interactive", "GrabCut", "data_GT", "person1.jpg")
    upload = {"path": str(photo), "orig_name": "person1.jpg"}
    picture, message = handlers.on_image(upload, *settings(engine, mode="boxes"))
    assert picture.shape == load_image(photo).shape
    assert message.startswith("600x450 image · face **") and "no target:" in message
    fake = tmp_path / "notes.png"
    fake.write_text("not a picture")
    picture, message = handlers.on_image(
        {"path": str(fake), "orig_name": "notes.png"}, *settings(engine)
    )
    assert picture is None and message.startswith("**Error:**") and "not an image" in message


def test_missing_models_and_bad_settings_give_one_line_naming_the_fix(
    engine, tmp_path, monkeypatch
):
    frame = np.zeros((48, 64, 3), np.uint8)
    monkeypatch.setenv("SAMEDGE_HOME", str(tmp_path))  # an empty model cache
    cache_only = GazeHandlers(GazeService(engine))
    _, message = cache_only.on_frame(frame, *settings(engine))
    assert message.startswith("**Error:** yunet is not in ") and "\n" not in message
    assert "samedge gaze --fetch-models" in message and "--face-model" in message
    # Without OpenVINO the gaze networks cannot run: the message names the extra.
    monkeypatch.setitem(sys.modules, "openvino", None)
    no_openvino = GazeHandlers(GazeService(engine, shared_models()))
    _, message = no_openvino.on_frame(frame, *settings(engine))
    assert "pip install 'samedge[gaze]'" in message and "\n" not in message
    _, message = cache_only.on_frame(frame, *settings(engine, mode="everything"))
    assert message == "**Error:** gaze mode must be 'boxes' or 'points', got 'everything'"


def test_settings_and_explicit_paths_are_checked(tmp_path):
    assert GazeSettings("points", 0.3).config().selection.min_iou == 0.3
    with pytest.raises(ValueError, match=r"minimum IoU must be in \[0, 1\]"):
        GazeSettings("boxes", 1.5)
    with pytest.raises(KeyError, match="is not a file"):
        GazeModels(detector_model=tmp_path / "missing.onnx").check()
    shared_models().check()


class _Request:
    """What the handlers read from ``gr.Request``: the browser session's id."""

    def __init__(self, session_hash: str) -> None:
        self.session_hash = session_hash
