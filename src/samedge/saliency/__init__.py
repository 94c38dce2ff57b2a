"""Salient-object auto-prompt: SqueezeSAM's five clicks, with any samedge model.

A saliency backend turns an image into a map; :func:`five_clicks` turns the map into five
positive clicks on the most salient blob (the rule and its parameters are documented in
:mod:`samedge.saliency.prompt`); :func:`segment_auto` (or
:meth:`samedge.Predictor.segment_auto`) gives them to a :class:`samedge.Predictor`.
Backends (:data:`BACKENDS`):

``classic``  spectral residual (Hou & Zhang 2007), no weights (:mod:`.classic`).
``u2netp``   U²-Net-p on ONNX Runtime, 4.6 MB downloaded once (:mod:`.u2netp`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from ..errors import SamedgeError
from ..imageio import ImageLike, load_image
from .prompt import AutoPrompt, NoSalientObjectError, five_clicks

if TYPE_CHECKING:
    from ..runtime.predictor import Predictor
    from ..runtime.types import ImageEmbedding, MaskPrediction

BACKENDS = ("classic", "u2netp")

__all__ = [
    "BACKENDS",
    "AutoPrompt",
    "AutoSegmentation",
    "NoSalientObjectError",
    "SaliencyBackend",
    "auto_prompt",
    "five_clicks",
    "make_backend",
    "segment_auto",
]


@runtime_checkable
class SaliencyBackend(Protocol):
    """What the five-click rule needs: a name and a saliency map.

    ``saliency(image)`` takes a uint8 ``(H, W, 3)`` RGB image and returns float32
    ``(H, W)`` in [0, 1] at the image's resolution (higher = more salient).
    """

    name: str

    def saliency(self, image: np.ndarray) -> np.ndarray: ...


def make_backend(
    name: str = "classic",
    model_path: str | os.PathLike[str] | None = None,
    providers: str | Sequence[str] | None = None,
    threads: int | None = None,
    download: bool = True,
    progress: bool = True,
) -> SaliencyBackend:
    """The backend called ``name`` (:data:`BACKENDS`).

    Args:
        model_path: a local U²-Net-p ``.onnx`` (``u2netp`` only; ``--saliency-model``).
        download: let ``u2netp`` download its weights when they are not cached.

    Raises:
        SamedgeError: unknown name, or a model path given to ``classic``.
        DownloadError, ModelNotFoundError: ``u2netp``'s weights are unavailable.
    """
    if name == "classic":
        if model_path is not None:
            raise SamedgeError("--saliency-model is for --saliency u2netp; classic has no weights")
        from .classic import SpectralResidual

        return SpectralResidual()
    if name == "u2netp":
        from .u2netp import U2NetP

        return U2NetP(model_path, providers, threads, download=download, progress=progress)
    raise SamedgeError(f"unknown saliency backend '{name}': choose from {', '.join(BACKENDS)}")


def auto_prompt(
    image: ImageLike,
    backend: SaliencyBackend | str = "classic",
    min_threshold: float | None = None,
    min_area: int | None = None,
) -> AutoPrompt:
    """Five positive clicks on the most salient object of ``image``.

    Args:
        image: path, PIL image or uint8 ``(H, W, 3)`` RGB array
            (:func:`samedge.imageio.load_image`); points are in its pixels.
        backend: a :class:`SaliencyBackend` or a name from :data:`BACKENDS` (made with
            :func:`make_backend`'s defaults; make it once yourself for many images).
        min_threshold, min_area: see :func:`five_clicks` (``None``: its defaults).

    Raises:
        NoSalientObjectError: no salient blob (one line saying what to do instead).
    """
    chosen = make_backend(backend) if isinstance(backend, str) else backend
    saliency = chosen.saliency(load_image(image))
    kwargs: dict[str, Any] = {"min_area": min_area, "backend": chosen.name}
    if min_threshold is not None:
        kwargs["min_threshold"] = min_threshold
    return five_clicks(saliency, **kwargs)


@dataclass(frozen=True)
class AutoSegmentation:
    """:func:`segment_auto`'s result: the clicks and the model's mask for them.

    Attributes:
        prompt: the clicks and the saliency blob (:class:`AutoPrompt`).
        prediction: the model's output for those clicks (``B = 1``, ``K = 1``).
        embedding: the image's embedding, to refine with more clicks.
    """

    prompt: AutoPrompt
    prediction: MaskPrediction
    embedding: ImageEmbedding

    @property
    def mask(self) -> np.ndarray:
        """bool ``(H, W)`` the segmented object."""
        return self.prediction.masks[0, 0]


def segment_auto(
    predictor: Predictor,
    image: ImageLike,
    backend: SaliencyBackend | str = "classic",
    embedding: ImageEmbedding | None = None,
) -> AutoSegmentation:
    """Segment the most salient object of ``image`` with no click: :func:`auto_prompt`'s
    five clicks are given to ``predictor`` together (``multimask_output=False``: several
    points leave no ambiguity to resolve).

    Args:
        image: path, PIL image or uint8 ``(H, W, 3)`` RGB array.
        embedding: ``predictor.encode(image)`` when already computed.

    Raises:
        NoSalientObjectError: before the encoder runs, when there is no salient blob.
    """
    rgb = load_image(image)
    prompt = auto_prompt(rgb, backend)
    emb = predictor.encode(rgb) if embedding is None else embedding
    prediction = predictor.predict(
        emb, points=prompt.points, labels=prompt.labels, multimask_output=False
    )
    return AutoSegmentation(prompt, prediction, emb)
