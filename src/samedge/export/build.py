"""Building the official PyTorch models, from a checkpoint or from seeded random weights."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from ..errors import ExportError
from ..specs import ModelSpec
from .torch_compat import ensure_torchvision

#: Standard deviation of the noise added to constant-initialised tensors by ``random_init``.
RANDOM_INIT_STD = 0.02


def build_official(spec: ModelSpec) -> torch.nn.Module:
    """The model with the official package's default initialisation, in eval mode on CPU."""
    ensure_torchvision()
    if spec.family == "sam":
        from segment_anything import sam_model_registry

        model = sam_model_registry[spec.official_builder](checkpoint=None)
    else:
        from sam2.build_sam import build_sam2

        # apply_postprocessing=True (the default) sets the same dynamic-multimask options as
        # the official image predictor; samedge reproduces them on the host (ModelSpec).
        model = build_sam2(spec.official_builder, ckpt_path=None, device="cpu", mode="eval")
    return model.eval()


def official_predictor_class(spec: ModelSpec) -> type:
    """The official image predictor class (``SamPredictor`` for SAM,
    ``SAM2ImagePredictor`` for SAM 2), imported here: what ``eval --against torch`` and
    ``bench --compare-torch`` compare with."""
    if spec.family == "sam":
        from segment_anything import SamPredictor

        return SamPredictor
    from sam2.sam2_image_predictor import SAM2ImagePredictor

    return SAM2ImagePredictor


def official_mask_generator_class(spec: ModelSpec) -> type:
    """The official automatic mask generator class (``SamAutomaticMaskGenerator``,
    ``SAM2AutomaticMaskGenerator``) that :class:`samedge.amg.MaskGenerator` reproduces."""
    if spec.family == "sam":
        from segment_anything import SamAutomaticMaskGenerator

        return SamAutomaticMaskGenerator
    from sam2.automatic_mask_generator import SAM2AutomaticMaskGenerator

    return SAM2AutomaticMaskGenerator


def official_predictor(spec: ModelSpec, model: torch.nn.Module) -> Any:
    """The official image predictor around ``model`` (see :func:`official_predictor_class`)."""
    return official_predictor_class(spec)(model)


#: Where the official predictors resize the image and upscale the masks, as
#: ``(attribute of the predictor, method of that object)``; ``"__call__"`` means the object
#: itself is called. The benchmark times these calls without changing their code.
OFFICIAL_STAGES: dict[str, dict[str, tuple[str, str]]] = {
    "sam": {"pre": ("transform", "apply_image"), "post": ("model", "postprocess_masks")},
    "sam2": {"pre": ("_transforms", "__call__"), "post": ("_transforms", "postprocess_masks")},
}


def official_stages(spec: ModelSpec) -> dict[str, tuple[str, str]]:
    """``{"pre": (attribute, method), "post": (attribute, method)}`` of
    :func:`official_predictor`'s preprocessing and mask upscaling (see
    :data:`OFFICIAL_STAGES`)."""
    return OFFICIAL_STAGES[spec.family]


def randomize_(model: torch.nn.Module, seed: int) -> None:
    """Give every parameter seeded, non-degenerate values.

    Default initialisation leaves many tensors constant (zero biases, unit norms, zero
    positional and relative-position tables), which would let an export bug in those paths
    go unnoticed. Every parameter gets ``N(0, RANDOM_INIT_STD)`` noise added to its default
    value, drawn in name order from one generator seeded with ``seed``.
    """
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, param in sorted(model.named_parameters(), key=lambda kv: kv[0]):
            noise = torch.randn(param.shape, generator=gen, dtype=torch.float32)
            param.add_(noise.to(param.dtype) * RANDOM_INIT_STD)


def build_model(
    spec: ModelSpec, checkpoint: str | os.PathLike[str] | None = None, seed: int | None = None
) -> torch.nn.Module:
    """Build ``spec``'s model with weights from ``checkpoint`` or from ``seed``.

    Exactly one of ``checkpoint`` and ``seed`` must be given. The result is deterministic for
    a given seed, so tests can rebuild the same random model the exporter used.
    """
    if (checkpoint is None) == (seed is None):
        raise ExportError("give either a checkpoint or a random-init seed, not both or neither")
    if seed is not None:
        torch.manual_seed(seed)
    model = build_official(spec)
    if seed is not None:
        randomize_(model, seed)
    else:
        load_checkpoint_(model, Path(checkpoint), spec)  # type: ignore[arg-type]
    return model


def load_checkpoint_(model: torch.nn.Module, path: Path, spec: ModelSpec) -> None:
    """Load official weights into ``model`` (``weights_only=True``: no code is executed)."""
    if not path.is_file():
        raise ExportError(f"checkpoint not found: {path}")
    try:
        state: Any = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ExportError(
            f"cannot read checkpoint {path} as PyTorch weights ({type(exc).__name__}); "
            f"download it again with 'samedge models pull {spec.name}'"
        ) from None
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]  # SAM 2 checkpoints wrap the state dict
    if not isinstance(state, dict):
        raise ExportError(f"{path} does not contain a state dict")
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ExportError(
            f"{path.name} does not match {spec.name}: {len(missing)} missing and "
            f"{len(unexpected)} unexpected tensors (e.g. {(missing or unexpected)[0]}); "
            f"is it the checkpoint of another model?"
        )
