"""Graph rewrites applied to an fp32 graph before onnxruntime quantises it.

The exporters write a ``Linear`` layer on an N-d tensor as ``MatMul`` + ``Add(bias)``.
ONNX Runtime fuses that pair into one ``Gemm`` at load time for fp32, but its quantiser
sees the two nodes: static QDQ INT8 then runs an integer ``MatMul`` whose output is
quantised, dequantised again and only then gets its bias in a separate fp32 ``Add``, three
extra passes over every activation. Written as ``Gemm`` on a 2-D view before quantisation,
the product becomes one ``QGemm`` with the bias inside and (with its output left in float)
no requantisation; see docs/precision.md for the measured effect.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def linear_layers_as_gemm(model: Any) -> int:
    """Rewrite ``Add(MatMul(x, W), b)`` as ``Reshape(Gemm(Reshape(x, (-1, K)), W, b))``.

    ``W`` must be a 2-D initializer ``(K, N)`` and ``b`` a 1-D initializer ``(N,)``; the
    ``MatMul`` output must feed only that ``Add``. The output keeps the ``Add``'s name and
    the shape ``x.shape[:-1] + (N,)`` (computed in the graph, so dynamic axes stay dynamic).
    Arithmetically the same products and sums. Modifies ``model`` (an ``onnx.ModelProto``)
    in place; returns how many layers were rewritten.
    """
    from onnx import helper, numpy_helper

    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    users: dict[str, list[Any]] = {}
    for node in graph.node:
        for name in node.input:
            users.setdefault(name, []).append(node)

    def const(name: str, values: list[int]) -> str:
        if name not in inits:
            tensor = numpy_helper.from_array(np.array(values, np.int64), name)
            graph.initializer.append(tensor)
            inits[name] = tensor
        return name

    rewritten = 0
    for node in list(graph.node):
        if node.op_type != "MatMul" or node.input[1] not in inits:
            continue
        weight = inits[node.input[1]]
        consumers = users.get(node.output[0], [])
        if len(weight.dims) != 2 or len(consumers) != 1 or consumers[0].op_type != "Add":
            continue
        add = consumers[0]
        others = [name for name in add.input if name != node.output[0]]
        if len(others) != 1 or others[0] not in inits:
            continue
        bias = others[0]
        k, n = weight.dims
        if list(inits[bias].dims) != [n]:
            continue
        stem = f"{node.name or node.output[0]}/as_gemm"
        x = node.input[0]
        new = [
            helper.make_node("Shape", [x], [f"{stem}/x_shape"]),
            helper.make_node(
                "Slice",
                [f"{stem}/x_shape", const("as_gemm/zero", [0]), const("as_gemm/minus_one", [-1])],
                [f"{stem}/lead"],
            ),
            helper.make_node(
                "Concat", [f"{stem}/lead", const(f"as_gemm/n{n}", [n])], [f"{stem}/y_shape"], axis=0
            ),
            helper.make_node("Reshape", [x, const(f"as_gemm/k{k}", [-1, k])], [f"{stem}/x2d"]),
            helper.make_node(
                "Gemm", [f"{stem}/x2d", node.input[1], bias], [f"{stem}/y2d"], name=stem
            ),
            helper.make_node("Reshape", [f"{stem}/y2d", f"{stem}/y_shape"], [add.output[0]]),
        ]
        at = list(graph.node).index(node)
        for offset, item in enumerate(new):
            graph.node.insert(at + offset, item)
        graph.node.remove(node)
        graph.node.remove(add)
        rewritten += 1
    return rewritten


def quantized_products(path: Any) -> int:
    """How many ``Conv`` / ``MatMul`` / ``Gemm`` nodes of the QDQ graph at ``path`` take
    both their inputs from a ``DequantizeLinear`` (run as integer products); 0 means
    static INT8 changed nothing (e.g. linear layers written as 1 x 1 convolutions while
    only ``MatMul``/``Gemm`` were to be quantised)."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    producer = {out: node.op_type for node in graph.node for out in node.output}
    return sum(
        node.op_type in ("Conv", "MatMul", "Gemm")
        and all(producer.get(name) == "DequantizeLinear" for name in node.input[:2])
        for node in graph.node
    )
