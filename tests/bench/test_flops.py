"""FLOP counting on ONNX graphs: exact counts on a graph whose cost is known by hand."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="FLOP counting needs the onnx package")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from samedge.bench.flops import count_flops, gemm_peak  # noqa: E402


def _model(path: Path) -> Path:
    """x (1,3,32,32) -> Conv 8x3x3x3 pad 1 stride 2 -> ConvTranspose 8->4 k2 s2 ->
    Reshape (N, 4, 1024) -> MatMul (1024, 16) -> Einsum with itself -> Gemm on a flat
    (N, 16) slice; plus a shape-dependent If that picks a branch (both are Identity)."""
    rng = np.random.default_rng(0)
    init = [
        numpy_helper.from_array(rng.standard_normal((8, 3, 3, 3)).astype(np.float32), "w_conv"),
        numpy_helper.from_array(rng.standard_normal((8, 4, 2, 2)).astype(np.float32), "w_deconv"),
        numpy_helper.from_array(np.array([-1, 4, 1024], dtype=np.int64), "shape"),
        numpy_helper.from_array(rng.standard_normal((1024, 16)).astype(np.float32), "w_mm"),
        numpy_helper.from_array(rng.standard_normal((16, 5)).astype(np.float32), "w_gemm"),
        numpy_helper.from_array(np.array([0, 0], dtype=np.int64), "starts"),
        numpy_helper.from_array(np.array([1, 16], dtype=np.int64), "ends"),
        numpy_helper.from_array(np.array([1, 2], dtype=np.int64), "axes"),
        numpy_helper.from_array(np.array([-1, 16], dtype=np.int64), "flat"),
        numpy_helper.from_array(np.array(3, dtype=np.int64), "three"),
    ]
    then_g = helper.make_graph(
        [helper.make_node("Identity", ["g"], ["t_out"])],
        "then",
        [],
        [helper.make_tensor_value_info("t_out", TensorProto.FLOAT, None)],
    )
    else_g = helper.make_graph(
        [helper.make_node("Identity", ["e"], ["e_out"])],
        "else",
        [],
        [helper.make_tensor_value_info("e_out", TensorProto.FLOAT, None)],
    )
    nodes = [
        helper.make_node("Conv", ["x", "w_conv"], ["c"], pads=[1, 1, 1, 1], strides=[2, 2]),
        helper.make_node("ConvTranspose", ["c", "w_deconv"], ["d"], strides=[2, 2]),
        helper.make_node("Reshape", ["d", "shape"], ["r"]),
        helper.make_node("MatMul", ["r", "w_mm"], ["m"]),
        helper.make_node("Einsum", ["m", "m"], ["e"], equation="bik,bjk->bij"),
        helper.make_node("Slice", ["m", "starts", "ends", "axes"], ["s"]),
        helper.make_node("Reshape", ["s", "flat"], ["f"]),
        helper.make_node("Gemm", ["f", "w_gemm"], ["g"]),
        helper.make_node("Shape", ["x"], ["xs"]),
        helper.make_node("Size", ["xs"], ["rank"]),
        helper.make_node("Greater", ["rank", "three"], ["cond"]),
        helper.make_node("If", ["cond"], ["out"], then_branch=then_g, else_branch=else_g),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, 32, 32])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, None)],
        init,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, path)
    return path


def test_counts_multiply_adds_of_every_heavy_operator(tmp_path: Path) -> None:
    path = _model(tmp_path / "m.onnx")
    macs = (
        1 * 8 * 16 * 16 * (3 * 3 * 3)  # Conv: outputs x (C_in x kernel)
        + 1 * 8 * 16 * 16 * (4 * 2 * 2)  # ConvTranspose: inputs x (C_out x kernel)
        + 1 * 4 * 16 * 1024  # MatMul
        + 1 * 4 * 4 * 16  # Einsum: product of all index sizes
        + 1 * 16 * 5  # Gemm
    )
    x = np.zeros((1, 3, 32, 32), np.float32)
    assert count_flops(path, {"x": x}) == 2 * macs
    # the batch size is the dynamic dimension: batch 2 doubles every product
    x2 = np.zeros((2, 3, 32, 32), np.float32)
    assert count_flops(path, {"x": x2}) == 2 * 2 * macs


def test_gemm_peak_is_a_plausible_rate() -> None:
    peak = gemm_peak(1, size=256, tries=2)
    assert 1e8 < peak < 1e13


def test_fused_attention_counts_its_two_products(tmp_path: Path) -> None:
    """ONNX Runtime's MultiHeadAttention (SAM 2 encoders): Q K^T and P V, per head."""
    batch, s_q, s_kv, dim = 2, 10, 24, 32
    graph = helper.make_graph(
        [
            helper.make_node(
                "MultiHeadAttention", ["q", "k", "v"], ["o"], domain="com.microsoft", num_heads=4
            )
        ],
        "mha",
        [
            helper.make_tensor_value_info("q", TensorProto.FLOAT, [batch, s_q, dim]),
            helper.make_tensor_value_info("k", TensorProto.FLOAT, [batch, s_kv, dim]),
            helper.make_tensor_value_info("v", TensorProto.FLOAT, [batch, s_kv, dim]),
        ],
        [helper.make_tensor_value_info("o", TensorProto.FLOAT, [batch, s_q, dim])],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)]
    )
    path = tmp_path / "mha.onnx"
    onnx.save(model, path)
    feeds = {
        "q": np.zeros((batch, s_q, dim), np.float32),
        "k": np.zeros((batch, s_kv, dim), np.float32),
        "v": np.zeros((batch, s_kv, dim), np.float32),
    }
    # Per head h (4 heads of 8): 2 x (s_q x s_kv x 8) for the scores and again for P V.
    assert count_flops(path, feeds) == 2 * 2 * batch * s_q * s_kv * dim


def test_fast_gelu_is_element_wise_and_its_values_flow_on(tmp_path: Path) -> None:
    """ONNX Runtime's FastGelu (EfficientViT encoders) adds no FLOPs; a small input's values
    are computed (they may feed shapes)."""
    graph = helper.make_graph(
        [
            helper.make_node("FastGelu", ["x"], ["g"], domain="com.microsoft"),
            helper.make_node("MatMul", ["g", "w"], ["o"]),
        ],
        "gelu",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 6]),
            helper.make_tensor_value_info("w", TensorProto.FLOAT, [6, 3]),
        ],
        [helper.make_tensor_value_info("o", TensorProto.FLOAT, [4, 3])],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)]
    )
    path = tmp_path / "gelu.onnx"
    onnx.save(model, path)
    feeds = {"x": np.ones((4, 6), np.float32), "w": np.ones((6, 3), np.float32)}
    assert count_flops(path, feeds) == 2 * 4 * 6 * 3


@pytest.mark.parametrize("approximate", ["tanh", "none"])
def test_onnx_gelu_is_element_wise(tmp_path: Path, approximate: str) -> None:
    """Opset 20's Gelu (EfficientViT encoders) is evaluated, not rejected, and adds no FLOPs."""
    graph = helper.make_graph(
        [
            helper.make_node("Gelu", ["x"], ["g"], approximate=approximate),
            helper.make_node("MatMul", ["g", "w"], ["o"]),
        ],
        "gelu",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 6]),
            helper.make_tensor_value_info("w", TensorProto.FLOAT, [6, 3]),
        ],
        [helper.make_tensor_value_info("o", TensorProto.FLOAT, [4, 3])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)])
    path = tmp_path / "gelu.onnx"
    onnx.save(model, path)
    feeds = {"x": np.ones((4, 6), np.float32), "w": np.ones((6, 3), np.float32)}
    assert count_flops(path, feeds) == 2 * 4 * 6 * 3
