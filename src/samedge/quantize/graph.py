"""Graph rewrites applied to an fp32 graph before onnxruntime quantises it.

The exporters write a ``Linear`` layer on an N-d tensor as ``MatMul`` + ``Add(bias)``.
ONNX Runtime fuses that pair into one ``Gemm`` at load time for fp32, but its quantiser
sees the two nodes: static QDQ INT8 then runs an integer ``MatMul`` whose output is
quantised, dequantised again and only then gets its bias in a separate fp32 ``Add``, three
extra passes over every activation. Written as ``Gemm`` on a 2-D view before quantisation,
the product becomes one ``QGemm`` with the bias inside and (with its output left in float)
no requantisation; see docs/precision.md for the measured effect.

Where a static INT8 graph is to quantise attention itself (OpenVINO, see
:func:`samedge.quantize.convert.to_int8_static`), ONNX Runtime's fused
``com.microsoft.MultiHeadAttention`` is first written out as the standard operators it
computes (:func:`expand_fused_attention`): the quantiser can then put its quantise /
dequantise pairs on the two products' inputs, which OpenVINO fuses back into one integer
attention kernel.
"""

from __future__ import annotations

from collections.abc import Iterable
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


def weights_through_identity(model: Any) -> int:
    """Let ``MatMul`` / ``Gemm`` / ``Conv`` nodes read a weight directly where they read it
    through ``Identity(initializer)``; returns how many inputs were rewired.

    The TorchScript exporter writes a weight used more than once (SAM 2's encoder blocks
    traced in bands: one linear layer per band) as one initializer behind an ``Identity``
    per use. The quantiser takes only initializers as weights, so those layers were left in
    fp32 as products of two activations. ``Identity`` nodes left without a reader (in this
    graph, its outputs or any subgraph) are removed. Modifies ``model`` in place.
    """
    graph = model.graph
    inits = {t.name for t in graph.initializer}
    source = {
        n.output[0]: n.input[0]
        for n in graph.node
        if n.op_type == "Identity" and n.input and n.input[0] in inits
    }
    rewired = 0
    for node in graph.node:
        if node.op_type in ("MatMul", "Gemm", "Conv"):
            for i, name in enumerate(node.input):
                if name in source:
                    node.input[i] = source[name]
                    rewired += 1
    if rewired:
        read = {o.name for o in graph.output} | _subgraph_reads(graph)
        read |= {name for n in graph.node for name in n.input}
        for node in [n for n in graph.node if n.op_type == "Identity"]:
            if node.output[0] in source and node.output[0] not in read:
                graph.node.remove(node)
    return rewired


def dedicated_weights(model: Any, products: Iterable[Any]) -> int:
    """Give each of ``products`` (the nodes about to be quantised) its own copy of a weight
    initializer (input 0 or 1) that an earlier one of them also reads; returns the copies
    made. Modifies ``model`` in place.

    ONNX Runtime's exact 8-bit mode (``session.x64quantprecision``, which samedge uses on
    CPUs without VNNI: :func:`samedge.runtime.policy.int8_mode`) cannot load a graph where
    one quantised weight feeds several integer products ("Attempt to replace the existing
    tensor", onnxruntime 1.32): SAM 2's encoder blocks traced in bands read each linear
    layer's weight once per band (:func:`weights_through_identity`). Copies cost file size:
    5.7 MB of int8 weights in SAM 2.1 tiny's 31 MB static INT8 encoder.
    """
    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    seen: set[str] = set()
    copies = 0
    for node in products:
        for i, name in enumerate(node.input[:2]):
            if name not in inits:
                continue
            if name not in seen:
                seen.add(name)
                continue
            copies += 1
            own = f"{name}/dedicated_{copies}"
            while own in inits:
                own += "_"
            tensor = _tensor_copy(inits[name], own)
            graph.initializer.append(tensor)
            inits[own] = tensor
            node.input[i] = own
    return copies


def _tensor_copy(tensor: Any, name: str) -> Any:
    """A copy of the ``TensorProto`` ``tensor`` under another name (external data: the same
    bytes, read twice)."""
    copy = type(tensor)()
    copy.CopyFrom(tensor)
    copy.name = name
    return copy


def _subgraph_reads(graph: Any) -> set[str]:
    """Names read by nodes of ``graph``'s subgraphs (``If`` / ``Loop`` bodies), at any depth."""
    names: set[str] = set()
    for node in graph.node:
        for attr in node.attribute:
            for sub in [*([attr.g] if attr.HasField("g") else []), *attr.graphs]:
                names |= {name for n in sub.node for name in n.input} | _subgraph_reads(sub)
    return names


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


#: The fused attention operator samedge's encoders use (see :mod:`samedge.export.attention`).
FUSED_ATTENTION = ("com.microsoft", "MultiHeadAttention")


def expand_fused_attention(model: Any) -> tuple[int, int]:
    """Write each ``com.microsoft.MultiHeadAttention`` node as standard ONNX operators.

    The fused node takes queries ``(B, S, H*d)`` and keys / values ``(B, S', H*d)`` /
    ``(B, S', H*dv)`` (``num_heads`` = H, optional ``scale``, default ``1/sqrt(d)``) and
    returns ``(B, S, H*dv)``. Written out: per head, ``Softmax(scale * Q K^T) V``, with the
    heads split by ``Reshape`` + ``Transpose`` and merged back the same way: the same
    function, so the output keeps the node's name and shape. Nodes with more inputs (bias,
    masks, past state) or inputs that are not 3-D are left fused. The scale is a constant
    where shape inference knows the head size, else computed from the queries' shape.
    Modifies ``model`` (an ``onnx.ModelProto``) in place; returns ``(expanded, left)``.
    """
    from onnx import helper, numpy_helper, shape_inference

    graph = model.graph
    fused = [n for n in graph.node if (n.domain, n.op_type) == FUSED_ATTENTION]
    if not fused:
        return 0, 0
    inferred = shape_inference.infer_shapes(model, strict_mode=False).graph
    dims: dict[str, list[int]] = {}
    for info in (*inferred.value_info, *inferred.input, *inferred.output):
        if info.type.tensor_type.HasField("shape"):
            dims[info.name] = [d.dim_value for d in info.type.tensor_type.shape.dim]

    def const(name: str, value: np.ndarray) -> str:
        graph.initializer.append(numpy_helper.from_array(value, name))
        return name

    expanded = left = 0
    for node in fused:
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        heads = int(attrs.get("num_heads", 0))
        q, k, v = [*node.input, "", "", ""][:3]
        extra = [name for name in node.input[3:] if name]
        ranks = [len(dims.get(name, ())) for name in (q, k, v)]
        if extra or not (q and k and v) or heads <= 0 or ranks != [3, 3, 3]:
            left += 1
            continue
        stem = f"{node.name or node.output[0]}/expanded"
        split = const(f"{stem}/split_shape", np.array([0, 0, heads, -1], np.int64))
        merge = const(f"{stem}/merge_shape", np.array([0, 0, -1], np.int64))
        hidden = dims[q][2]  # 0 where unknown
        # ``scale`` 0 or absent means 1 / sqrt(head size), as in ONNX Runtime.
        scale = float(attrs.get("scale", 0.0))
        if not scale and hidden:
            scale = 1.0 / float(np.sqrt(hidden // heads))
        scale_nodes = []
        if scale:
            factor = const(f"{stem}/scale", np.array(scale, np.float32))
        else:  # the head size is known at run time only: 1 / sqrt(the queries' last axis)
            factor = f"{stem}/scale"
            last = const(f"{stem}/last", np.array([-1], np.int64))
            scale_nodes = [
                helper.make_node("Shape", [f"{stem}/q"], [f"{stem}/q_shape"]),
                helper.make_node("Gather", [f"{stem}/q_shape", last], [f"{stem}/head"], axis=0),
                helper.make_node("Cast", [f"{stem}/head"], [f"{stem}/head_f"], to=1),
                helper.make_node("Sqrt", [f"{stem}/head_f"], [f"{stem}/root"]),
                helper.make_node("Reciprocal", [f"{stem}/root"], [factor]),
            ]
        new = [
            helper.make_node("Reshape", [q, split], [f"{stem}/q_heads"]),
            helper.make_node("Transpose", [f"{stem}/q_heads"], [f"{stem}/q"], perm=[0, 2, 1, 3]),
            *scale_nodes,
            helper.make_node("Mul", [f"{stem}/q", factor], [f"{stem}/q_scaled"]),
            helper.make_node("Reshape", [k, split], [f"{stem}/k_heads"]),
            helper.make_node("Transpose", [f"{stem}/k_heads"], [f"{stem}/k_t"], perm=[0, 2, 3, 1]),
            helper.make_node("Reshape", [v, split], [f"{stem}/v_heads"]),
            helper.make_node("Transpose", [f"{stem}/v_heads"], [f"{stem}/v"], perm=[0, 2, 1, 3]),
            helper.make_node(
                "MatMul",
                [f"{stem}/q_scaled", f"{stem}/k_t"],
                [f"{stem}/scores"],
                name=f"{stem}/scores",
            ),
            helper.make_node("Softmax", [f"{stem}/scores"], [f"{stem}/probs"], axis=-1),
            helper.make_node(
                "MatMul",
                [f"{stem}/probs", f"{stem}/v"],
                [f"{stem}/context"],
                name=f"{stem}/context",
            ),
            helper.make_node(
                "Transpose", [f"{stem}/context"], [f"{stem}/context_t"], perm=[0, 2, 1, 3]
            ),
            helper.make_node("Reshape", [f"{stem}/context_t", merge], [node.output[0]]),
        ]
        at = list(graph.node).index(node)
        for offset, item in enumerate(new):
            graph.node.insert(at + offset, item)
        graph.node.remove(node)
        expanded += 1
    if expanded and not any(n.domain == FUSED_ATTENTION[0] for n in graph.node):
        kept = [o for o in model.opset_import if o.domain != FUSED_ATTENTION[0]]
        del model.opset_import[:]
        model.opset_import.extend(kept)
    return expanded, left
