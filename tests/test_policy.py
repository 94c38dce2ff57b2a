"""Settings read from the environment: ``SAMEDGE_THREADS`` and friends, and the INT8
kernels they choose."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from samedge.errors import SamedgeError
from samedge.runtime.policy import default_threads, exact_int8_products, int8_mode


def test_samedge_threads_sets_the_thread_count(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAMEDGE_THREADS", " 3 ")
    assert default_threads() == 3
    monkeypatch.setenv("SAMEDGE_THREADS", "")  # empty: as if unset
    assert default_threads() == len(os.sched_getaffinity(0))
    monkeypatch.delenv("SAMEDGE_THREADS")
    assert default_threads() == len(os.sched_getaffinity(0))


@pytest.mark.parametrize("text", ["abc", "0", "-2", "2.5", "1e3"])
def test_a_bad_samedge_threads_is_one_line_naming_the_variable(
    text: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SAMEDGE_THREADS", text)
    with pytest.raises(SamedgeError) as info:
        default_threads()
    message = str(info.value)
    assert message.startswith("SAMEDGE_THREADS must be a positive number") and "\n" not in message
    assert f"got '{text}'" in message


def test_samedge_ort_int8_chooses_the_integer_kernels(monkeypatch: pytest.MonkeyPatch) -> None:
    """``auto`` (unset): exact products only where the fast kernels overflow."""
    from samedge.runtime import diagnostics

    for saturating in (True, False):
        monkeypatch.setattr(diagnostics, "saturating_int8_cpu", lambda s=saturating: s)
        monkeypatch.delenv("SAMEDGE_ORT_INT8", raising=False)
        assert int8_mode() == "auto" and exact_int8_products() is saturating
        monkeypatch.setenv("SAMEDGE_ORT_INT8", " Exact ")
        assert exact_int8_products()
        monkeypatch.setenv("SAMEDGE_ORT_INT8", "fast")
        assert not exact_int8_products()
    monkeypatch.setenv("SAMEDGE_ORT_INT8", "precise")
    with pytest.raises(SamedgeError) as info:
        exact_int8_products()
    message = str(info.value)
    assert message == (
        "SAMEDGE_ORT_INT8 must be one of auto, exact, fast, got 'precise'; fix it or unset it"
    )


@pytest.mark.parametrize(
    ("machine", "flags", "saturating"),
    [
        ("x86_64", "fpu avx2 fma", True),  # AVX2 only: vpmaddubsw's 16-bit sums
        ("x86_64", "avx2 avx512f avx512bw", True),  # AVX-512 without VNNI
        ("x86_64", "avx2 avx512f avx512_vnni", False),
        ("x86_64", "avx2 avx_vnni", False),
        ("x86_64", "avx2 amx_int8", False),
        ("x86_64", "", False),  # flags unknown: keep the runtime's default
        ("aarch64", "fp asimd", False),
    ],
)
def test_saturating_int8_cpu_reads_the_cpu_flags(
    machine: str, flags: str, saturating: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    from samedge.runtime import diagnostics

    monkeypatch.setattr(diagnostics.platform, "machine", lambda: machine)
    monkeypatch.setattr(diagnostics, "cpu_model_and_flags", lambda: ("cpu", set(flags.split())))
    diagnostics.saturating_int8_cpu.cache_clear()
    try:
        assert diagnostics.saturating_int8_cpu() is saturating
    finally:
        diagnostics.saturating_int8_cpu.cache_clear()


def _int8_product_graph(path: Path, depth: int = 64) -> np.ndarray:
    """A QDQ ``MatMul`` that ONNX Runtime runs as an integer product: activations 255
    (uint8) times weights 127 (int8) over ``depth`` terms. Returns the input."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    constants = {
        "x_scale": np.array(1.0, np.float32),
        "x_zero": np.array(0, np.uint8),
        "w": np.full((depth, 16), 127, np.int8),
        "w_scale": np.array(1.0, np.float32),
        "w_zero": np.array(0, np.int8),
    }
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "x_scale", "x_zero"], ["xq"]),
        helper.make_node("DequantizeLinear", ["xq", "x_scale", "x_zero"], ["xd"]),
        helper.make_node("DequantizeLinear", ["w", "w_scale", "w_zero"], ["wd"]),
        helper.make_node("MatMul", ["xd", "wd"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "int8_product",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [8, depth])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [8, 16])],
        [numpy_helper.from_array(v, k) for k, v in constants.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return np.full((8, depth), 255, np.float32)


def test_int8_products_are_exact_by_default_on_every_cpu(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """255 x 127 pairs sum past 32,767: on an x86 CPU without VNNI ONNX Runtime's fast
    kernel saturates each pair's 16-bit sum (here 1,048,544 instead of 2,072,640), which
    doubled static INT8 L0's embedding error on an AVX2 EPYC. samedge's sessions compute it
    exactly there (and natively exact elsewhere); ``SAMEDGE_ORT_INT8=fast`` opts out."""
    from samedge.runtime import diagnostics
    from samedge.runtime.session import create_session

    path = tmp_path / "int8.onnx"
    x = _int8_product_graph(path)
    exact = 255.0 * 127 * x.shape[1]
    monkeypatch.delenv("SAMEDGE_ORT_INT8", raising=False)
    session = create_session(path, "cpu", threads=1)
    (y,) = session.run(["y"], {"x": x})
    assert np.array_equal(y, np.full((8, 16), exact, np.float32))
    options = session.get_session_options()
    if diagnostics.saturating_int8_cpu():
        assert options.get_session_config_entry("session.x64quantprecision") == "1"
    monkeypatch.setenv("SAMEDGE_ORT_INT8", "fast")
    fast = create_session(path, "cpu", threads=1)
    with pytest.raises(RuntimeError, match="x64quantprecision"):
        fast.get_session_options().get_session_config_entry("session.x64quantprecision")
    if diagnostics.saturating_int8_cpu():  # what the default avoids
        assert fast.run(["y"], {"x": x})[0][0, 0] == 32 * 32767.0


def test_a_graph_the_exact_mode_cannot_load_runs_with_the_fast_kernels_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """ONNX Runtime's exact mode refuses some INT8 graphs (static INT8 made before session
    19, where a quantised weight also fed a product of constants): such a folder still
    loads, with the fast kernels, and the warning names the fix. A graph that fails either
    way is one error."""
    import logging

    import onnxruntime as ort

    from samedge.errors import ArtifactError
    from samedge.runtime import session as sessions

    path = tmp_path / "int8.onnx"
    x = _int8_product_graph(path)
    tried: list[bool] = []

    class RefusesExact:
        def __getattr__(self, name: str) -> object:
            return getattr(ort, name)

        @staticmethod
        def InferenceSession(path: str, sess_options: ort.SessionOptions, **kw: object) -> object:
            try:
                exact = sess_options.get_session_config_entry("session.x64quantprecision")
            except RuntimeError:
                exact = ""
            tried.append(exact == "1")
            if exact == "1" or "broken" in path:
                raise RuntimeError("AddInitializedOrtValue Attempt to replace the existing tensor")
            return ort.InferenceSession(path, sess_options, **kw)

    monkeypatch.setattr(sessions, "_ort", RefusesExact)
    monkeypatch.setenv("SAMEDGE_ORT_INT8", "exact")
    with caplog.at_level(logging.WARNING, logger="samedge"):
        session = sessions.create_session(path, "cpu", threads=1)
    assert tried == [True, False]
    assert "cannot load this INT8 graph with exact 8-bit products" in caplog.text
    assert "quantize the model again with this samedge" in caplog.text
    assert session.run(["y"], {"x": x})[0].shape == (8, 16)
    broken = tmp_path / "broken.onnx"
    _int8_product_graph(broken)
    tried.clear()
    with pytest.raises(ArtifactError, match=r"cannot load ONNX model broken\.onnx"):
        sessions.create_session(broken, "cpu", threads=1)
    assert tried == [True, False]
    monkeypatch.setenv("SAMEDGE_ORT_INT8", "fast")  # not asked for exact: no second try
    tried.clear()
    with pytest.raises(ArtifactError):
        sessions.create_session(broken, "cpu", threads=1)
    assert tried == [False]
