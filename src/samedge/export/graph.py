"""Rewrites of exported ONNX graphs that the TorchScript tracer cannot express.

The tracer records one path through the Python code, so a graph cannot branch on the
prompt batch size: :func:`single_prompt_addends` adds such a branch after export, for
products whose addend is a per-image tensor repeated over the batch. And it records each
module as the model code wrote it: :func:`fold_pointwise_convs` merges two 1 x 1
convolutions in a row (from two different modules) into one.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np


def single_prompt_addends(model: Any, batch_input: str) -> int:
    """Give each ``Gemm(A, W, Reshape(Expand(base)))`` a branch without the ``Expand``.

    :func:`samedge.export.wrappers._linear_onto` traces as a ``Gemm`` whose addend is a
    batch-1 tensor repeated over the ``B`` prompt sets (an ``Expand``, which copies it,
    then a ``Reshape``). With ``B == 1`` the repeat is the tensor itself, and the copy
    costs about as much as the addition it feeds. Each such ``Gemm`` becomes an ``If`` on
    ``B == 1`` (``B``: the first axis of ``batch_input``): the ``then`` branch reshapes
    ``base`` and adds it inside the ``Gemm``; the ``else`` branch is the original nodes.
    The ``If`` holds the ``Gemm`` itself, so its output is written once either way.

    Modifies ``model`` (an ``onnx.ModelProto``) in place; returns the number of ``Gemm``
    nodes rewritten.
    """
    from onnx import helper, numpy_helper

    graph = model.graph
    producer = {out: node for node in graph.node for out in node.output}
    uses = Counter(name for node in graph.node for name in node.input)
    uses.update(out.name for out in graph.output)
    cond = "single_prompt/is_one"
    rewritten = 0
    for gemm in [n for n in graph.node if n.op_type == "Gemm" and len(n.input) == 3]:
        reshape = producer.get(gemm.input[2])
        if reshape is None or reshape.op_type != "Reshape" or uses[reshape.output[0]] != 1:
            continue
        expand = producer.get(reshape.input[0])
        if expand is None or expand.op_type != "Expand" or uses[expand.output[0]] != 1:
            continue
        if rewritten == 0:
            graph.initializer.append(
                numpy_helper.from_array(np.array([1], np.int64), "single_prompt/one")
            )
            head = [
                helper.make_node("Shape", [batch_input], ["single_prompt/b"], start=0, end=1),
                helper.make_node("Equal", ["single_prompt/b", "single_prompt/one"], [cond + "1"]),
                helper.make_node("Squeeze", [cond + "1"], [cond]),
            ]
            for offset, node in enumerate(head):
                graph.node.insert(offset, node)
        stem = f"single_prompt/{rewritten}"
        out = gemm.output[0]
        then_nodes = [
            helper.make_node("Reshape", [expand.input[0], reshape.input[1]], [f"{stem}/c"]),
            helper.make_node(
                "Gemm", [*gemm.input[:2], f"{stem}/c"], [f"{stem}/then"], **_attrs(gemm)
            ),
        ]
        else_nodes = [
            helper.make_node("Expand", list(expand.input), [f"{stem}/e"]),
            helper.make_node("Reshape", [f"{stem}/e", reshape.input[1]], [f"{stem}/ec"]),
            helper.make_node(
                "Gemm", [*gemm.input[:2], f"{stem}/ec"], [f"{stem}/else"], **_attrs(gemm)
            ),
        ]

        node = helper.make_node(
            "If",
            [cond],
            [out],
            name=f"{gemm.name or stem}/single_prompt",
            then_branch=_branch(f"{stem}/one_prompt", then_nodes, f"{stem}/then"),
            else_branch=_branch(f"{stem}/prompts", else_nodes, f"{stem}/else"),
        )
        at = list(graph.node).index(gemm)
        graph.node.insert(at, node)
        for old in (gemm, reshape, expand):
            graph.node.remove(old)
        rewritten += 1
    return rewritten


def fold_pointwise_convs(model: Any) -> int:
    """Merge each 1 x 1 convolution that only feeds another 1 x 1 convolution into it.

    SAM 2's image encoder ends its two high-resolution levels with the FPN neck's lateral
    convolution (96 or 192 channels -> 256) followed by the mask decoder's ``conv_s0`` /
    ``conv_s1`` (256 -> 32 or 64), with nothing between: ``W2 (W1 x + b1) + b2`` is one
    convolution with weight ``W2 W1`` and bias ``W2 b1 + b2`` (products taken in float64).
    That removes the 256-channel intermediate (64 MB at 256 x 256 pixels) and ~5.6 GFLOP
    per image. Modifies ``model`` in place; returns the number of convolutions merged.
    """
    from onnx import helper, numpy_helper

    graph = model.graph
    weights = {t.name: t for t in graph.initializer}
    producer = {out: node for node in graph.node for out in node.output}
    uses = Counter(name for node in graph.node for name in node.input)
    uses.update(out.name for out in graph.output)
    merged = 0
    for second in [n for n in graph.node if n.op_type == "Conv"]:
        first = producer.get(second.input[0])
        if first is None or first.op_type != "Conv" or uses[first.output[0]] != 1:
            continue
        one, two = _pointwise(first, weights), _pointwise(second, weights)
        if one is None or two is None:
            continue
        (w1, b1), (w2, b2) = one, two
        weight = (w2 @ w1).astype(np.float32)[:, :, None, None]
        bias = (w2 @ b1 + b2).astype(np.float32)
        stem = f"{second.name or second.output[0]}/folded"
        graph.initializer.extend(
            [
                numpy_helper.from_array(weight, f"{stem}/weight"),
                numpy_helper.from_array(bias, f"{stem}/bias"),
            ]
        )
        node = helper.make_node(
            "Conv",
            [first.input[0], f"{stem}/weight", f"{stem}/bias"],
            list(second.output),
            name=stem,
            kernel_shape=[1, 1],
        )
        at = list(graph.node).index(second)
        graph.node.insert(at, node)
        graph.node.remove(second)
        graph.node.remove(first)
        merged += 1
    if merged:
        _drop_unused_initializers(graph)
    return merged


def _pointwise(node: Any, weights: dict[str, Any]) -> tuple[np.ndarray, np.ndarray] | None:
    """A plain 1 x 1 convolution's ``(out, in)`` weight and bias in float64, else ``None``."""
    from onnx import numpy_helper

    attrs = _attrs(node)
    plain = (
        attrs.get("group", 1) == 1
        and all(v == 1 for v in attrs.get("strides", [1, 1]))
        and all(v == 1 for v in attrs.get("dilations", [1, 1]))
        and not any(attrs.get("pads", [0, 0, 0, 0]))
        and attrs.get("auto_pad", b"NOTSET") in (b"NOTSET", "NOTSET")
    )
    if not plain or len(node.input) < 2 or node.input[1] not in weights:
        return None
    w = numpy_helper.to_array(weights[node.input[1]]).astype(np.float64)
    if w.ndim != 4 or w.shape[2:] != (1, 1):
        return None
    if len(node.input) > 2 and node.input[2]:
        if node.input[2] not in weights:
            return None
        b = numpy_helper.to_array(weights[node.input[2]]).astype(np.float64)
    else:
        b = np.zeros(w.shape[0])
    return w[:, :, 0, 0], b


def _drop_unused_initializers(graph: Any) -> None:
    used = {name for node in graph.node for name in node.input}
    used.update(out.name for out in graph.output)
    for node in graph.node:
        used.update(_outer_names(node))
    kept = [t for t in graph.initializer if t.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept)


def _outer_names(node: Any) -> list[str]:
    """Names an ``If`` node's branches read from the enclosing graph."""
    from onnx import helper

    names: list[str] = []
    for attr in node.attribute:
        if attr.type != attr.GRAPH:
            continue
        sub = helper.get_attribute_value(attr)
        own = {o for n in sub.node for o in n.output} | {i.name for i in sub.initializer}
        for n in sub.node:
            names.extend(i for i in n.input if i and i not in own)
            names.extend(i for i in _outer_names(n) if i not in own)
    return names


def _branch(name: str, nodes: list[Any], result: str) -> Any:
    """An ``If`` branch: ``nodes`` reading the outer graph, one 2-D float output."""
    from onnx import TensorProto, helper

    info = helper.make_tensor_value_info(result, TensorProto.FLOAT, [None, None])
    return helper.make_graph(nodes, name, [], [info])


def _attrs(node: Any) -> dict[str, Any]:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}
