"""ONNX export of the official PyTorch models (extra ``[export]``).

This package is the only part of samedge that imports torch. Import it only when exporting.
"""

from __future__ import annotations

from .exporter import ExportResult, export_model

__all__ = ["ExportResult", "export_model"]
