"""Graph rewrites applied after export keep every output: the single-prompt branch of the
decoders (all batch sizes) and merged pointwise convolutions."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

pytest.importorskip("torch")  # samedge.export is the [export] extra

from samedge.export.graph import fold_pointwise_convs, single_prompt_addends


def _model() -> onnx.ModelProto:
    """``Gemm(x (B*4, 3), W, Reshape(Expand(base (1, 4, 5), (B, 4, 5)), (B*4, 5)))``."""
    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(rng.standard_normal((5, 3)).astype(np.float32), "w"),
        numpy_helper.from_array(np.array([1, 1], np.int64), "ones"),
        numpy_helper.from_array(np.array([-1, 5], np.int64), "rows"),
        numpy_helper.from_array(np.array([-1, 3], np.int64), "rows_in"),
    ]
    nodes = [
        helper.make_node("Shape", ["x"], ["b"], start=0, end=1),
        helper.make_node("Concat", ["b", "ones"], ["shape"], axis=0),
        helper.make_node("Shape", ["base"], ["base_shape"], start=1),
        helper.make_node("Concat", ["b", "base_shape"], ["full"], axis=0),
        helper.make_node("Expand", ["base", "full"], ["repeated"]),
        helper.make_node("Reshape", ["repeated", "rows"], ["addend"]),
        helper.make_node("Reshape", ["x", "rows_in"], ["x2"]),
        helper.make_node("Gemm", ["x2", "w", "addend"], ["y"], transB=1, alpha=0.5),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, ["B", 4, 3]),
            helper.make_tensor_value_info("base", TensorProto.FLOAT, [1, 4, 5]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["rows", 5])],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _run(model: onnx.ModelProto, **feeds: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)[0]


def test_single_prompt_branch_matches_the_repeated_addend() -> None:
    model = _model()
    rewritten = onnx.ModelProto()
    rewritten.CopyFrom(model)
    assert single_prompt_addends(rewritten, "x") == 1
    onnx.checker.check_model(rewritten)
    ops = [n.op_type for n in rewritten.graph.node]
    assert "If" in ops and "Expand" not in ops and "Gemm" not in ops
    rng = np.random.default_rng(1)
    base = rng.standard_normal((1, 4, 5)).astype(np.float32)
    for batch in (1, 3):
        x = rng.standard_normal((batch, 4, 3)).astype(np.float32)
        expected = _run(model, x=x, base=base)
        assert expected.shape == (4 * batch, 5)
        np.testing.assert_allclose(_run(rewritten, x=x, base=base), expected, rtol=1e-6, atol=1e-6)
    # a second pass finds nothing left to rewrite
    assert single_prompt_addends(rewritten, "x") == 0


def _conv_chain(second_kernel: int = 1) -> onnx.ModelProto:
    """``Conv1x1(5 -> 7) -> Conv(7 -> 3, kernel second_kernel)`` on ``(1, 5, 6, 6)``."""
    rng = np.random.default_rng(2)
    k = second_kernel
    inits = [
        numpy_helper.from_array(rng.standard_normal((7, 5, 1, 1)).astype(np.float32), "w1"),
        numpy_helper.from_array(rng.standard_normal(7).astype(np.float32), "b1"),
        numpy_helper.from_array(rng.standard_normal((3, 7, k, k)).astype(np.float32), "w2"),
        numpy_helper.from_array(rng.standard_normal(3).astype(np.float32), "b2"),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["mid"], kernel_shape=[1, 1]),
        helper.make_node("Conv", ["mid", "w2", "b2"], ["y"], kernel_shape=[k, k]),
    ]
    graph = helper.make_graph(
        nodes,
        "convs",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 5, 6, 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, None, None])],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_two_pointwise_convolutions_fold_into_one() -> None:
    model = _conv_chain()
    folded = onnx.ModelProto()
    folded.CopyFrom(model)
    assert fold_pointwise_convs(folded) == 1
    onnx.checker.check_model(folded)
    assert [n.op_type for n in folded.graph.node] == ["Conv"]
    # the two original weights are gone, only the merged (3, 5, 1, 1) pair is left
    shapes = sorted(tuple(t.dims) for t in folded.graph.initializer)
    assert shapes == [(3,), (3, 5, 1, 1)]
    x = np.random.default_rng(3).standard_normal((1, 5, 6, 6)).astype(np.float32)
    np.testing.assert_allclose(_run(folded, x=x), _run(model, x=x), rtol=1e-5, atol=1e-5)


def test_a_spatial_convolution_is_not_folded() -> None:
    model = _conv_chain(second_kernel=3)
    assert fold_pointwise_convs(model) == 0
    assert [n.op_type for n in model.graph.node] == ["Conv", "Conv"]
