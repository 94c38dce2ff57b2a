"""Rewrites of exported ONNX graphs that the TorchScript tracer cannot express.

The tracer records one path through the Python code, so a graph cannot branch on the
prompt batch size. :func:`single_prompt_addends` adds such a branch after export, for
products whose addend is a per-image tensor repeated over the batch.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from pathlib import Path
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


def _branch(name: str, nodes: list[Any], result: str) -> Any:
    """An ``If`` branch: ``nodes`` reading the outer graph, one 2-D float output."""
    from onnx import TensorProto, helper

    info = helper.make_tensor_value_info(result, TensorProto.FLOAT, [None, None])
    return helper.make_graph(nodes, name, [], [info])


def _attrs(node: Any) -> dict[str, Any]:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def rewrite_file(path: Path, rewrite: Callable[[Any], int]) -> int:
    """Apply ``rewrite`` to the graph at ``path`` (no external data) and check it."""
    import onnx

    model = onnx.load(os.fspath(path))
    count = rewrite(model)
    if count:
        onnx.checker.check_model(model)
        onnx.save(model, os.fspath(path))
    return count
