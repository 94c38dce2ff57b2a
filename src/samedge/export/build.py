"""Building the official PyTorch models, from a checkpoint or from seeded random weights."""

from __future__ import annotations

import importlib
import os
import warnings
from pathlib import Path
from types import ModuleType
from typing import Any

import torch

from ..errors import ExportError
from ..specs import ModelSpec
from .torch_compat import ensure_torchvision

#: Standard deviation of the noise added to constant-initialised tensors by ``random_init``.
RANDOM_INIT_STD = 0.02

#: Families whose official package has segment_anything's API: ``sam_model_registry``,
#: ``SamPredictor``, ``SamAutomaticMaskGenerator``, and a ``Sam`` module with
#: ``image_encoder``, ``prompt_encoder`` and ``mask_decoder``. MobileSAM's ``mobile_sam`` is
#: segment_anything with a TinyViT image encoder added (``sam_model_registry["vit_t"]``).
SAM_API_FAMILIES = frozenset({"sam", "mobile_sam"})


def sam_api(spec: ModelSpec) -> bool:
    """Whether ``spec``'s official package has segment_anything's API (see
    :data:`SAM_API_FAMILIES`); otherwise it is SAM 2's."""
    return spec.family in SAM_API_FAMILIES


def reference_module(spec: ModelSpec) -> ModuleType:
    """``spec.reference_package``, imported (torchvision made importable first)."""
    ensure_torchvision()
    with warnings.catch_warnings():
        # mobile_sam's TinyViT imports timm through paths timm deprecated, and registers
        # TinyViT model names timm already has; neither affects the networks built here.
        warnings.filterwarnings("ignore", "Importing from timm", FutureWarning)
        warnings.filterwarnings("ignore", "Overwriting tiny_vit", UserWarning)
        return importlib.import_module(spec.reference_package)


def build_official(spec: ModelSpec) -> torch.nn.Module:
    """The model with the official package's default initialisation, in eval mode on CPU."""
    package = reference_module(spec)
    if sam_api(spec):
        model = package.sam_model_registry[spec.official_builder](checkpoint=None)
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
    if sam_api(spec):
        return reference_module(spec).SamPredictor
    from sam2.sam2_image_predictor import SAM2ImagePredictor

    return SAM2ImagePredictor


def official_mask_generator_class(spec: ModelSpec) -> type:
    """The official automatic mask generator class (``SamAutomaticMaskGenerator``,
    ``SAM2AutomaticMaskGenerator``) that :class:`samedge.amg.MaskGenerator` reproduces."""
    if sam_api(spec):
        return reference_module(spec).SamAutomaticMaskGenerator
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
    "mobile_sam": {"pre": ("transform", "apply_image"), "post": ("model", "postprocess_masks")},
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
    # eval() again once the weights are final: TinyViT's attention (MobileSAM) computes its
    # eval-mode bias table ``ab`` from ``attention_biases`` in ``train(False)``, so a model
    # put in eval mode before its weights changed would keep the old table (as the official
    # README does, which calls eval() after building with the checkpoint).
    return model.eval()


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
