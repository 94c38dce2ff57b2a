"""Converting one ONNX graph to FP16 or INT8, keeping its fp32 inputs and outputs.

Inputs and outputs keep their names and dtypes, so a converted folder loads with the
unchanged :class:`samedge.runtime.predictor.Predictor`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import SamedgeError
from .graph import (
    dedicated_weights,
    expand_fused_attention,
    linear_layers_as_gemm,
    quantized_products,
    weights_through_identity,
)
from .ranges import METHODS as METHODS
from .ranges import CalibrationOptions, Samples, calibration_method, collect_ranges

#: Operators that static INT8 may quantise (``samedge quantize --int8-ops``).
STATIC_OP_CHOICES = ("Conv", "MatMul", "Gemm")

#: What static INT8 quantises by default: the weight products (linear layers), which hold
#: nearly all of the encoders' FLOPs outside attention. Convolutions stay fp32: in SAM's
#: ViT-B they are a few percent of the time but quantising them cost most of the fidelity
#: (mean IoU 0.945 -> 0.991 without them, docs/precision.md). Products of two activations
#: (attention scores) stay fp32 too: on ONNX Runtime as integer products they were no
#: faster; OpenVINO's integer attention kernel is asked for with ``attention=True``.
STATIC_OPS = ("MatMul", "Gemm")

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


def to_int8_dynamic(
    src: Path, dst: Path, ops: Iterable[str] = DYNAMIC_OPS, external_files: Sequence[Path] = ()
) -> None:
    """INT8 weights, activations quantised at run time (QUInt8 weights: the faster kind
    on CPUs without VNNI, see docs/precision.md)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with staged(src, external_files) as model, without_preprocess_advice():
        quantize_dynamic(
            model,
            os.fspath(dst),
            op_types_to_quantize=list(ops),
            weight_type=QuantType.QUInt8,
            per_channel=False,
            extra_options={"MatMulConstBOnly": True},
        )


class _PreprocessAdvice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not ("consider" in message and "pre-processing before quantization" in message)


@contextlib.contextmanager
def without_preprocess_advice() -> Iterator[None]:
    """Within the block, drop onnxruntime's "Please consider (to run) pre-processing before
    quantization" log line, and only that one.

    Its quantisers log it for every graph that did not go through ``quant_pre_process``
    (symbolic shape inference + graph fusions). samedge leaves that step out on purpose:
    measured on SAM 2.1 tiny's encoder, it made the static INT8 graph slower (1.27x over
    fp32 instead of 1.43x, docs/precision.md), and the quantisers run ONNX shape inference
    themselves. The advice is logged on the root logger, so the filter sits there.
    """
    advice = _PreprocessAdvice()
    root = logging.getLogger()
    root.addFilter(advice)
    try:
        yield
    finally:
        root.removeFilter(advice)


@contextlib.contextmanager
def staged(src: Path, files: Sequence[Path] = ()) -> Iterator[Path]:
    """``src`` (and its external data: ``files``, and ``<src>.data`` when there is one)
    linked into a scratch folder.

    onnxruntime's quantisation tools write a shape-inferred copy next to the model they read;
    staging keeps that copy out of the parent model's folder (which may be read-only). The
    graph is a symbolic link; external data files are copied, because onnx refuses to read
    weights through a symbolic or hard link.
    """
    with tempfile.TemporaryDirectory(prefix="samedge-quantize-") as tmp:
        link = Path(tmp) / src.name
        try:
            link.symlink_to(src.resolve())
        except OSError:  # no symlinks (e.g. Windows without the privilege)
            shutil.copy2(src, link)
        data = src.with_name(src.name + ".data")  # the exporter's external data file
        for path in {*files, *([data] if data.exists() else [])}:
            shutil.copy2(path, Path(tmp) / path.name)
        yield link


def _prepare_graph(
    path: Path,
    linear_as_gemm: bool,
    attention: bool = False,
    log: Any = None,
    ops: Sequence[str] = STATIC_OPS,
) -> list[str]:
    """Ready the staged graph ``path`` for static quantisation; returns the nodes to leave
    in fp32: every product of constants alone (folded when the graph loads), every ``Gemm``
    whose bias is computed, and every ``MatMul`` of two activations (no weight operand)
    unless ``attention``.

    Products that read a shared weight through an ``Identity`` read it directly first
    (:func:`.graph.weights_through_identity`), so they count as weight products; then each
    product to be quantised gets its own copy of a weight it shares
    (:func:`.graph.dedicated_weights`), and a weight that a product of constants reads
    stays fp32 in every product (both for ONNX Runtime's exact 8-bit mode).

    With ``attention`` ONNX Runtime's fused attention nodes are first written out as
    standard operators (:func:`.graph.expand_fused_attention`, before the rewrite below,
    while shape inference still knows the head size) and products of two activations are
    quantised too. With
    ``linear_as_gemm`` the graph's linear layers are rewritten as ``Gemm``
    (:func:`.graph.linear_layers_as_gemm`). ``path`` is a link to the parent's file: it is
    replaced by the rewritten copy, never written through. External data stays where it
    is (a weight copy reads the same bytes); only nodes and small constants change.
    """
    import onnx

    say = log or (lambda _msg: None)
    proto = onnx.load(os.fspath(path), load_external_data=False)
    rewired = weights_through_identity(proto)
    changed = rewired > 0
    if rewired:
        say(f"{rewired} products read their weights through Identity: now directly")
    if attention:
        expanded, left = expand_fused_attention(proto)
        changed = changed or expanded > 0
        if expanded or left:
            say(
                f"{expanded} fused attention nodes written as standard operators"
                + (f", {left} left fused (not quantised)" if left else "")
            )
    if linear_as_gemm:
        count = linear_layers_as_gemm(proto)
        changed = changed or count > 0
        say(f"{count} linear layers written as Gemm")
    weights = {t.name for t in proto.graph.initializer}
    # Tensors computed from the graph's inputs; a product of constants alone (a resized
    # position table) is folded by the runtime when it loads the graph: never quantised.
    varying = {i.name for i in proto.graph.input} - weights
    for node in proto.graph.node:
        if varying.intersection(node.input):
            varying.update(node.output)
    excluded, activations, folded = [], 0, set()

    def named(i: int, node: Any) -> str:
        """The node's name, given one first if it has none (the exclusion list is names)."""
        nonlocal changed
        if not node.name:
            node.name, changed = f"samedge/{node.op_type.lower()}_{i}", True
        return str(node.name)

    products = [(i, n) for i, n in enumerate(proto.graph.node) if n.op_type in STATIC_OP_CHOICES]
    for i, node in products:
        constant = not varying.intersection(node.input)
        of_activations = node.op_type == "MatMul" and not set(node.input) & weights
        if constant or of_activations:
            name = named(i, node)
            if attention and not constant:
                activations += 1
            else:
                excluded.append(name)
                if constant:
                    folded.update(weights.intersection(node.input))
    # Also left in fp32: (1) a weight that a folded product reads, in every product that
    # reads it: the folded constant keeps full precision, and ONNX Runtime's exact 8-bit mode
    # (session.x64quantprecision) cannot load a graph where a quantised weight also feeds a
    # product of constants (SAM's point encoding matrix, found in the decoders); (2) a Gemm
    # whose bias is computed (SAM's and EfficientSAM's prompt encoders tile a learned
    # embedding into one): ONNX Runtime makes an integer product only with a constant bias,
    # so quantising it would add rounding and save nothing (its quantiser warns so).
    shared = computed_bias = 0
    for i, node in products:
        if node.name in excluded:
            continue
        bias = node.input[2] if node.op_type == "Gemm" and len(node.input) > 2 else ""
        if folded.intersection(node.input):
            shared += 1
        elif bias and bias not in weights:  # "": an omitted optional bias
            computed_bias += 1
        else:
            continue
        excluded.append(named(i, node))
    if shared:
        say(f"{shared} products share a weight with a product of constants: left in fp32")
    if computed_bias and "Gemm" in ops:
        say(f"{computed_bias} Gemm with a computed bias: left in fp32")
    quantised = [n for _, n in products if n.op_type in ops and n.name not in excluded]
    copies = dedicated_weights(proto, quantised)
    if copies:
        changed = True
        say(f"{copies} products shared a weight with another: each has its own copy now")
    if activations:
        say(f"{activations} products of two activations (attention) quantised too")
    if changed:
        path.unlink()
        onnx.save(proto, os.fspath(path))
    return excluded


class _SampleReader:
    """onnxruntime ``CalibrationDataReader`` over ``samples()``, one sample per call of its
    calibrator (``CalibStridedMinMax`` = 1) for onnxruntime without a calibration cache."""

    def __init__(self, samples: Samples) -> None:
        self._all = list(samples())
        self._it: Iterator[Mapping[str, np.ndarray]] = iter(self._all)

    def __len__(self) -> int:
        return len(self._all)

    def set_range(self, start_index: int, end_index: int) -> None:
        self._it = iter(self._all[start_index:end_index])

    def get_next(self) -> Mapping[str, np.ndarray] | None:
        return next(self._it, None)


def to_int8_static(
    src: Path,
    dst: Path,
    samples: Samples,
    calibration: CalibrationOptions | str = "minmax",
    ops: Iterable[str] = STATIC_OPS,
    per_channel: bool = True,
    reduce_range: bool = False,
    activation: str = "quint8",
    extra_options: Mapping[str, Any] | None = None,
    linear_as_gemm: bool = True,
    attention: bool = False,
    threads: int | None = None,
    external_files: Sequence[Path] = (),
    log: Any = None,
) -> None:
    """Static INT8 in QDQ format, calibrated on ``samples``.

    Args:
        samples: called once per calibration pass; returns the input dicts (one per sample).
        calibration: :class:`.ranges.CalibrationOptions`, or a method name with the default
            options (see :data:`METHODS`).
        ops: operator types to quantise (see :data:`STATIC_OPS`); a ``MatMul`` of two
            activations only with ``attention``.
        per_channel: per-output-channel weight scales (better accuracy for Conv/MatMul).
        reduce_range: 7-bit weights, which avoids int16 overflow in the u8s8 kernels of CPUs
            without VNNI.
        activation: ``quint8`` or ``qint8`` activations; weights are always QInt8 (QDQ).
        linear_as_gemm: rewrite ``MatMul`` + bias ``Add`` pairs as ``Gemm`` first
            (:func:`.graph.linear_layers_as_gemm`) and leave those products' outputs in
            float: each becomes one ``QGemm`` with its bias, instead of an integer product,
            a requantisation, a dequantisation and an fp32 bias addition.
        attention: quantise the products of two activations too (attention's scores and
            their weighted sum; fused attention nodes are written out first), with
            symmetric int8 activations throughout: OpenVINO then runs each attention as one
            integer kernel (EfficientSAM-Ti: 2.4-2.65x its fp32 encoder, docs/precision.md).
            ONNX Runtime has no such kernel: for it these products stay fp32.
        threads: intra-op threads of the calibration runs.
        external_files: external data files of ``src`` (graphs over 2 GB).

    Ranges come from :func:`.ranges.collect_ranges` (one sample at a time, bounded memory)
    and reach ``quantize_static`` through its calibration cache. onnxruntime releases
    without that cache (``calibration_cache_path``) calibrate inside ``quantize_static``
    one sample at a time instead: the same ranges for minmax and percentile, entropy with
    onnxruntime's fixed 128 bins, and without the memory bounds of :mod:`.ranges`.
    """
    import inspect

    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    options = (
        calibration
        if isinstance(calibration, CalibrationOptions)
        else CalibrationOptions(method=calibration)
    )
    ops = list(ops)
    if attention:
        # OpenVINO fuses a quantised attention into its integer kernel only when both
        # products' operands are symmetric int8 (asymmetric uint8: four FakeQuantize passes
        # around fp32 products, 2.3x slower than fp32; measured on EfficientSAM-Ti).
        activation = "qint8"
        extra_options = {**(extra_options or {}), "ActivationSymmetric": True}
        if "MatMul" not in ops:
            ops.append("MatMul")
    kwargs: dict[str, Any] = {
        "quant_format": QuantFormat.QDQ,
        "op_types_to_quantize": ops,
        "per_channel": per_channel,
        "reduce_range": reduce_range,
        "activation_type": QuantType.QUInt8 if activation == "quint8" else QuantType.QInt8,
        "weight_type": QuantType.QInt8,
        "calibrate_method": calibration_method(options.method),
    }
    extra: dict[str, Any] = {"CalibTensorRangeSymmetric": options.is_symmetric}
    if linear_as_gemm:
        extra["OpTypesToExcludeOutputQuantization"] = ["Gemm"]
    extra.update(extra_options or {})
    with staged(src, external_files) as model, without_preprocess_advice():
        large = bool(external_files)
        kwargs["nodes_to_exclude"] = _prepare_graph(model, linear_as_gemm, attention, log, ops)
        if "calibration_cache_path" in inspect.signature(quantize_static).parameters:
            from onnxruntime.quantization.calibrate import save_tensors_data

            workdir = model.parent
            ranges = collect_ranges(model, samples, ops, options, workdir, threads, large, log)
            cache = workdir / "ranges.json"
            save_tensors_data(ranges, cache)
            del ranges
            quantize_static(
                model, dst, None, calibration_cache_path=cache, extra_options=extra, **kwargs
            )
        else:
            extra.update({"CalibStridedMinMax": 1, "CalibPercentile": options.percentile})
            quantize_static(
                model,
                dst,
                _SampleReader(samples),
                use_external_data_format=large,
                extra_options=extra,
                **kwargs,
            )
    if not quantized_products(dst):
        raise SamedgeError(
            f"int8-static quantised nothing in {src.name}: it has no {'/'.join(ops)} with "
            f"weights; choose the operators that hold its weight products with --int8-ops "
            f"(e.g. Conv,MatMul,Gemm)"
        )
