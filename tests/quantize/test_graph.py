"""The pre-quantisation rewrite of linear layers as Gemm keeps every output and dynamic axis."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from samedge.quantize.graph import linear_layers_as_gemm


def _model() -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(rng.standard_normal((8, 4)).astype(np.float32), "w"),
        numpy_helper.from_array(rng.standard_normal(4).astype(np.float32), "b"),
        numpy_helper.from_array(rng.standard_normal((8, 8)).astype(np.float32), "w2"),
        numpy_helper.from_array(rng.standard_normal(8).astype(np.float32), "b2"),
    ]
    nodes = [
        # a linear layer on a 4-d tensor, bias first in the Add: rewritten
        helper.make_node("MatMul", ["x", "w"], ["xw"], name="lin"),
        helper.make_node("Add", ["b", "xw"], ["y"], name="lin_bias"),
        # its product feeds two nodes: left alone
        helper.make_node("MatMul", ["x", "w2"], ["xw2"], name="shared"),
        helper.make_node("Add", ["xw2", "b2"], ["z"]),
        helper.make_node("Relu", ["xw2"], ["r"]),
        # a product of two activations: left alone
        helper.make_node("Transpose", ["x"], ["xt"], perm=[0, 1, 3, 2]),
        helper.make_node("MatMul", ["x", "xt"], ["s"], name="scores"),
    ]
    dims = ["b", "h", "t", 8]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, dims)],
        [
            helper.make_tensor_value_info(name, TensorProto.FLOAT, [*dims[:3], last])
            for name, last in (("y", 4), ("z", 8), ("r", 8), ("s", "t"))
        ],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _run(model: onnx.ModelProto, x: np.ndarray) -> list[np.ndarray]:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})


def test_linear_layers_become_gemm_with_the_same_outputs() -> None:
    model = _model()
    rewritten = onnx.ModelProto()
    rewritten.CopyFrom(model)
    assert linear_layers_as_gemm(rewritten) == 1
    onnx.checker.check_model(rewritten)
    ops = [n.op_type for n in rewritten.graph.node]
    assert ops.count("Gemm") == 1 and ops.count("MatMul") == 2 and ops.count("Add") == 1
    gemm = next(n for n in rewritten.graph.node if n.op_type == "Gemm")
    assert list(gemm.input[1:]) == ["w", "b"]
    # dynamic leading axes of several sizes, including a batch of 3
    for shape in ((1, 2, 5, 8), (3, 1, 7, 8)):
        x = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
        before, after = _run(model, x), _run(rewritten, x)
        for a, b in zip(before, after, strict=True):
            assert a.shape == b.shape
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
