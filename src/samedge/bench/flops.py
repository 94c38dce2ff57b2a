"""Compute floors: FLOPs of an ONNX graph and the machine's measured fp32 GEMM peak.

A stage's *compute floor* is the time it could not go below on this machine even with
perfect kernels: ``FLOPs / peak``, where FLOPs count the multiply-adds of the graph's
matrix products and convolutions (``MatMul``, ``Gemm``, ``Conv``, ``ConvTranspose``,
``Einsum``, ONNX Runtime's fused ``MultiHeadAttention``; one multiply-add = 2 FLOPs) and
``peak`` is the best fp32 matrix-multiply rate measured on this machine with the
benchmark's thread count. Element-wise work (softmax, normalisation, activations) is left
out, so the floor is a lower bound.

Counting walks the graph with the ``onnx`` package's reference evaluator (no ONNX Runtime
session) with the heavy operators replaced by shape-only versions, so every shape is exact
for the given inputs. Counts are cached in memory per file and input shapes; nothing is
written into model folders.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

_CACHE: dict[tuple[str, int, float, tuple[tuple[str, tuple[int, ...]], ...]], int] = {}

#: Float tensors larger than this are replaced by zero-stride zero views while counting:
#: only their shapes matter, and shape arithmetic only ever touches small tensors.
_SMALL = 4096


def _zeros(shape: Sequence[int], dtype: Any = np.float32) -> np.ndarray:
    return np.broadcast_to(np.zeros((), dtype=dtype), tuple(int(d) for d in shape))


def _big(*arrays: Any) -> bool:
    return any(
        isinstance(a, np.ndarray) and a.size > _SMALL and a.dtype.kind == "f" for a in arrays
    )


def _out_size(size: int, kernel: int, stride: int, pad: int, dilation: int, ceil: bool) -> int:
    n = (size + pad - dilation * (kernel - 1) - 1) / stride + 1
    return int(math.ceil(n) if ceil else math.floor(n))


def _spatial(x: np.ndarray, kernel: Sequence[int], attrs: dict[str, Any]) -> list[int]:
    nd = len(kernel)
    strides = attrs.get("strides") or [1] * nd
    pads = attrs.get("pads") or [0] * (2 * nd)
    dil = attrs.get("dilations") or [1] * nd
    if attrs.get("auto_pad") not in (None, "NOTSET", b"NOTSET"):
        return [math.ceil(x.shape[2 + i] / strides[i]) for i in range(nd)]
    return [
        _out_size(
            x.shape[2 + i],
            kernel[i],
            strides[i],
            pads[i] + pads[i + nd],
            dil[i],
            bool(attrs.get("ceil_mode")),
        )
        for i in range(nd)
    ]


def _evaluator_ops(counter: list[int]) -> list[type]:
    """ONNX reference operators that count multiply-adds and skip the arithmetic."""
    from onnx.reference.op_run import OpRun

    class MatMul(OpRun):
        op_domain = ""

        def _run(self, a, b):
            if a.ndim == 1 or b.ndim == 1:
                out = np.matmul(np.ones(a.shape[-1:]) if a.ndim == 1 else a[..., :1, :], b)
                shape = out.shape if a.ndim == 1 else (*a.shape[:-1],)
            else:
                shape = (*np.broadcast_shapes(a.shape[:-2], b.shape[:-2]), a.shape[-2], b.shape[-1])
            counter[0] += math.prod(shape) * a.shape[-1]
            return (_zeros(shape, np.result_type(a, b)),)

    class Gemm(OpRun):
        op_domain = ""

        def _run(self, a, b, c=None, alpha=None, beta=None, transA=None, transB=None):
            m, k = (a.shape[1], a.shape[0]) if transA else a.shape
            n = b.shape[0] if transB else b.shape[1]
            counter[0] += m * k * n
            return (_zeros((m, n), a.dtype),)

    class Conv(OpRun):
        op_domain = ""

        def _run(self, x, w, b=None, **attrs):
            shape = (x.shape[0], w.shape[0], *_spatial(x, w.shape[2:], attrs))
            counter[0] += math.prod(shape) * math.prod(w.shape[1:])
            return (_zeros(shape, x.dtype),)

    class ConvTranspose(OpRun):
        op_domain = ""

        def _run(self, x, w, b=None, **attrs):
            nd = len(w.shape) - 2
            group = int(attrs.get("group") or 1)
            strides = attrs.get("strides") or [1] * nd
            pads = attrs.get("pads") or [0] * (2 * nd)
            dil = attrs.get("dilations") or [1] * nd
            extra = attrs.get("output_padding") or [0] * nd
            if attrs.get("output_shape"):
                spatial = list(attrs["output_shape"])[-nd:]
            else:
                spatial = [
                    strides[i] * (x.shape[2 + i] - 1)
                    + extra[i]
                    + (w.shape[2 + i] - 1) * dil[i]
                    + 1
                    - pads[i]
                    - pads[i + nd]
                    for i in range(nd)
                ]
            counter[0] += math.prod(x.shape) * math.prod(w.shape[1:])
            return (_zeros((x.shape[0], w.shape[1] * group, *spatial), x.dtype),)

    class Einsum(OpRun):
        op_domain = ""

        def _run(self, *inputs, equation=None):
            eq = equation.decode() if isinstance(equation, bytes) else equation
            small = [
                np.zeros(i.shape, dtype=np.float32) if i.size <= _SMALL else None for i in inputs
            ]
            lhs, _, rhs = eq.replace(" ", "").partition("->")
            sizes: dict[str, int] = {}
            for term, arr in zip(lhs.split(","), inputs, strict=True):
                letters = term.replace("...", "")
                offset = arr.ndim - len(letters)
                for i, letter in enumerate(letters):
                    sizes[letter] = arr.shape[offset + i]
            counter[0] += math.prod(sizes.values())
            if rhs and "..." not in eq:
                return (_zeros([sizes[c] for c in rhs], inputs[0].dtype),)
            if all(s is not None for s in small):
                return (np.einsum(eq, *small),)
            raise ValueError(f"cannot count Einsum '{eq}' on large inputs")

    class MultiHeadAttention(OpRun):
        """ONNX Runtime's fused attention (SAM 2 encoders): ``Q K^T`` and ``P V``."""

        op_domain = "com.microsoft"

        def _run(self, q, k, v, *rest, num_heads=None, **attrs):
            batch, s_q, d_qk = q.shape
            s_kv, d_v = k.shape[1], v.shape[2]
            counter[0] += batch * s_q * s_kv * (d_qk + d_v)
            return (_zeros((batch, s_q, d_v), q.dtype),)

    class FastGelu(OpRun):
        """ONNX Runtime's tanh GELU (EfficientViT encoders exported before they used ONNX's
        own ``Gelu``): element-wise, not counted."""

        op_domain = "com.microsoft"

        def _run(self, x, bias=None):
            if _big(x):
                return (_zeros(x.shape, x.dtype),)
            return (_gelu(x if bias is None else x + bias, approximate="tanh"),)

    class MaxPool(OpRun):
        op_domain = ""

        def _run(self, x, **attrs):
            return (_zeros((*x.shape[:2], *_spatial(x, attrs["kernel_shape"], attrs)), x.dtype),)

    class Resize(OpRun):
        op_domain = ""

        def _run(self, x, roi=None, scales=None, sizes=None, **attrs):
            if sizes is not None and len(sizes):
                shape = [int(s) for s in sizes]
            else:
                shape = [math.floor(d * s) for d, s in zip(x.shape, scales, strict=True)]
            return (_zeros(shape, x.dtype),)

    def elementwise(name: str, fn: Any) -> type:
        def _run(self, *inputs, **attrs):
            if _big(*inputs):
                shape = np.broadcast_shapes(*(np.shape(i) for i in inputs))
                return (_zeros(shape, np.result_type(*[i.dtype for i in inputs])),)
            return (np.asarray(fn(*inputs, **attrs)),)

        return type(name, (OpRun,), {"op_domain": "", "_run": _run})

    def _softmax(x, axis=-1):
        e = np.exp(x - x.max(axis=axis, keepdims=True))
        return e / e.sum(axis=axis, keepdims=True)

    def _layer_norm(x, scale, bias=None, axis=-1, epsilon=1e-5, stash_type=None):
        axes = tuple(range(axis % x.ndim, x.ndim))
        y = (x - x.mean(axis=axes, keepdims=True)) / np.sqrt(
            x.var(axis=axes, keepdims=True) + epsilon
        )
        return y * scale + (0 if bias is None else bias)

    def _erf(x):
        return np.vectorize(math.erf, otypes=[x.dtype])(x)

    def _gelu(x, approximate="none"):
        if approximate == "tanh":
            return 0.5 * x * (1 + np.tanh(0.7978845608028654 * (x + 0.044715 * x**3)))
        return 0.5 * x * (1 + _erf(x / math.sqrt(2)))

    def _layer_norm_out(*inputs, **attrs):
        return _layer_norm(*inputs, **attrs)

    unary = {
        "Add": np.add,
        "Sub": np.subtract,
        "Mul": np.multiply,
        "Div": np.divide,
        "Pow": np.power,
        "Sqrt": np.sqrt,
        "Relu": lambda x: np.maximum(x, 0),
        "Sigmoid": lambda x: 1 / (1 + np.exp(-x)),
        "Sin": np.sin,
        "Cos": np.cos,
        "Erf": _erf,
        "Gelu": _gelu,  # opset 20 (EfficientViT encoders)
        "Softmax": _softmax,
        "LayerNormalization": _layer_norm_out,
        "Where": np.where,
        "Neg": np.negative,
        "Exp": np.exp,
        "Tanh": np.tanh,
    }
    ops: list[type] = [MatMul, Gemm, Conv, ConvTranspose, Einsum, MultiHeadAttention, FastGelu]
    ops += [MaxPool, Resize]
    ops += [elementwise(name, fn) for name, fn in unary.items()]
    return ops


def count_flops(path: str | os.PathLike[str], feeds: Mapping[str, np.ndarray]) -> int:
    """FLOPs (2 x multiply-adds) of one run of the ONNX graph at ``path`` on ``feeds``.

    The graph is walked with ONNX's reference evaluator, whose matrix-product, convolution,
    pooling, resize and large element-wise operators are replaced by versions that only
    compute output shapes (and count multiply-adds), so shapes are exact for these inputs,
    including control flow and shape arithmetic, at a tiny fraction of the real cost.

    Args:
        path: ``.onnx`` file.
        feeds: one array per graph input, by name (values matter only for shape
            arithmetic, e.g. the prompts of a decoder).

    Raises:
        ValueError: the graph uses an operator the counter cannot evaluate.
    """
    path = Path(path)
    stat = path.stat()
    key = (
        str(path.resolve()),
        stat.st_size,
        stat.st_mtime,
        tuple(sorted((k, tuple(np.shape(v))) for k, v in feeds.items())),
    )
    if key in _CACHE:
        return _CACHE[key]
    import onnx
    from onnx.reference import ReferenceEvaluator

    counter = [0]
    model = onnx.load(str(path))
    evaluator = ReferenceEvaluator(model, new_ops=_evaluator_ops(counter))
    with np.errstate(all="ignore"):
        evaluator.run(None, dict(feeds))
    _CACHE[key] = 2 * counter[0]
    return _CACHE[key]


_PEAK_SCRIPT = """
import sys, time
import numpy as np
n = int(sys.argv[1]); tries = int(sys.argv[2])
rng = np.random.default_rng(0)
a = rng.standard_normal((n, n), dtype=np.float32)
b = rng.standard_normal((n, n), dtype=np.float32)
c = np.empty((n, n), dtype=np.float32)
np.matmul(a, b, out=c)
best = float("inf")
for _ in range(tries):
    t = time.perf_counter(); np.matmul(a, b, out=c); best = min(best, time.perf_counter() - t)
print(2.0 * n ** 3 / best)
"""


def gemm_peak(threads: int, size: int = 2048, tries: int = 5) -> float:
    """Best measured fp32 ``size^3`` matrix-multiply rate in FLOP/s with ``threads`` threads.

    Runs NumPy's BLAS in a fresh process whose BLAS thread count is fixed by environment
    variables, so the measurement uses exactly ``threads`` threads and its memory does not
    count against any benchmarked process.
    """
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = str(threads)
    out = subprocess.run(
        [sys.executable, "-c", _PEAK_SCRIPT, str(size), str(tries)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return float(out.stdout.strip().splitlines()[-1])
