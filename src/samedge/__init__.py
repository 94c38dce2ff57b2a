"""samedge: Segment Anything on ordinary machines, with ONNX Runtime and NumPy.

Importing samedge is cheap and has no side effects: no torch, no onnxruntime, no logging
configuration. The runtime is loaded when a :class:`Predictor` is created.

    >>> from samedge import Predictor
    >>> predictor = Predictor.from_pretrained("sam2.1_hiera_tiny")
    >>> embedding = predictor.encode("photo.jpg")
    >>> result = predictor.predict(embedding, points=[[500, 375]], labels=[1])
    >>> result.masks.shape  # (1 prompt set, 3 masks, H, W)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._lazy import lazy_getattr

__version__ = "0.1.0"

__all__ = [
    "ImageEmbedding",
    "ImagePredictor",
    "MaskPrediction",
    "ModelSpec",
    "Predictor",
    "SamedgeError",
    "__version__",
    "get_spec",
    "list_models",
    "load_image",
]

_LAZY = {
    "ImageEmbedding": "samedge.runtime.types",
    "MaskPrediction": "samedge.runtime.types",
    "Predictor": "samedge.runtime.predictor",
    "ImagePredictor": "samedge.runtime.predictor",
    "ModelSpec": "samedge.specs",
    "SamedgeError": "samedge.errors",
    "get_spec": "samedge.registry",
    "list_models": "samedge.registry",
    "load_image": "samedge.imageio",
}

if TYPE_CHECKING:
    from .errors import SamedgeError
    from .imageio import load_image
    from .registry import get_spec, list_models
    from .runtime.predictor import ImagePredictor, Predictor
    from .runtime.types import ImageEmbedding, MaskPrediction
    from .specs import ModelSpec


__getattr__ = lazy_getattr(__name__, _LAZY, globals())
