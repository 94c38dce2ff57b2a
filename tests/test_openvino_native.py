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
from samedge.maskutils import mask_iou
from samedge.runtime import diagnostics, openvino_native
from samedge.runtime import session as sessions
from samedge.runtime.openvino_native import OpenVINOSession
from samedge.runtime.providers import ProviderSettings

from .conftest import CheckpointExport, shared_path

pytest.importorskip("openvino")  # extra [openvino]

# bf16 tracking against the fp32 default: benchmarks/video_options.py measured a mask IoU of
# 0.991-0.993 per frame over 40 frames of car-shadow and object scores within 5e-4 (session
# 12, Xeon with AMX); the 3-frame check below leaves room for other CPUs' bf16 kernels.
BF16_TRACK_IOU = 0.97
BF16_SCORE_ATOL = 0.01


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


@pytest.mark.parametrize(
    "name",
    # SAM's ViT-B by hand (23 s on 2 cores); MobileSAM has SAM's folder layout
    ["sam2.1_hiera_tiny", "mobile_sam", pytest.param("sam_vit_b", marks=pytest.mark.full)],
)
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
    small_checkpoint_export: CheckpointExport, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``VideoPredictor`` with ``providers="openvino"``: the frames' encoder on OpenVINO's
    runtime (sharing the image predictor's compiled-model cache), the tracking graphs on
    ONNX Runtime; three tracked frames agree with the all-ONNX-Runtime tracker. In bf16 the
    memory attention and memory encoder move to OpenVINO too, and the masks stay close."""
    from samedge.video import VideoPredictor
    from samedge.video.io import FrameFolder

    monkeypatch.setenv("SAMEDGE_HOME", str(tmp_path))
    folder = small_checkpoint_export.folder  # the 256-pixel export: the same graphs, cheaper
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

    # bf16: the encoder, memory attention and memory encoder on OpenVINO in bf16 (fp32 where
    # the CPU has no bf16), the decoders fp32 on ONNX Runtime; the masks stay close.
    settings = ProviderSettings(openvino_precision="bf16")
    tracker = VideoPredictor.from_pretrained(
        folder, providers="openvino", threads=2, provider_settings=settings
    )
    state = tracker.init_state(frames.size, num_frames=len(frames))
    tracker.add_prompt(state, 0, frames[0], 1, box=[380.0, 140.0, 700.0, 420.0])
    bf16 = list(tracker.propagate(state, frames))
    heavy = {tracker.providers[r] for r in ("encoder", "memory_attention", "memory_encoder")}
    assert heavy in ({"OpenVINO (CPU, bf16)"}, {"OpenVINO (CPU)"})
    assert tracker.providers["track_decoder"] == "CPUExecutionProvider"
    for a, b in zip(bf16, cpu, strict=True):
        assert mask_iou(a.masks[0], b.masks[0]) > BF16_TRACK_IOU
        np.testing.assert_allclose(a.object_scores, b.object_scores, atol=BF16_SCORE_ATOL)


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


def test_openvino_session_names_ports_as_the_onnx_file_does() -> None:
    """OpenVINO gives some compiled outputs an internal tensor name too (YuNet's ``cls_8`` is
    also ``330``): the session lists and runs them under the file's names, as ONNX Runtime
    would, so the graph check does not mistake a good file for a wrong one."""
    path = shared_path("models", "face", "yunet_n_640_640.onnx")
    session = OpenVINOSession(path, threads=1)
    names = [p.name for p in session.get_outputs()]
    assert names[:6] == ["cls_8", "cls_16", "cls_32", "obj_8", "obj_16", "obj_32"]
    assert [p.name for p in session.get_inputs()] == ["input"]
    image = np.zeros((1, 3, 640, 640), np.float32)
    (cls_8,) = session.run(["cls_8"], {"input": image})
    assert cls_8.shape == (1, 6400, 1)


def test_openvino_session_reports_an_unloadable_graph_in_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "encoder.onnx"
    bad.write_bytes(b"not an onnx model")
    expected = r"^OpenVINO cannot load encoder\.onnx on CPU: "
    with pytest.raises(ArtifactError, match=expected) as info:
        OpenVINOSession(bad)
    message = str(info.value)
    assert "\n" not in message and "Exception from" not in message
    assert message.endswith("or use --provider cpu)")


def test_a_reduced_precision_is_applied_reported_and_cached_apart(
    export_test_model: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """``openvino_precision="bf16"``: the encoder computes in bf16 where the CPU can (its
    outputs move away from fp32's, within bf16's error) and says so in its provider name;
    a CPU without bf16 runs fp32 and logs that it does. Each precision has its own cache."""
    monkeypatch.setenv("SAMEDGE_HOME", str(tmp_path))
    encoder = export_test_model("sam2.1_hiera_tiny") / "encoder.onnx"
    image = np.random.default_rng(0).standard_normal((1, 3, 1024, 1024)).astype(np.float32)
    outputs, sessions_by = {}, {}
    for precision in (None, "bf16"):
        settings = ProviderSettings(openvino_precision=precision)
        with caplog.at_level(logging.WARNING):
            session = OpenVINOSession.for_settings(encoder, settings, 2, "encoder-test")
        outputs[precision] = session.run(None, {"image": image})[0]
        sessions_by[precision] = session
    assert sessions_by[None].precision == "f32"
    assert sessions_by[None].get_providers() == ["OpenVINO (CPU)"]
    assert sorted(p.name for p in (tmp_path / "engines" / "openvino").iterdir()) == [
        "encoder-test",
        "encoder-test-bf16",
    ]
    difference = float(np.abs(outputs["bf16"] - outputs[None]).max())
    scale = float(np.abs(outputs[None]).max())
    reduced = sessions_by["bf16"]
    if reduced.precision == "bf16":
        assert reduced.get_providers() == ["OpenVINO (CPU, bf16)"]
        assert 1e-4 * scale < difference < 0.2 * scale
    else:  # this CPU has no bf16: fp32, logged
        assert difference < 1e-4 * scale
        assert "bf16 asked for, but OpenVINO's CPU runs it in f32" in caplog.text


def test_openvino_precision_is_checked() -> None:
    with pytest.raises(ValueError, match="openvino_precision must be f32, bf16 or f16, got int4"):
        ProviderSettings(openvino_precision="int4")


def _int8_for_openvino(folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``samedge quantize FOLDER --precision int8-static --component encoder --provider
    openvino`` on one calibration image and one fidelity mask; returns the new folder."""
    from samedge.cli.main import main

    monkeypatch.setenv("SAMEDGE_HOME", str(tmp_path / "home"))
    out = tmp_path / "int8"
    argv = [
        "quantize", str(folder), "--out", str(out), "--precision", "int8-static",
        "--component", "encoder", "--fidelity", str(shared_path("data", "interactive", "GrabCut")),
        "--fidelity-limit", "1", "--calibration", str(shared_path("data", "images")),
        "--num-images", "1", "--force", "--threads", "2", "--no-progress", "--provider", "openvino",
    ]  # fmt: skip
    assert main(argv) == 0
    return out


def test_int8_static_for_openvino_takes_the_models_openvino_operators(
    export_test_model: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """``samedge quantize --provider openvino`` quantises the operators the model's spec
    names for OpenVINO (MobileSAM: its convolutions too, where ONNX Runtime's default is its
    linear layers only: tests/test_families.py) and measures fidelity on OpenVINO."""
    import json

    import onnx

    out = _int8_for_openvino(export_test_model("mobile_sam"), tmp_path, monkeypatch)
    record = json.loads((out / "samedge.json").read_text())["extra"]["quantization"]
    assert record["encoder_runtime"] == "openvino"
    assert record["int8_ops"] == {"encoder": ["Conv", "MatMul", "Gemm"]}
    assert record["int8_attention"] == {"encoder": False}  # windows of 49 tokens: not worth it
    graph = onnx.load(str(out / "encoder.onnx"), load_external_data=False).graph
    # A quantised product reads a dequantised weight (an initializer's DequantizeLinear).
    weights = {t.name for t in graph.initializer}
    dequantised = {
        n.output[0] for n in graph.node if n.op_type == "DequantizeLinear" and n.input[0] in weights
    }
    integer = {n.op_type for n in graph.node if len(n.input) > 1 and n.input[1] in dequantised}
    assert integer == {"Conv", "Gemm"}
    assert Predictor.from_pretrained(out, providers="openvino").providers["encoder"] == (
        "OpenVINO (CPU)"
    )
    # Where OpenVINO's 8-bit products saturate (x86 without VNNI or AMX), opening an INT8
    # encoder on it says so, and names ONNX Runtime, which computes them exactly there.
    for saturating in (True, False):
        monkeypatch.setattr(diagnostics, "saturating_int8_cpu", lambda s=saturating: s)
        with caplog.at_level(logging.WARNING, logger="samedge"):
            caplog.clear()
            Predictor.from_pretrained(out, providers="openvino")
        said = "OpenVINO's 8-bit products saturate" in caplog.text
        assert said is saturating and ("without --provider openvino" in caplog.text) is said


def test_int8_static_for_openvino_quantises_efficientsams_attention(
    export_test_model: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """EfficientSAM's spec has static INT8 on OpenVINO quantise its global attention too:
    the fused attention nodes are written out, both products of each read symmetric int8
    operands, and OpenVINO runs every attention as one integer kernel where the CPU has
    integer matrix instructions (docs/precision.md: 2.4-2.65x the fp32 encoder)."""
    import json

    import onnx
    import openvino as ov

    # The graph is checked on every CPU; OpenVINO's integer kernel (below) only where the CPU
    # has it, which is also where samedge quantises attention by default.
    has_kernel = diagnostics.integer_attention_cpu()
    monkeypatch.setattr(diagnostics, "integer_attention_cpu", lambda features=None: True)
    out = _int8_for_openvino(export_test_model("efficientsam_ti"), tmp_path, monkeypatch)
    extra = json.loads((out / "samedge.json").read_text())["extra"]
    record = extra["quantization"]
    assert record["int8_attention"] == {"encoder": True}
    # OpenVINO has no exact mode: its fidelity is recorded as measured with saturating
    # products on an x86 CPU without VNNI or AMX.
    products = "saturating" if diagnostics.saturating_int8_cpu() else "native"
    assert extra["fidelity"]["measured_on"]["int8_products"] == products
    assert extra["fidelity"]["measured_on"]["encoder"] == "OpenVINO (CPU)"
    assert record["int8_ops"] == {"encoder": ["MatMul", "Gemm"]}
    graph = onnx.load(str(out / "encoder.onnx"), load_external_data=False).graph
    producer = {o: n for n in graph.node for o in n.output}
    assert not [n for n in graph.node if n.op_type == "MultiHeadAttention"]
    values = {t.name: onnx.numpy_helper.to_array(t) for t in graph.initializer}

    def dequantised(name: str) -> bool:
        node = producer.get(name)
        return node is not None and node.op_type == "DequantizeLinear"

    products = [n for n in graph.node if n.op_type == "MatMul"]
    attention = [n for n in products if n.name.endswith(("/expanded/scores", "/expanded/context"))]
    assert len(attention) == 24  # scores and weighted values of 12 blocks
    # The position table's two products (constants, folded at load) stay fp32.
    table = [n for n in products if n.name.startswith("/image_encoder/MatMul")]
    assert len(table) == 2 and not any(dequantised(i) for n in table for i in n.input)
    for node in attention:
        assert all(dequantised(i) for i in node.input), node.name
        for name in node.input:  # symmetric int8: zero point 0
            zero_point = values[producer[name].input[2]]
            assert zero_point.dtype == np.int8 and not zero_point.any()
    if has_kernel:
        config = {"INFERENCE_NUM_THREADS": 2, "INFERENCE_PRECISION_HINT": "f32"}
        compiled = ov.Core().compile_model(str(out / "encoder.onnx"), "CPU", config)
        kernels = [
            (
                op.get_rt_info()["layerType"].astype(str),
                op.get_rt_info()["runtimePrecision"].astype(str),
            )
            for op in compiled.get_runtime_model().get_ordered_ops()
        ]
        assert kernels.count(("Subgraph", "i8")) == 12


def test_compiling_leaves_the_threads_signal_stack_as_it_was() -> None:
    """OpenVINO's CPU plugin installs an alternate signal stack on the compiling thread
    that does not stay usable: Python's handlers run on it, so Ctrl-C after samedge gaze
    was a segmentation fault. compile_model restores the thread's stack."""
    import ctypes

    def current() -> tuple[int | None, int, int]:
        stack = openvino_native._SignalStack()
        assert ctypes.CDLL(None).sigaltstack(None, ctypes.byref(stack)) == 0
        return stack.ss_sp, stack.ss_flags, stack.ss_size

    before = current()
    openvino_native.compile_model(shared_path("models", "detection", "yolox_nano.onnx"), "CPU", 1)
    assert current() == before
