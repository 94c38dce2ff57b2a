"""Building the official PyTorch models, from a checkpoint or from seeded random weights."""

from __future__ import annotations

import importlib
import io
import os
import warnings
import zipfile
from pathlib import Path
from types import ModuleType
from typing import Any, TypeAlias

import torch

from ..errors import ExportError
from ..specs import ModelSpec
from .torch_compat import ensure_torchvision

#: An official model or one of its parts (segment_anything's, sam2's, ...), as the export
#: wrappers reach into it. Those packages ship no type information, and torch types every
#: attribute an ``nn.Module`` subclass does not declare as ``Tensor | Module`` (the return
#: type of ``Module.__getattr__``), so ``model.mask_decoder.transformer.layers[0]`` and
#: ``attn.num_heads`` could not be type-checked anyway: such values are ``Any``.
Official: TypeAlias = Any

#: Standard deviation of the noise added to constant-initialised tensors by ``random_init``.
RANDOM_INIT_STD = 0.02

#: Families whose official model is a segment_anything ``Sam``-like module: ``image_encoder``,
#: ``prompt_encoder`` and ``mask_decoder`` (SAM's). MobileSAM's ``mobile_sam`` is
#: segment_anything with a TinyViT image encoder added (``sam_model_registry["vit_t"]``);
#: EfficientViT-SAM's ``EfficientViTSam`` puts SAM's prompt encoder and mask decoder behind
#: an EfficientViT encoder.
SAM_API_FAMILIES = frozenset({"sam", "mobile_sam", "efficientvit_sam"})

#: Official predictor and automatic mask generator of the families whose package does not
#: export segment_anything's ``SamPredictor`` and ``SamAutomaticMaskGenerator`` at its top
#: level, as ``"module:Class"``.
OFFICIAL_CLASSES: dict[str, tuple[str, str]] = {
    "sam2": (
        "sam2.sam2_image_predictor:SAM2ImagePredictor",
        "sam2.automatic_mask_generator:SAM2AutomaticMaskGenerator",
    ),
    "efficientvit_sam": (
        "efficientsam.models.efficientvit.sam:EfficientViTSamPredictor",
        "efficientsam.models.efficientvit.sam:EfficientViTSamAutomaticMaskGenerator",
    ),
}


def sam_api(spec: ModelSpec) -> bool:
    """Whether ``spec``'s official model has segment_anything's modules (see
    :data:`SAM_API_FAMILIES`); otherwise it is SAM 2's."""
    return spec.family in SAM_API_FAMILIES


def _official_class(spec: ModelSpec, index: int, default: str) -> type:
    """Class ``index`` of :data:`OFFICIAL_CLASSES` for ``spec``, else ``default`` of
    ``spec.reference_package``."""
    package = reference_module(spec)
    if spec.family not in OFFICIAL_CLASSES:
        return getattr(package, default)
    module, name = OFFICIAL_CLASSES[spec.family][index].split(":")
    return getattr(importlib.import_module(module), name)


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
    """The model with the official package's default initialisation, in eval mode on CPU
    (EfficientSAM, which has no package: samedge's own network, see
    :mod:`samedge.export.efficientsam`)."""
    if spec.family == "efficientsam":
        from .efficientsam import build_efficientsam

        return build_efficientsam(spec.official_builder)
    package = reference_module(spec)
    if spec.family == "efficientvit_sam":
        from efficientsam.sam_model_zoo import create_efficientvit_sam_model

        # As the official zoo builds it (it also sets every norm's eps to 1e-6).
        model = create_efficientvit_sam_model(spec.official_builder, pretrained=False)
    elif sam_api(spec):
        model = package.sam_model_registry[spec.official_builder](checkpoint=None)
    else:
        from sam2.build_sam import build_sam2

        # apply_postprocessing=True (the default) sets the same dynamic-multimask options as
        # the official image predictor; samedge reproduces them on the host (ModelSpec).
        model = build_sam2(
            spec.official_builder,
            ckpt_path=None,
            device="cpu",
            mode="eval",
            hydra_overrides_extra=sam2_overrides(spec),
        )
    return model.eval()


def sam2_overrides(spec: ModelSpec) -> list[str]:
    """Hydra overrides that build SAM 2's official config for ``spec``: its input size,
    which differs from the config's only for :meth:`ModelSpec.at_image_size` variants."""
    return [f"++model.image_size={spec.image_size}"]


def official_predictor_class(spec: ModelSpec) -> type:
    """The official image predictor class (``SamPredictor`` for SAM and MobileSAM,
    ``SAM2ImagePredictor`` for SAM 2, ``EfficientViTSamPredictor``), imported here: what
    ``eval --against torch`` and ``bench --compare-torch`` compare with."""
    if spec.family == "efficientsam":
        from .efficientsam_example import ExamplePredictor

        return ExamplePredictor
    return _official_class(spec, 0, "SamPredictor")


def has_official_mask_generator(spec: ModelSpec) -> bool:
    """Whether ``spec``'s family publishes an automatic mask generator (EfficientSAM does
    not: its segment everything defaults are SAM's, see ``ModelSpec.amg``)."""
    return spec.family != "efficientsam"


def official_mask_generator_class(spec: ModelSpec) -> type:
    """The official automatic mask generator class (``SamAutomaticMaskGenerator``,
    ``SAM2AutomaticMaskGenerator``, ``EfficientViTSamAutomaticMaskGenerator``) that
    :class:`samedge.amg.MaskGenerator` reproduces.

    Raises:
        ExportError: the family has none (:func:`has_official_mask_generator`).
    """
    if not has_official_mask_generator(spec):
        raise ExportError(f"{spec.title} has no official automatic mask generator")
    return _official_class(spec, 1, "SamAutomaticMaskGenerator")


def official_predictor(spec: ModelSpec, model: torch.nn.Module) -> Any:
    """The official image predictor around ``model`` (see :func:`official_predictor_class`).

    ``SAM2ImagePredictor`` writes the feature-map sizes of a 1024-pixel input into
    ``_bb_feat_sizes`` instead of reading them from the model; for a model at another input
    size (:meth:`ModelSpec.at_image_size`) they are set from the spec, the only change."""
    predictor = official_predictor_class(spec)(model)
    if hasattr(predictor, "_bb_feat_sizes"):
        maps = [*spec.high_res_shapes, spec.embedding_shape]
        predictor._bb_feat_sizes = [(h, w) for _, h, w in maps]
    return predictor


#: Where the official predictors resize the image and upscale the masks, as
#: ``(attribute of the predictor, method of that object)``; ``"__call__"`` means the object
#: itself is called. The benchmark times these calls without changing their code.
OFFICIAL_STAGES: dict[str, dict[str, tuple[str, str]]] = {
    "sam": {"pre": ("transform", "apply_image"), "post": ("model", "postprocess_masks")},
    "mobile_sam": {"pre": ("transform", "apply_image"), "post": ("model", "postprocess_masks")},
    "sam2": {"pre": ("_transforms", "__call__"), "post": ("_transforms", "postprocess_masks")},
    # EfficientViTSamPredictor.set_image calls model.transform (resize, normalise, pad).
    "efficientvit_sam": {"pre": ("model", "transform"), "post": ("model", "postprocess_masks")},
    # ExamplePredictor: EfficientSam.preprocess, then the bicubic upscaling of the example.
    "efficientsam": {"pre": ("model", "preprocess"), "post": ("upscale", "__call__")},
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


def _unzipped(path: Path) -> Path | io.BytesIO:
    """``path``, or the one ``.pt`` file inside it where it is a zip archive holding one
    (EfficientSAM-S's ``efficient_sam_vits.pt.zip``). A PyTorch checkpoint is itself a zip
    archive, but of ``data.pkl`` and tensor records, never of a ``.pt`` file."""
    if not zipfile.is_zipfile(path):
        return path
    with zipfile.ZipFile(path) as archive:
        inner = [n for n in archive.namelist() if n.endswith((".pt", ".pth"))]
        if len(inner) != 1:
            return path
        return io.BytesIO(archive.read(inner[0]))


def load_checkpoint_(model: torch.nn.Module, path: Path, spec: ModelSpec) -> None:
    """Load official weights into ``model`` (``weights_only=True``: no code is executed)."""
    if not path.is_file():
        raise ExportError(f"checkpoint not found: {path}")
    try:
        state: Any = torch.load(_unzipped(path), map_location="cpu", weights_only=True)
    except Exception as exc:
        from ..hub import checkpoint_path

        fix = (
            f"download it again with 'samedge models pull {spec.name} --force'"
            if path.resolve() == checkpoint_path(spec).resolve()
            else f"is it a PyTorch checkpoint? 'samedge models pull {spec.name}' downloads "
            f"the official one"
        )
        raise ExportError(
            f"cannot read checkpoint {path} as PyTorch weights ({type(exc).__name__}); {fix}"
        ) from None
    for key in ("model", "state_dict"):
        # SAM 2 checkpoints wrap the state dict in "model"; EfficientViT's loader
        # (load_state_dict_from_file) unwraps a "state_dict" entry.
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise ExportError(f"{path} does not contain a state dict")
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ExportError(
            f"{path.name} does not match {spec.name}: {len(missing)} missing and "
            f"{len(unexpected)} unexpected tensors (e.g. {(missing or unexpected)[0]}); "
            f"is it the checkpoint of another model?"
        )
