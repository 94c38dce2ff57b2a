"""The model registry: every model samedge knows, by name.

CLI choices, web UI dropdowns, benchmarks and evaluation all read this list.
"""

from __future__ import annotations

import difflib
import fnmatch

from .errors import ModelNotFoundError
from .specs import AmgDefaults, Checkpoint, ModelSpec, VideoSpec

_SAM_URL = "https://dl.fbaipublicfiles.com/segment_anything/"
_SAM2_URL = "https://dl.fbaipublicfiles.com/segment_anything_2/092824/"
_MOBILE_SAM_URL = "https://github.com/ChaoningZhang/MobileSAM/raw/master/weights/mobile_sam.pt"
_EFFICIENTSAM_URL = "https://github.com/yformer/EfficientSAM/raw/main/weights/"
#: The official code (no package): what tests and ``bench --compare-torch`` import.
_EFFICIENTSAM_SOURCE = (
    "a checkout of https://github.com/yformer/EfficientSAM "
    "(commit d525f622e6f640acf5a0fc37c7ca1f243da5bde0)"
)
_EFFICIENTVIT_SAM_URL = "https://huggingface.co/mit-han-lab/efficientvit-sam/resolve/main/"


def _sam(name: str, title: str, builder: str, url: str, sha: str, size: int) -> ModelSpec:
    return ModelSpec(
        name=name,
        family="sam",
        title=title,
        checkpoint=Checkpoint(url=_SAM_URL + url, sha256=sha, size_bytes=size),
        licence="Apache-2.0",
        official_builder=builder,
        resize="longest_side_pad",
        pad_point="no_box",
        box_first=False,
        reference_package="segment_anything",
        amg=AmgDefaults(pred_iou_thresh=0.88),
        small_regions="full_res",
        int8_attention_openvino=True,  # ViT-B on OpenVINO: 2.84x fp32, 1.93x without
    )


def _sam2(name: str, title: str, config: str, sha: str, size: int) -> ModelSpec:
    return ModelSpec(
        name=name,
        family="sam2",
        title=title,
        checkpoint=Checkpoint(url=f"{_SAM2_URL}{name}.pt", sha256=sha, size_bytes=size),
        licence="Apache-2.0",
        official_builder=config,
        resize="stretch",
        high_res_shapes=((32, 256, 256), (64, 128, 128)),
        pad_point="always",
        box_first=True,
        low_res_clamp=32.0,
        stability_delta=0.05,
        stability_thresh=0.98,
        has_object_score=True,
        reference_package="sam2",
        # SAM2AutomaticMaskGenerator's default; SAM's generator keeps 0.88.
        amg=AmgDefaults(pred_iou_thresh=0.8, generator="SAM2AutomaticMaskGenerator"),
        small_regions="low_res",
        int8_attention_openvino=True,  # 2.1 tiny on OpenVINO: 2.41x fp32, 1.51x without
        video=VideoSpec(),  # the four SAM 2.1 configs track alike (checked at export)
    )


def _efficientvit_sam(variant: str, image_size: int, size: int | None) -> ModelSpec:
    """EfficientViT-SAM: SAM's prompt encoder and mask decoder (1024-pixel prompt frame,
    64 x 64 embedding) behind an EfficientViT encoder run at ``image_size`` (L0-L2: 512,
    XL0/XL1: 1024), with SAM's resize (Pillow bilinear, longest side), mean/std and padding
    (``EfficientViTSam.transform``)."""
    name = f"efficientvit_sam_{variant}"
    return ModelSpec(
        name=name,
        family="efficientvit_sam",
        title=f"EfficientViT-SAM {variant.upper()}",
        # The authors publish no sha256 for their Hugging Face files.
        checkpoint=Checkpoint(f"{_EFFICIENTVIT_SAM_URL}{name}.pt", sha256=None, size_bytes=size),
        licence="Apache-2.0",
        official_builder=f"efficientvit-sam-{variant}",  # key of the official model zoo
        image_size=image_size,
        prompt_frame=1024,
        resize="longest_side_pad",
        pad_point="no_box",
        box_first=False,
        reference_package="efficientsam",
        amg=AmgDefaults(pred_iou_thresh=0.88, generator="EfficientViTSamAutomaticMaskGenerator"),
        small_regions="full_res",
        # Its linear layers are 1 x 1 convolutions and its MatMuls multiply two activations
        # (linear attention): without Conv, static INT8 would quantise nothing.
        int8_ops=("Conv", "MatMul", "Gemm"),
    )


def _efficientsam(variant: str, title: str, builder: str, file: str) -> ModelSpec:
    """EfficientSAM (yformer/EfficientSAM): a ViT encoder pretrained with SAMI, built in
    samedge's own code (:mod:`samedge.export.efficientsam`); images stretched to 1024 x 1024
    without antialiasing, at most 6 points per prompt, no mask prompt, masks upscaled
    bicubically."""
    return ModelSpec(
        name=f"efficientsam_{variant}",
        family="efficientsam",
        title=title,
        # Weights in the repository (ViT-S zipped, as GitHub caps files at 100 MB); the
        # authors publish neither a sha256 nor the sizes.
        checkpoint=Checkpoint(url=_EFFICIENTSAM_URL + file, sha256=None, size_bytes=None),
        licence="Apache-2.0",
        official_builder=builder,
        resize="stretch",
        resize_antialias=False,
        # The official model pads every prompt to 6 points itself: no extra padding point
        # is needed, and the graph turns any the host adds into the official padding.
        pad_point="no_box",
        box_first=True,  # corners first, so a box survives the cut to 6 points
        reference_package="efficient_sam",
        reference_source=_EFFICIENTSAM_SOURCE,
        mask_prompt=False,
        max_points=6,
        mask_upscale="bicubic",
        # EfficientSAM has no official automatic mask generator: SAM's defaults.
        amg=AmgDefaults(pred_iou_thresh=0.88, generator=None),
        small_regions="full_res",
        # Global attention over 4,096 tokens is ~75 % of the encoder: on OpenVINO its INT8
        # graph quantises it too (ES-Ti: 2.4-2.65x fp32, 1.15x without; docs/precision.md).
        int8_attention_openvino=True,
    )


_MODELS: tuple[ModelSpec, ...] = (
    _sam(
        "sam_vit_b",
        "SAM ViT-B",
        "vit_b",
        "sam_vit_b_01ec64.pth",
        "ec2df62732614e57411cdcf32a23ffdf28910380d03139ee0f4fcbe91eb8c912",
        375_042_383,
    ),
    _sam(
        "sam_vit_l",
        "SAM ViT-L",
        "vit_l",
        "sam_vit_l_0b3195.pth",
        "3adcc4315b642a4d2101128f611684e8734c41232a17c648ed1693702a49a622",
        1_249_524_607,
    ),
    _sam(
        "sam_vit_h",
        "SAM ViT-H",
        "vit_h",
        "sam_vit_h_4b8939.pth",
        "a7bf3b02f3ebf1267aba913ff637d9a2d5c33d3173bb679e46d9f338c26f262e",
        2_564_550_879,
    ),
    _sam2(
        "sam2.1_hiera_tiny",
        "SAM 2.1 Hiera-T",
        "configs/sam2.1/sam2.1_hiera_t.yaml",
        "7402e0d864fa82708a20fbd15bc84245c2f26dff0eb43a4b5b93452deb34be69",
        156_008_466,
    ),
    _sam2(
        "sam2.1_hiera_small",
        "SAM 2.1 Hiera-S",
        "configs/sam2.1/sam2.1_hiera_s.yaml",
        "6d1aa6f30de5c92224f8172114de081d104bbd23dd9dc5c58996f0cad5dc4d38",
        184_416_285,
    ),
    _sam2(
        "sam2.1_hiera_base_plus",
        "SAM 2.1 Hiera-B+",
        "configs/sam2.1/sam2.1_hiera_b+.yaml",
        "a2345aede8715ab1d5d31b4a509fb160c5a4af1970f199d9054ccfb746c004c5",
        323_606_802,
    ),
    _sam2(
        "sam2.1_hiera_large",
        "SAM 2.1 Hiera-L",
        "configs/sam2.1/sam2.1_hiera_l.yaml",
        "2647878d5dfa5098f2f8649825738a9345572bae2d4350a2468587ece47dd318",
        898_083_611,
    ),
    # SAM's prompt encoder, mask decoder and preprocessing behind a TinyViT-5M encoder; the
    # official package is segment_anything's API (sam_model_registry["vit_t"]).
    ModelSpec(
        name="mobile_sam",
        family="mobile_sam",
        title="MobileSAM (TinyViT)",
        # The authors publish no sha256; the size is the one commonly stated for this file.
        checkpoint=Checkpoint(url=_MOBILE_SAM_URL, sha256=None, size_bytes=40_728_226),
        licence="Apache-2.0",
        official_builder="vit_t",
        resize="longest_side_pad",
        pad_point="no_box",
        box_first=False,
        reference_package="mobile_sam",
        amg=AmgDefaults(pred_iou_thresh=0.88),  # mobile_sam's SamAutomaticMaskGenerator
        small_regions="full_res",
        # TinyViT's convolutions (patch embedding, MBConv stages) in INT8 too on OpenVINO:
        # 1.65x against 1.41x with the linear layers only (docs/precision.md).
        int8_ops_openvino=("Conv", "MatMul", "Gemm"),
    ),
    # No size is given for the Hugging Face files by the authors either (see Checkpoint).
    _efficientvit_sam("l0", 512, None),
    _efficientvit_sam("l1", 512, None),
    _efficientvit_sam("l2", 512, None),
    _efficientvit_sam("xl0", 1024, None),
    _efficientvit_sam("xl1", 1024, None),
    _efficientsam("ti", "EfficientSAM-Ti", "vit_t", "efficient_sam_vitt.pt"),
    _efficientsam("s", "EfficientSAM-S", "vit_s", "efficient_sam_vits.pt.zip"),
)

_BY_NAME: dict[str, ModelSpec] = {spec.name: spec for spec in _MODELS}


def list_models(pattern: str = "*") -> list[str]:
    """Names of registered models matching a shell-style ``pattern`` (e.g. ``"sam2*"``)."""
    return [name for name in _BY_NAME if fnmatch.fnmatchcase(name, pattern)]


def get_spec(name: str) -> ModelSpec:
    """The :class:`ModelSpec` registered under ``name``.

    Raises:
        ModelNotFoundError: unknown name; the message suggests the closest names.
    """
    try:
        return _BY_NAME[name]
    except KeyError:
        raise ModelNotFoundError(unknown_model_message(name)) from None


def unknown_model_message(name: str) -> str:
    close = difflib.get_close_matches(name, list(_BY_NAME), n=3, cutoff=0.4)
    hint = f"did you mean {', '.join(close)}? " if close else ""
    return (
        f"unknown model '{name}': {hint}"
        f"run 'samedge models list' to see all names, or pass an exported model folder"
    )
