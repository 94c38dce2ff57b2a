"""The second model of fidelity mode: another exported folder, or the official PyTorch
predictor (``SamPredictor`` / ``SAM2ImagePredictor``) with the same weights as an export.

torch is imported only when the ``torch`` reference is built.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ..artifacts import ModelArtifact
from ..errors import SamedgeError, require_extra, require_reference
from ..runtime.types import MaskPrediction
from .protocols import PromptPredictor

TORCH = "torch"


class _TorchEmbedding:
    """Handle of the image currently set in the official predictor."""

    def __init__(self, image: np.ndarray) -> None:
        self.image = image


class TorchReference:
    """The official PyTorch predictor behind the :class:`PromptPredictor` protocol.

    The official predictors keep one image; :meth:`encode` sets it and returns a handle,
    and :meth:`predict` sets it again if another image was set in between.
    """

    def __init__(self, official: Any) -> None:
        self._official = official
        self._current: _TorchEmbedding | None = None

    def encode(self, image: np.ndarray) -> _TorchEmbedding:
        import torch

        handle = _TorchEmbedding(image)
        with torch.inference_mode():
            self._official.set_image(image)
        self._current = handle
        return handle

    def predict(
        self,
        embedding: _TorchEmbedding,
        points: Any = None,
        labels: Any = None,
        box: Any = None,
        mask_input: Any = None,
        multimask_output: bool = True,
    ) -> MaskPrediction:
        import torch

        if embedding is not self._current:
            self.encode(embedding.image)
            self._current = embedding
        with torch.inference_mode():
            masks, scores, low_res = self._official.predict(
                point_coords=None if points is None else np.asarray(points, np.float32),
                point_labels=None if labels is None else np.asarray(labels, np.int64),
                box=None if box is None else np.asarray(box, np.float32),
                mask_input=None if mask_input is None else np.asarray(mask_input, np.float32),
                multimask_output=multimask_output,
            )
        return MaskPrediction(
            masks=(np.asarray(masks) > 0.5)[None],
            scores=np.asarray(scores, np.float32)[None],
            low_res_logits=np.asarray(low_res, np.float32)[None],
        )


def _weights_args(artifact: ModelArtifact, checkpoint: str | os.PathLike[str] | None) -> dict:
    weights = artifact.manifest.weights
    source = weights.get("source")
    if source == "random-init":
        return {"seed": int(weights["seed"])}
    if source != "checkpoint":
        raise SamedgeError(
            f"{artifact.folder}: the manifest does not say which weights were exported "
            f"(weights={weights}); re-export the model"
        )
    from ..hub import checkpoint_path, verify_file

    path = Path(checkpoint) if checkpoint else checkpoint_path(artifact.spec)
    if not path.is_file():
        raise SamedgeError(
            f"--against torch needs the checkpoint of {artifact.spec.name} ({path} not found): "
            f"run 'samedge models pull {artifact.spec.name}' or pass --checkpoint PATH"
        )
    expected = weights.get("sha256")
    if expected and not verify_file(path, expected):
        raise SamedgeError(
            f"{path} is not the checkpoint {artifact.folder} was exported from (sha256 differs); "
            f"pass the right one with --checkpoint PATH"
        )
    return {"checkpoint": path}


def torch_reference(
    artifact: ModelArtifact, checkpoint: str | os.PathLike[str] | None = None
) -> TorchReference:
    """The official predictor with the weights recorded in ``artifact``'s manifest.

    Random-init exports are rebuilt from their seed; checkpoint exports load ``checkpoint``
    or the cached checkpoint, whose sha256 must match the manifest's.
    """
    require_extra("torch", "export", "--against torch")
    require_reference(artifact.spec, "--against torch")
    kwargs = _weights_args(artifact, checkpoint)
    from ..export.build import build_model, official_predictor

    model = build_model(artifact.spec, **kwargs)
    return TorchReference(official_predictor(artifact.spec, model))


def load_reference(
    against: str,
    artifact: ModelArtifact,
    checkpoint: str | os.PathLike[str] | None = None,
    providers: Any = None,
    threads: int | None = None,
) -> tuple[PromptPredictor, str]:
    """The model to compare ``artifact`` with, and its display name.

    Args:
        against: ``"torch"`` or another exported model (folder or registered name).
    """
    if against == TORCH:
        return torch_reference(artifact, checkpoint), f"torch ({artifact.spec.name})"
    from ..runtime.predictor import Predictor

    other = Predictor.from_pretrained(against, providers=providers, threads=threads)
    return other, f"{other.spec.name} ({other.artifact.folder})"
