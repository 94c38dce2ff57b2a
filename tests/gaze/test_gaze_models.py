"""The auxiliary model registry and its resolver."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from samedge.errors import ModelNotFoundError
from samedge.gaze.models import AUX_MODELS, resolve_aux_model
from samedge.hub import verify_file

from ..conftest import shared_path

SHARED_COPIES = {
    "yunet": "face/yunet_n_640_640.onnx",
    "ultraface": "face/ultraface-RFB-320.onnx",
    "yolox_nano": "detection/yolox_nano.onnx",
    "landmarks-regression-retail-0009": "gaze/landmarks-regression-retail-0009/FP16",
    "head-pose-estimation-adas-0001": "gaze/head-pose-estimation-adas-0001/FP16",
    "gaze-estimation-adas-0002": "gaze/gaze-estimation-adas-0002/FP16",
}


def test_every_entry_is_complete():
    assert set(AUX_MODELS) == set(SHARED_COPIES)
    for model in AUX_MODELS.values():
        assert model.licence in ("Apache-2.0", "MIT")
        assert model.stage in ("face", "gaze", "detect")
        for item in model.files:
            assert item.url.startswith("https://") and item.url.endswith(item.filename)
            assert re.fullmatch(r"[0-9a-f]{64}", item.sha256)


@pytest.mark.parametrize("name", sorted(SHARED_COPIES))
def test_sha256_matches_the_tested_copies(name):
    folder = shared_path("models", SHARED_COPIES[name])
    if folder.is_file():
        folder = folder.parent
    shared_name = {"ultraface": "ultraface-RFB-320.onnx"}
    for item in AUX_MODELS[name].files:
        path = folder / shared_name.get(name, item.filename)
        assert verify_file(path, item.sha256), f"{path} does not match the registry"


def test_resolver_explicit_file_folder_and_omz_tree(tmp_path, monkeypatch):
    monkeypatch.setenv("SAMEDGE_HOME", str(tmp_path / "home"))
    models = shared_path("models")
    yunet = models / "face" / "yunet_n_640_640.onnx"
    assert resolve_aux_model("yunet", yunet) == yunet
    assert resolve_aux_model("yunet", yunet.parent) == yunet
    gaze = resolve_aux_model("gaze-estimation-adas-0002", models / "gaze")
    assert gaze == models / "gaze/gaze-estimation-adas-0002/FP16/gaze-estimation-adas-0002.xml"


def test_resolver_uses_the_cache_and_never_the_shared_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("SAMEDGE_HOME", str(tmp_path))
    with pytest.raises(ModelNotFoundError, match="--fetch-models"):
        resolve_aux_model("yolox_nano")
    cached = tmp_path / "gaze" / "yolox_nano.onnx"
    cached.parent.mkdir()
    cached.write_bytes(b"x")
    assert resolve_aux_model("yolox_nano") == cached
    with pytest.raises(ModelNotFoundError, match="not a file"):
        resolve_aux_model("yolox_nano", tmp_path / "missing.onnx")
    with pytest.raises(ModelNotFoundError, match="unknown auxiliary model 'nope'"):
        resolve_aux_model("nope", Path("."))
