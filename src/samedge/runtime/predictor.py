"""The torch-free predictor: encode an image once, then decode each prompt in milliseconds."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from ..artifacts import ModelArtifact
from ..imageio import ImageLike, load_image
from .graphs import ModelGraphs
from .loaded import LoadedModel
from .postprocess import select_masks, upscale_masks
from .preprocess import preprocess
from .prompts import as_array, normalize_prompts
from .providers import ProviderSettings
from .types import ImageEmbedding, MaskPrediction

if TYPE_CHECKING:
    from ..saliency import AutoSegmentation, SaliencyBackend


class Predictor(LoadedModel[ModelGraphs]):
    """One exported model, ready to segment: :meth:`encode` an image once, then
    :meth:`predict` masks for each prompt.

    Use :meth:`from_pretrained` to create one. The predictor holds no per-image state:
    :meth:`encode` returns an immutable :class:`ImageEmbedding` that :meth:`predict` takes,
    so one predictor serves many images and threads of control. Its sessions are
    :attr:`graphs` (:class:`samedge.runtime.graphs.ModelGraphs`), which segment everything
    and the benchmark call directly; :meth:`close`, or the end of a ``with`` block, releases
    them.
    """

    def open_graphs(
        self,
        artifact: ModelArtifact,
        providers: str | Sequence[str] | None,
        threads: int | None,
        provider_settings: ProviderSettings | None,
    ) -> ModelGraphs:
        return ModelGraphs(artifact, providers, threads, provider_settings)

    def encode(self, image: ImageLike, color: Literal["RGB", "BGR"] = "RGB") -> ImageEmbedding:
        """Run the image encoder (and the decoder's per-image context) once.

        Args:
            image: path, PIL image or ``H x W x 3`` uint8 array (see
                :func:`samedge.imageio.load_image`).
            color: channel order of an array input.
        """
        rgb = load_image(image, color=color)
        tensor, input_size = preprocess(rgb, self.spec)
        return self.encode_preprocessed(tensor, input_size, rgb.shape[:2])

    def segment_auto(
        self, image: ImageLike, saliency: SaliencyBackend | str = "classic"
    ) -> AutoSegmentation:
        """Segment the most salient object of ``image`` with no prompt: five positive clicks
        from :mod:`samedge.saliency` (SqueezeSAM's rule), predicted together.

        Args:
            image: path, PIL image or ``H x W x 3`` uint8 RGB array.
            saliency: ``"classic"``, ``"u2netp"`` or a
                :class:`samedge.saliency.SaliencyBackend`.

        Returns:
            :class:`samedge.saliency.AutoSegmentation`: the clicks (``.prompt``), the mask
            (``.mask``) and the embedding, to refine with more clicks.

        Raises:
            samedge.saliency.NoSalientObjectError: no salient blob (before encoding).
        """
        from ..saliency import segment_auto

        return segment_auto(self, image, saliency)

    def encode_preprocessed(
        self, tensor: np.ndarray, input_size: tuple[int, int], original_size: tuple[int, int]
    ) -> ImageEmbedding:
        """Run the encoder on the output of :func:`samedge.runtime.preprocess.preprocess`."""
        return self.graphs.encode(tensor, input_size, original_size)

    def open_parallel_decoding(self) -> None:
        """Open now the sessions and threads that the first :meth:`predict` with several
        prompt sets (``boxes`` of more than one box, batched points) opens on the CPU, for a
        real-time loop whose first such frame should not wait for them (see
        :meth:`samedge.runtime.graphs.ModelGraphs.open_parallel_decoding`)."""
        self.graphs.open_parallel_decoding()

    def predict(
        self,
        embedding: ImageEmbedding,
        points: Any = None,
        labels: Any = None,
        box: Any = None,
        boxes: Any = None,
        mask_input: Any = None,
        multimask_output: bool = True,
        best_only: bool = False,
    ) -> MaskPrediction:
        """Masks for one or more prompt sets on an encoded image.

        Args:
            embedding: from :meth:`encode`.
            points: ``(N, 2)`` XY pixels for one prompt set, or ``(B, N, 2)`` for ``B``.
            labels: ``(N,)`` or ``(B, N)``; 1 foreground, 0 background.
            box: one XYXY box ``(4,)``.
            boxes: ``(B, 4)`` XYXY boxes, one prompt set (and one object) per box.
            mask_input: low-res logits of a previous prediction to refine, e.g.
                ``previous.low_res_logits[0, [best]]``.
            multimask_output: three candidate masks per set (best for a single click),
                or one.
            best_only: keep only the highest-scoring of the candidates (``K = 1``); only
                that mask is upscaled to full resolution, which is what an interactive click
                needs.

        Returns:
            :class:`MaskPrediction` with ``K = 3`` or ``1`` masks per set, at the original
            resolution.

        Raises:
            TypeError: ``embedding`` is not an :class:`ImageEmbedding` (an image, a path).
            samedge.errors.PromptError: a malformed prompt
                (:func:`samedge.runtime.prompts.normalize_prompts`).
        """
        if not isinstance(embedding, ImageEmbedding):
            raise TypeError(
                f"predict() takes the ImageEmbedding that encode() returned, got "
                f"{type(embedding).__name__}: predict(predictor.encode(image), ...)"
            )
        prompts = normalize_prompts(
            self.spec,
            embedding.original_size,
            embedding.input_size,
            points=points,
            labels=labels,
            box=box,
            boxes=boxes,
            mask_input=mask_input,
        )
        low_res, iou, obj = self.graphs.decode(embedding, prompts)
        logits, scores = select_masks(low_res, iou, self.spec, multimask_output)
        if best_only and logits.shape[1] > 1:
            rows = np.arange(len(scores))
            pick = np.argmax(scores, axis=1)
            logits, scores = logits[rows, pick][:, None], scores[rows, pick][:, None]
        spec = self.spec
        masks = upscale_masks(
            logits, spec, embedding.input_size, embedding.original_size, spec.mask_threshold
        )
        if spec.low_res_clamp is not None:
            logits = np.clip(logits, -spec.low_res_clamp, spec.low_res_clamp)
        return MaskPrediction(
            masks=masks,
            scores=np.ascontiguousarray(scores, dtype=np.float32),
            low_res_logits=np.ascontiguousarray(logits, dtype=np.float32),
            object_score_logits=obj,
        )


class ImagePredictor:
    """The official ``SamPredictor`` interface on top of :class:`Predictor`.

    ``set_image`` encodes once; ``predict`` returns ``(masks, scores, low_res_logits)`` as
    NumPy arrays shaped like the official predictors' (``K x H x W``, ``K``,
    ``K x 256 x 256`` for one prompt set).
    """

    def __init__(self, predictor: Predictor) -> None:
        self.predictor = predictor
        self.embedding: ImageEmbedding | None = None

    @classmethod
    def from_pretrained(cls, name_or_dir: str | os.PathLike[str], **kwargs: Any) -> ImagePredictor:
        return cls(Predictor.from_pretrained(name_or_dir, **kwargs))

    def set_image(self, image: ImageLike, image_format: Literal["RGB", "BGR"] = "RGB") -> None:
        self.embedding = self.predictor.encode(image, color=image_format)

    def reset_image(self) -> None:
        self.embedding = None

    def predict(
        self,
        point_coords: Any = None,
        point_labels: Any = None,
        box: Any = None,
        mask_input: Any = None,
        multimask_output: bool = True,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if self.embedding is None:
            raise RuntimeError("call set_image(...) before predict(...)")
        box_arr = None if box is None else as_array(box, "box")
        one = boxes = None  # normalize_prompts checks both: one box, or B boxes
        if box_arr is not None and box_arr.ndim <= 1:
            one = box_arr
        elif box_arr is not None:  # (B, 4), or SAM 2's corners (B, 2, 2)
            boxes = box_arr.reshape(-1, 4) if box_arr.size % 4 == 0 else box_arr
        many = boxes is not None and len(boxes) > 1
        result = self.predictor.predict(
            self.embedding,
            points=point_coords,
            labels=point_labels,
            box=one,
            boxes=boxes,
            mask_input=mask_input,
            multimask_output=multimask_output,
        )
        if many or (point_coords is not None and np.ndim(point_coords) == 3):
            return result.masks, result.scores, result.low_res_logits
        return result.masks[0], result.scores[0], result.low_res_logits[0]


__all__ = ["ImagePredictor", "Predictor"]
