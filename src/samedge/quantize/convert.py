"""Converting one ONNX graph to FP16 or INT8, keeping its fp32 inputs and outputs.

Inputs and outputs keep their names and dtypes, so a converted folder loads with the
unchanged :class:`samedge.runtime.predictor.Predictor`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

#: Calibration methods of static INT8 (onnxruntime's ``CalibrationMethod``).
METHODS = ("minmax", "entropy", "percentile")

#: Operators that static INT8 quantises by default: the convolutions and matrix products
#: that hold nearly all of SAM's FLOPs. Everything else stays fp32 between Q/DQ pairs.
STATIC_OPS = ("Conv", "MatMul", "Gemm")

#: Operators that dynamic INT8 quantises (activations are quantised per call).
DYNAMIC_OPS = ("MatMul", "Gemm")


def to_fp16(src: Path, dst: Path) -> None:
    """FP16 weights and arithmetic with fp32 graph inputs/outputs (``keep_io_types``).

    Uses onnxruntime's own float16 converter (``onnxruntime.transformers.float16``), which
    inserts Cast nodes at the graph boundary. Ops that ONNX Runtime's CPU provider lacks in
    fp16 are left in fp32 by its default block list.
    """
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = onnx.load(os.fspath(src))
    converted = convert_float_to_float16(model, keep_io_types=True, disable_shape_infer=False)
    onnx.save(converted, os.fspath(dst))


def to_int8_dynamic(src: Path, dst: Path, ops: Iterable[str] = DYNAMIC_OPS) -> None:
    """INT8 weights, activations quantised at run time (QUInt8 weights: the faster kind
    on CPUs without VNNI, see docs/precision.md)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(
        os.fspath(src),
        os.fspath(dst),
        op_types_to_quantize=list(ops),
        weight_type=QuantType.QUInt8,
        per_channel=False,
        extra_options={"MatMulConstBOnly": True},
    )


class _FeedReader:
    """onnxruntime ``CalibrationDataReader`` over a list of input dicts."""

    def __init__(self, feeds: list[dict[str, np.ndarray]]) -> None:
        self._feeds = iter(feeds)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._feeds, None)

    def rewind(self) -> None:  # pragma: no cover - not used by quantize_static
        pass


def to_int8_static(
    src: Path,
    dst: Path,
    feeds: list[dict[str, np.ndarray]],
    method: str = "minmax",
    ops: Iterable[str] = STATIC_OPS,
    per_channel: bool = True,
    reduce_range: bool = False,
    activation: str = "quint8",
    extra_options: Mapping[str, Any] | None = None,
) -> None:
    """Static INT8 in QDQ format, calibrated on ``feeds`` (one input dict per sample).

    Args:
        method: ``minmax``, ``entropy`` or ``percentile`` (see :data:`METHODS`).
        ops: operator types to quantise.
        per_channel: per-output-channel weight scales (better accuracy for Conv/MatMul).
        reduce_range: 7-bit weights, which avoids int16 overflow in the u8s8 kernels of CPUs
            without VNNI.
        activation: ``quint8`` or ``qint8`` activations; weights are always QInt8 (QDQ).
    """
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    calib = {
        "minmax": CalibrationMethod.MinMax,
        "entropy": CalibrationMethod.Entropy,
        "percentile": CalibrationMethod.Percentile,
    }[method]
    # CalibMaxIntermediateOutputs would bound calibration memory, but onnxruntime 1.32
    # drops the ranges it clears ("No data is collected"), so every sample's intermediate
    # outputs are kept until the end: calibration memory grows with --num-images.
    options: dict[str, Any] = {"CalibMovingAverage": method == "minmax"}
    options.update(extra_options or {})
    quantize_static(
        os.fspath(src),
        os.fspath(dst),
        _FeedReader(feeds),
        quant_format=QuantFormat.QDQ,
        op_types_to_quantize=list(ops),
        per_channel=per_channel,
        reduce_range=reduce_range,
        activation_type=QuantType.QUInt8 if activation == "quint8" else QuantType.QInt8,
        weight_type=QuantType.QInt8,
        calibrate_method=calib,
        extra_options=options,
    )
