"""Reduced-precision model folders (FP16, INT8) with a measured fidelity cost.

    >>> from samedge.quantize import QuantizeConfig, quantize_model
    >>> result = quantize_model("models/sam2.1_hiera_tiny", "models/tiny-int8",
    ...                         QuantizeConfig(precision="int8-static", component="encoder",
    ...                                        calibration="calib/", fidelity_data="GrabCut/"))
    >>> result.fidelity["all"]["mean_iou"]

Modules: :mod:`.convert` (one ONNX graph to fp16 / int8), :mod:`.calibration` (calibration
feeds from images, preprocessed exactly as at inference), :mod:`.ranges` (static INT8
activation ranges, one sample at a time with bounded memory), :mod:`.graph` (rewrites before
quantisation: linear layers as ``Gemm``), :mod:`.model` (a whole model folder:
convert, measure fidelity against the fp32 parent, write the folder and its manifest).
"""

from __future__ import annotations

from .model import (
    COMPONENTS,
    METHODS,
    PRECISIONS,
    FidelityError,
    QuantizeConfig,
    QuantizeResult,
    quantize_model,
)
from .ranges import CalibrationOptions

__all__ = [
    "COMPONENTS",
    "METHODS",
    "PRECISIONS",
    "CalibrationOptions",
    "FidelityError",
    "QuantizeConfig",
    "QuantizeResult",
    "quantize_model",
]
