"""Provider options and IOBinding. No GPU here: the options are tested as the pure function
that builds them, the fallback of cuda/tensorrt requests to the CPU (with its 'Why:') on
this CPU-only onnxruntime, and the IOBinding code path of the predictor bound to the CPU
device (the CUDA path is the same code with device 'cuda')."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from samedge.cli.main import main
from samedge.registry import get_spec
from samedge.runtime import session
from samedge.runtime.predictor import Predictor
from samedge.runtime.providers import ProviderSettings, decoder_shape_profile, provider_options

MODEL = "sam2.1_hiera_tiny"


def test_decoder_profile_covers_the_dynamic_inputs_of_every_family() -> None:
    for name in ("sam_vit_b", MODEL):
        spec = get_spec(name)
        profile = decoder_shape_profile(
            spec.mask_decoder_inputs, spec.low_res_size, max_points=8, max_batch=4
        )
        dynamic = [n for n in spec.mask_decoder_inputs if n not in spec.context_outputs]
        assert list(profile) == dynamic  # the spec's names, in its order, fixed inputs left out
        assert profile["point_coords"] == ((1, 1, 2), (1, 2, 2), (4, 8, 2))
        assert profile["point_labels"] == ((1, 1), (1, 2), (4, 8))
        assert profile["mask_input"] == ((1, 1, 256, 256), (1, 1, 256, 256), (4, 1, 256, 256))
        assert profile["has_mask_input"] == ((1,), (1,), (4,))
        # decoder.onnx takes no mask prompt; the per-image context graph is static
        side = spec.low_res_size
        assert list(decoder_shape_profile(spec.decoder_inputs, side)) == [
            "point_coords",
            "point_labels",
        ]
        assert decoder_shape_profile(spec.context_inputs, side) == {}


def test_tensorrt_options(tmp_path: Path) -> None:
    settings = ProviderSettings(trt_cache=tmp_path / "trt", trt_fp16=True, device_id=1)
    profile = decoder_shape_profile(get_spec(MODEL).mask_decoder_inputs, 256, 16, 8)
    opts = provider_options("tensorrt", settings, profile, cache_name="tiny-decoder-abc")
    folder = str(tmp_path / "trt" / "tiny-decoder-abc")
    assert opts == {
        "device_id": "1",
        "trt_fp16_enable": "True",
        "trt_engine_cache_enable": "True",
        "trt_engine_cache_path": folder,
        "trt_timing_cache_enable": "True",
        "trt_timing_cache_path": folder,
        "trt_profile_min_shapes": "point_coords:1x1x2,point_labels:1x1,"
        "mask_input:1x1x256x256,has_mask_input:1",
        "trt_profile_opt_shapes": "point_coords:1x2x2,point_labels:1x2,"
        "mask_input:1x1x256x256,has_mask_input:1",
        "trt_profile_max_shapes": "point_coords:8x16x2,point_labels:8x16,"
        "mask_input:8x1x256x256,has_mask_input:8",
    }
    assert not (tmp_path / "trt").exists()  # building options creates nothing
    # the encoder has static shapes: no profile; FP16 only when asked for
    encoder = provider_options("TensorrtExecutionProvider")
    assert encoder["trt_fp16_enable"] == "False" and "trt_profile_min_shapes" not in encoder


def test_default_engine_cache_is_in_the_samedge_cache(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("SAMEDGE_HOME", str(tmp_path))
    opts = provider_options("tensorrt", cache_name="x")
    assert opts["trt_engine_cache_path"] == str(tmp_path / "engines" / "tensorrt" / "x")
    ov = provider_options("openvino", ProviderSettings(openvino_device="GPU"), cache_name="x")
    assert ov == {"device_type": "GPU", "cache_dir": str(tmp_path / "engines" / "openvino" / "x")}


def test_other_provider_options() -> None:
    cuda = provider_options(
        "cuda", ProviderSettings(device_id=2, cudnn_conv_algo_search="EXHAUSTIVE")
    )
    assert cuda["device_id"] == "2" and cuda["cudnn_conv_algo_search"] == "EXHAUSTIVE"
    assert provider_options("cuda")["cudnn_conv_algo_search"] == "HEURISTIC"
    assert provider_options("dml", ProviderSettings(device_id=1)) == {"device_id": "1"}
    assert provider_options("coreml")["MLComputeUnits"] == "ALL"
    assert provider_options("cpu") == {} == provider_options("CPUExecutionProvider")
    for bad in ({"device_id": -1}, {"trt_max_points": 1}, {"cudnn_conv_algo_search": "FAST"}):
        with pytest.raises(ValueError):
            ProviderSettings(**bad)


@pytest.fixture(scope="module")
def model(export_test_model) -> Path:
    return export_test_model(MODEL)


def _image() -> np.ndarray:
    image = np.zeros((300, 400, 3), np.uint8)
    image[80:220, 100:300] = 200
    image[120:180, 150:250] = 60
    return image


@pytest.mark.slow
def test_gpu_requests_fall_back_to_cpu_with_the_reason(model, tmp_path, caplog) -> None:
    if {"CUDAExecutionProvider", "TensorrtExecutionProvider"} & set(session.available_providers()):
        pytest.skip("a GPU provider is available here: no fallback to observe")
    settings = ProviderSettings(trt_cache=tmp_path / "trt", trt_fp16=True)
    with caplog.at_level(logging.WARNING, logger="samedge.runtime.session"):
        gpu = Predictor.from_pretrained(
            model, providers="tensorrt,cuda,cpu", threads=2, provider_settings=settings
        )
    for name in ("TensorrtExecutionProvider", "CUDAExecutionProvider"):
        assert f"falling back. Why: {name} is not available" in caplog.text
    assert gpu.providers == {"encoder": "CPUExecutionProvider", "decoder": "CPUExecutionProvider"}
    assert not (tmp_path / "trt").exists()  # no engine folder for a provider that cannot run
    cpu = Predictor.from_pretrained(model, threads=2)
    emb_gpu, emb_cpu = gpu.encode(_image()), cpu.encode(_image())
    assert emb_gpu.on_device is None  # the CPU path binds nothing
    a = gpu.predict(emb_gpu, points=[[200, 150]], labels=[1])
    b = cpu.predict(emb_cpu, points=[[200, 150]], labels=[1])
    assert np.array_equal(a.masks, b.masks) and np.array_equal(a.scores, b.scores)


@pytest.mark.slow
def test_io_binding_path_gives_the_same_masks(model) -> None:
    predictor = Predictor.from_pretrained(model, threads=2)
    plain = predictor.encode(_image())
    expected = predictor.predict(plain, points=[[200, 150], [120, 100]], labels=[1, 0])
    # Run the CUDA/TensorRT code path with the CPU as the device.
    predictor.graphs.devices = {role: ("cpu", 0) for role in predictor.graphs.devices}
    bound = predictor.encode(_image())
    assert bound.on_device is not None and bound.on_device.device == ("cpu", 0)
    assert set(bound.on_device.values) == set(predictor.spec.context_outputs)
    np.testing.assert_array_equal(bound.image_embeddings, plain.image_embeddings)
    for kept, host in zip(
        (*bound.high_res_features, *bound.context),
        (*plain.high_res_features, *plain.context),
        strict=True,
    ):
        np.testing.assert_array_equal(kept, host)
    got = predictor.predict(bound, points=[[200, 150], [120, 100]], labels=[1, 0])
    np.testing.assert_array_equal(got.masks, expected.masks)
    np.testing.assert_array_equal(got.scores, expected.scores)
    np.testing.assert_array_equal(got.low_res_logits, expected.low_res_logits)
    # an embedding from the plain path works on the bound predictor (host arrays are bound)
    again = predictor.predict(plain, points=[[200, 150], [120, 100]], labels=[1, 0])
    np.testing.assert_array_equal(again.masks, expected.masks)


@pytest.mark.slow
def test_cli_provider_flags(model, tmp_path, capsys) -> None:
    image = tmp_path / "image.png"
    from PIL import Image

    Image.fromarray(_image()).save(image)
    argv = ["segment", str(image), "--model", str(model), "--point", "200,150"]
    gpu = ["--provider", "tensorrt,cpu", "--trt-fp16", "--trt-cache", str(tmp_path / "trt")]
    assert main([*argv, "--out", str(tmp_path / "m.png"), *gpu, "--threads", "2"]) == 0
    assert (tmp_path / "m.png").exists()
    if "TensorrtExecutionProvider" not in session.available_providers():
        assert not (tmp_path / "trt").exists()
    capsys.readouterr()
    code = main([*argv, "--out", str(tmp_path / "n.png"), "--device-id", "-1"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err == "samedge: error: device_id must be >= 0, got -1"
    assert not (tmp_path / "n.png").exists()
