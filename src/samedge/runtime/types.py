"""Typed results of the runtime.

Conventions used everywhere in samedge:
    * images are ``H x W x 3`` uint8 RGB arrays;
    * points are ``(x, y)`` pixel coordinates in the original image (x to the right, y down);
    * boxes are ``(x0, y0, x1, y1)`` pixel coordinates in the original image;
    * masks are boolean arrays at the original image resolution.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Protocol, TypeVar

import numpy as np


class TensorInfo(Protocol):
    """A graph input or output as a session lists it (ONNX Runtime's ``NodeArg``,
    OpenVINO's :class:`samedge.runtime.openvino_native.Port`): its name and shape, whose
    dynamic dimensions are ``None`` or (ONNX Runtime) a symbolic name."""

    @property
    def name(self) -> str: ...

    @property
    def shape(self) -> Sequence[int | str | None]: ...


class GraphSession(Protocol):
    """What runs one graph: the part of ``onnxruntime.InferenceSession``'s interface that
    :class:`samedge.runtime.openvino_native.OpenVINOSession` also has, so the image encoder
    runs on either.

    ``run(output_names, feeds, run_options)`` returns the named outputs (all when ``None``)
    as arrays the caller owns; ``run_options`` is ONNX Runtime's ``RunOptions`` or ``None``.
    ``get_providers()[0]`` names what actually runs the graph.
    """

    def run(
        self,
        output_names: Sequence[str] | None,
        feeds: Mapping[str, np.ndarray],
        run_options: Any = None,
        /,
    ) -> list[np.ndarray]: ...

    def get_providers(self) -> list[str]: ...

    def get_inputs(self) -> Sequence[TensorInfo]: ...

    def get_outputs(self) -> Sequence[TensorInfo]: ...


class BindableSession(GraphSession, Protocol):
    """An ONNX Runtime session: it also runs through IOBinding (see
    :func:`samedge.runtime.session.run_bound`); the binding is onnxruntime's ``IOBinding``."""

    def io_binding(self) -> Any: ...

    def run_with_iobinding(self, iobinding: Any, run_options: Any = None, /) -> None: ...


_C = TypeVar("_C", bound="Closeable")


class Closeable:
    """``with obj:`` calls ``obj.close()`` at the end of the block, as a file does."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self: _C) -> _C:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def _frozen(array: np.ndarray) -> np.ndarray:
    array = np.ascontiguousarray(array)
    array.setflags(write=False)
    return array


@dataclass(frozen=True, eq=False)
class DeviceTensors:
    """Copies of an embedding's decoder context that stay in GPU memory (CUDA, TensorRT).

    Attributes:
        device: ``(device, id)``, e.g. ``("cuda", 0)``.
        values: context tensor name -> onnxruntime ``OrtValue`` on that device.
    """

    device: tuple[str, int]
    values: Mapping[str, Any]


@dataclass(frozen=True, eq=False)
class ImageEmbedding:
    """Everything the decoder needs about one encoded image (immutable).

    Attributes:
        model: registry name of the model that produced it.
        image_embeddings: float32 ``(1, C, 64, 64)`` image embedding.
        high_res_features: float32 high-resolution feature maps, ``(1, 32, 256, 256)`` and
            ``(1, 64, 128, 128)`` for SAM 2; empty for SAM.
        original_size: ``(H, W)`` of the image that was encoded.
        input_size: ``(h, w)`` of the resized image inside the square prompt frame
            (SAM pads the rest; SAM 2 stretches, so this is the full square): the encoder
            input's, except for models with a larger ``spec.prompt_frame`` (see
            :func:`samedge.runtime.preprocess.resized_size`).
        context: the decoder's per-image tensors (``spec.context_outputs``, from
            ``context.onnx``), computed once here instead of once per prompt; empty means
            the predictor computes them on each decode.
        on_device: the context kept on the GPU by a CUDA/TensorRT predictor, so that
            decoding does not copy it there again; ``None`` on the CPU.
    """

    model: str
    image_embeddings: np.ndarray
    high_res_features: tuple[np.ndarray, ...]
    original_size: tuple[int, int]
    input_size: tuple[int, int]
    context: tuple[np.ndarray, ...] = ()
    on_device: DeviceTensors | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.image_embeddings.ndim != 4 or self.image_embeddings.shape[0] != 1:
            raise ValueError(
                f"image_embeddings must be (1, C, H, W), got {self.image_embeddings.shape}"
            )
        object.__setattr__(self, "image_embeddings", _frozen(self.image_embeddings))
        object.__setattr__(
            self, "high_res_features", tuple(_frozen(f) for f in self.high_res_features)
        )
        object.__setattr__(self, "context", tuple(_frozen(c) for c in self.context))
        object.__setattr__(self, "original_size", tuple(int(v) for v in self.original_size))
        object.__setattr__(self, "input_size", tuple(int(v) for v in self.input_size))

    @property
    def nbytes(self) -> int:
        arrays = (self.image_embeddings, *self.high_res_features, *self.context)
        return sum(a.nbytes for a in arrays)


@dataclass(frozen=True, eq=False)
class MaskPrediction:
    """Masks predicted for ``B`` prompt sets, ``K`` masks each.

    ``K`` is 3 with ``multimask_output=True`` and 1 otherwise.

    Attributes:
        masks: bool ``(B, K, H, W)`` at the original image resolution.
        scores: float32 ``(B, K)`` predicted IoU of each mask.
        low_res_logits: float32 ``(B, K, 256, 256)`` mask logits; pass one of them back as
            ``mask_input`` to refine the mask with the next click.
        object_score_logits: float32 ``(B,)`` SAM 2's "an object is present" logit; ``None``
            for models without an object score (SAM).
    """

    masks: np.ndarray
    scores: np.ndarray
    low_res_logits: np.ndarray
    object_score_logits: np.ndarray | None = None

    def __post_init__(self) -> None:
        b, k = self.scores.shape
        if self.masks.dtype != np.bool_ or self.masks.shape[:2] != (b, k):
            raise ValueError(
                f"masks must be bool (B, K, H, W) matching scores {self.scores.shape}, "
                f"got {self.masks.dtype} {self.masks.shape}"
            )
        if self.low_res_logits.shape[:2] != (b, k):
            raise ValueError(
                f"low_res_logits must be (B, K, h, w), got {self.low_res_logits.shape}"
            )
        if self.object_score_logits is not None and self.object_score_logits.shape != (b,):
            raise ValueError(
                f"object_score_logits must be (B,), got {self.object_score_logits.shape}"
            )

    def best(self) -> tuple[np.ndarray, np.ndarray]:
        """The highest-scoring mask of each prompt set: bool ``(B, H, W)`` and ``(B,)``."""
        idx = np.argmax(self.scores, axis=1)
        rows = np.arange(len(idx))
        return self.masks[rows, idx], self.scores[rows, idx]
