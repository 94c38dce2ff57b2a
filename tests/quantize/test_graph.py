"""The graph rewrites before quantisation keep every output: linear layers as Gemm (and
dynamic axes), shared weights read directly, fused attention written out."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from samedge.quantize.graph import (
    dedicated_weights,
    expand_fused_attention,
    linear_layers_as_gemm,
    weights_through_identity,
)


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


def _one_input_model(
    nodes: list[Any], inits: list[Any], x: tuple[str, list[int]], y: tuple[str, list[int]]
) -> onnx.ModelProto:
    """A float graph of ``nodes`` from one input to one output, ``(name, shape)`` each."""
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info(x[0], TensorProto.FLOAT, x[1])],
        [helper.make_tensor_value_info(y[0], TensorProto.FLOAT, y[1])],
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


def test_shared_weights_behind_identity_are_read_directly() -> None:
    """SAM 2's banded encoder blocks read each linear layer's weight through one
    ``Identity`` per band; the quantiser only takes initializers as weights."""
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((8, 4)).astype(np.float32), "w")
    nodes = [
        helper.make_node("Identity", ["w"], ["w_a"]),
        helper.make_node("Identity", ["w"], ["w_b"]),
        helper.make_node("Identity", ["w"], ["w_out"]),  # also a graph output: kept
        helper.make_node("MatMul", ["x", "w_a"], ["ya"], name="band0"),
        helper.make_node("MatMul", ["x", "w_b"], ["yb"], name="band1"),
        helper.make_node("Relu", ["w_out"], ["r"]),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["t", 8])],
        [
            helper.make_tensor_value_info("ya", TensorProto.FLOAT, ["t", 4]),
            helper.make_tensor_value_info("yb", TensorProto.FLOAT, ["t", 4]),
            helper.make_tensor_value_info("w_out", TensorProto.FLOAT, [8, 4]),
            helper.make_tensor_value_info("r", TensorProto.FLOAT, [8, 4]),
        ],
        [w],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    rewired = onnx.ModelProto()
    rewired.CopyFrom(model)
    assert weights_through_identity(rewired) == 2
    onnx.checker.check_model(rewired)
    products = [n for n in rewired.graph.node if n.op_type == "MatMul"]
    assert [list(n.input) for n in products] == [["x", "w"], ["x", "w"]]
    assert [list(n.output) for n in rewired.graph.node if n.op_type == "Identity"] == [["w_out"]]
    x = rng.standard_normal((5, 8)).astype(np.float32)
    for a, b in zip(_run(model, x), _run(rewired, x), strict=True):
        np.testing.assert_array_equal(a, b)


def _banded_model() -> onnx.ModelProto:
    """One weight read by two products (SAM 2's encoder bands) and by a third, excluded one;
    ``p`` is a product of constants that reads another weight ``v``, which ``x`` also meets."""
    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(rng.standard_normal((8, 4)).astype(np.float32), "w"),
        numpy_helper.from_array(rng.standard_normal((2, 8)).astype(np.float32), "c"),
        numpy_helper.from_array(rng.standard_normal((8, 8)).astype(np.float32), "v"),
    ]
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["ya"], name="band0"),
        helper.make_node("Relu", ["x"], ["x1"]),
        helper.make_node("MatMul", ["x1", "w"], ["yb"], name="band1"),
        helper.make_node("MatMul", ["x", "v"], ["yv"], name="encoding"),
        helper.make_node("MatMul", ["c", "v"], ["p"], name="folded"),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["t", 8])],
        [
            helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)
            for name, shape in (("ya", ["t", 4]), ("yb", ["t", 4]), ("yv", ["t", 8]), ("p", [2, 8]))
        ],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def test_each_quantised_product_gets_its_own_copy_of_a_shared_weight() -> None:
    model = _banded_model()
    dedicated = onnx.ModelProto()
    dedicated.CopyFrom(model)
    bands = [n for n in dedicated.graph.node if n.name.startswith("band")]
    assert dedicated_weights(dedicated, bands) == 1
    onnx.checker.check_model(dedicated)
    assert [n.input[1] for n in bands] == ["w", "w/dedicated_1"]
    values = {t.name: numpy_helper.to_array(t) for t in dedicated.graph.initializer}
    np.testing.assert_array_equal(values["w"], values["w/dedicated_1"])
    x = np.random.default_rng(1).standard_normal((5, 8)).astype(np.float32)
    for a, b in zip(_run(model, x), _run(dedicated, x), strict=True):
        np.testing.assert_array_equal(a, b)


def test_static_int8_graphs_load_in_onnx_runtimes_exact_mode(tmp_path: Path) -> None:
    """ONNX Runtime's exact 8-bit mode (``session.x64quantprecision``, samedge's default on
    CPUs without VNNI) refused graphs where one quantised weight fed several integer
    products, or also a product of constants ("Attempt to replace the existing tensor",
    seen on an AVX2 EPYC with SAM 2's banded encoder and SAM's point encoding): each band
    now has its own int8 weight, and a weight a folded product reads stays fp32."""
    from samedge.quantize.convert import to_int8_static

    src, dst = tmp_path / "fp32.onnx", tmp_path / "int8.onnx"
    onnx.save(_banded_model(), src)
    rng = np.random.default_rng(2)
    feeds = [{"x": rng.standard_normal((6, 8)).astype(np.float32)} for _ in range(3)]
    to_int8_static(src, dst, lambda: iter(feeds), linear_as_gemm=False)
    graph = onnx.load(dst).graph
    producer = {o: n for n in graph.node for o in n.output}
    weights = {t.name for t in graph.initializer}
    read: dict[str, list[str]] = {}
    for node in graph.node:
        if node.op_type == "MatMul" and node.input[1] in producer:
            dq = producer[node.input[1]]
            assert dq.op_type == "DequantizeLinear" and dq.input[0] in weights, node.name
            read.setdefault(dq.input[0], []).append(node.name)
    assert sorted(read.values()) == [["band0"], ["band1"]]  # own weights; v stays fp32
    folded = next(n for n in graph.node if n.name == "folded")
    assert list(folded.input) == ["c", "v"]
    options = ort.SessionOptions()
    options.add_session_config_entry("session.x64quantprecision", "1")
    session = ort.InferenceSession(str(dst), options, providers=["CPUExecutionProvider"])
    x = feeds[0]["x"]
    for a, b in zip(_run(_banded_model(), x), session.run(None, {"x": x}), strict=True):
        np.testing.assert_allclose(a, b, atol=0.05 * float(np.abs(a).max()))


def _attention_model(
    hidden: int | str, heads: int, extra_input: bool = False, scale: float | None = None
) -> onnx.ModelProto:
    """Queries / keys / values ``(B, S, hidden)`` straight from the inputs into ONNX
    Runtime's fused attention (a static hidden size, or a symbolic one)."""
    inputs = [
        helper.make_tensor_value_info(name, TensorProto.FLOAT, ["b", seq, hidden])
        for name, seq in (("q", "s"), ("k", "t"), ("v", "t"))
    ]
    attention_inputs = ["q", "k", "v"]
    inits = []
    if extra_input:  # an attention bias input: not expanded
        attention_inputs.append("bias")
        width = 3 * int(hidden)
        inits.append(numpy_helper.from_array(np.zeros(width, np.float32), "bias"))
    node = helper.make_node(
        "MultiHeadAttention",
        attention_inputs,
        ["o"],
        domain="com.microsoft",
        num_heads=heads,
        **({} if scale is None else {"scale": scale}),
        name="attn",
    )
    graph = helper.make_graph(
        [node],
        "g",
        inputs,
        [helper.make_tensor_value_info("o", TensorProto.FLOAT, ["b", "s", hidden])],
        inits,
    )
    return helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)],
    )


@pytest.mark.parametrize(
    ("hidden", "scale"), [(12, None), ("h", None), ("h", 0.0), ("h", 0.3), (12, 0.0)]
)
def test_fused_attention_written_out_computes_the_same(
    hidden: int | str, scale: float | None
) -> None:
    """ONNX Runtime's ``MultiHeadAttention`` written as standard operators gives its
    output, with the scale a constant (given, or the head size known) or from the queries'
    shape (a ``scale`` of 0 means the default, as in ONNX Runtime)."""
    model = _attention_model(hidden, heads=3, scale=scale)
    expanded = onnx.ModelProto()
    expanded.CopyFrom(model)
    assert expand_fused_attention(expanded) == (1, 0)
    onnx.checker.check_model(expanded)
    assert {o.domain for o in expanded.opset_import} == {""}
    ops = [n.op_type for n in expanded.graph.node]
    assert ops.count("MatMul") == 2 and ops.count("Softmax") == 1
    assert ("Sqrt" in ops) == (hidden == "h" and not scale)
    rng = np.random.default_rng(0)
    feeds = {
        "q": rng.standard_normal((2, 5, 12)).astype(np.float32) * 3,
        "k": rng.standard_normal((2, 7, 12)).astype(np.float32) * 3,
        "v": rng.standard_normal((2, 7, 12)).astype(np.float32),
    }
    providers = ["CPUExecutionProvider"]
    fused = ort.InferenceSession(model.SerializeToString(), providers=providers).run(None, feeds)
    plain = ort.InferenceSession(expanded.SerializeToString(), providers=providers)
    out = plain.run(None, feeds)
    assert out[0].shape == fused[0].shape == (2, 5, 12)
    assert float(np.abs(fused[0]).max()) > 0.1  # not a vacuous comparison
    np.testing.assert_allclose(out[0], fused[0], rtol=1e-5, atol=1e-5)


def test_fused_attention_with_a_bias_input_stays_fused() -> None:
    model = _attention_model(12, heads=3, extra_input=True)
    assert expand_fused_attention(model) == (0, 1)
    assert [n.op_type for n in model.graph.node] == ["MultiHeadAttention"]


@pytest.mark.parametrize("attention", [False, True])
def test_prepared_graph_leaves_constant_products_and_maybe_attention_in_fp32(
    tmp_path: Path, attention: bool
) -> None:
    """What static INT8 leaves in fp32: products of constants alone (folded at load) always,
    products of two activations unless attention is quantised; shared weights read through
    ``Identity`` are weights, and the rewired graph is what gets quantised."""
    from samedge.quantize.convert import _prepare_graph

    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(rng.standard_normal((8, 8)).astype(np.float32), name)
        for name in ("w", "table", "axis")
    ]
    nodes = [
        helper.make_node("Identity", ["w"], ["w_shared"]),
        helper.make_node("MatMul", ["x", "w_shared"], ["h"], name="linear"),
        helper.make_node("MatMul", ["axis", "table"], ["resized"], name="constant"),
        helper.make_node("Add", ["h", "resized"], ["p"]),
        helper.make_node("Transpose", ["p"], ["pt"], perm=[1, 0]),
        helper.make_node("MatMul", ["p", "pt"], ["scores"], name="scores"),
    ]
    path = tmp_path / "g.onnx"
    onnx.save(_one_input_model(nodes, inits, ("x", [8, 8]), ("scores", [8, 8])), path)
    excluded = _prepare_graph(path, linear_as_gemm=False, attention=attention)
    assert excluded == (["constant"] if attention else ["constant", "scores"])
    saved = onnx.load(str(path)).graph
    linear = next(n for n in saved.node if n.name == "linear")
    assert list(linear.input) == ["x", "w"]
    assert "Identity" not in {n.op_type for n in saved.node}


def test_a_gemm_with_a_computed_bias_stays_fp32(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """SAM's and EfficientSAM's prompt encoders hold a Gemm whose bias is a tiled embedding:
    ONNX Runtime cannot make an integer product of it (its quantiser warned "Bias of Gemm
    node ... is not constant" for every SAM decoder) and quantising it only added rounding.
    It stays fp32; the Gemm beside it with a constant bias is quantised."""
    import logging

    from samedge.quantize.convert import _prepare_graph, to_int8_static

    rng = np.random.default_rng(3)
    inits = [
        numpy_helper.from_array(rng.standard_normal((8, 8)).astype(np.float32), "w"),
        numpy_helper.from_array(rng.standard_normal((8, 8)).astype(np.float32), "w2"),
        numpy_helper.from_array(rng.standard_normal((1, 8)).astype(np.float32), "embed"),
        numpy_helper.from_array(rng.standard_normal(8).astype(np.float32), "b2"),
        numpy_helper.from_array(np.array([4, 1], np.int64), "repeats"),
    ]
    nodes = [
        helper.make_node("Tile", ["embed", "repeats"], ["tiled"]),
        helper.make_node("Gemm", ["x", "w", "tiled"], ["h"], name="computed_bias"),
        helper.make_node("Gemm", ["h", "w2", "b2"], ["y"], name="constant_bias"),
    ]
    model = _one_input_model(nodes, inits, ("x", [4, 8]), ("y", [4, 8]))
    path = tmp_path / "g.onnx"
    onnx.save(model, path)
    assert _prepare_graph(path, linear_as_gemm=False) == ["computed_bias"]

    src, dst = tmp_path / "fp32.onnx", tmp_path / "int8.onnx"
    onnx.save(model, src)
    feeds = [{"x": rng.standard_normal((4, 8)).astype(np.float32)} for _ in range(3)]
    with caplog.at_level(logging.WARNING):
        to_int8_static(src, dst, lambda: iter(feeds), ops=["Gemm"], linear_as_gemm=False)
    assert "is not constant" not in caplog.text
    out = onnx.load(dst).graph
    producer = {o: n for n in out.node for o in n.output}
    kinds = {n.name: producer.get(n.input[1]) for n in out.node if n.op_type == "Gemm"}
    assert kinds["computed_bias"] is None  # reads the fp32 weight itself
    assert kinds["constant_bias"] is not None
    assert kinds["constant_bias"].op_type == "DequantizeLinear"
