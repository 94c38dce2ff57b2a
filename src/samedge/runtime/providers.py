"""Execution providers as plain data: names, packages, options. Imports neither
onnxruntime nor torch.

Providers are given as short names (``cpu``, ``cuda``, ``tensorrt``, ``openvino``,
``coreml``, ``dml``) or full ONNX Runtime names, in order of preference.
:func:`samedge.runtime.session.resolve_providers` checks them against the installed build.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..specs import HAS_MASK_INPUT, MASK_INPUT, POINT_COORDS, POINT_LABELS

PROVIDER_NAMES = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
    "openvino": "OpenVINOExecutionProvider",
    "coreml": "CoreMLExecutionProvider",
    "dml": "DmlExecutionProvider",
}

#: onnxruntime distributions on PyPI; more than one installed at once is a broken setup
#: (they share the ``onnxruntime`` import name and the last one installed wins).
ORT_DISTRIBUTIONS = (
    "onnxruntime",
    "onnxruntime-gpu",
    "onnxruntime-openvino",
    "onnxruntime-directml",
    "onnxruntime-silicon",
    "onnxruntime-qnn",
)

#: The distribution that provides each provider.
PROVIDER_PACKAGES = {
    "CUDAExecutionProvider": "onnxruntime-gpu",
    "TensorrtExecutionProvider": "onnxruntime-gpu",
    "OpenVINOExecutionProvider": "onnxruntime-openvino",
    "DmlExecutionProvider": "onnxruntime-directml",
    "CoreMLExecutionProvider": "onnxruntime",
}

#: Providers that keep tensors in GPU memory: the predictor binds their inputs and outputs
#: (IOBinding) so that an image embedding stays on the GPU between encode and decode.
DEVICE_PROVIDERS = {"CUDAExecutionProvider": "cuda", "TensorrtExecutionProvider": "cuda"}

#: ``Shape`` is one tensor shape; a profile maps input names to (min, opt, max) shapes.
Shape = tuple[int, ...]
ShapeProfile = Mapping[str, tuple[Shape, Shape, Shape]]


def raw_providers(providers: str | Sequence[str] | None) -> list[str]:
    """The non-empty items of a provider list as given (``None``: ``["cpu"]``)."""
    if providers is None:
        return ["cpu"]
    items = providers.split(",") if isinstance(providers, str) else list(providers)
    return [p for p in items if p.strip()]


def full_name(provider: str) -> str:
    """ONNX Runtime's name of a short provider name; other names as they are."""
    return PROVIDER_NAMES.get(provider.strip().lower(), provider.strip())


def unknown_provider_message(item: str) -> str:
    return f"unknown execution provider '{item.strip()}': use one of {', '.join(PROVIDER_NAMES)}"


def check_provider_names(providers: str | Sequence[str] | None) -> None:
    """Raise :class:`~samedge.errors.ProviderError` for a name that is neither one of
    :data:`PROVIDER_NAMES` nor an ONNX Runtime provider name (``...ExecutionProvider``,
    which :func:`samedge.runtime.session.resolve_providers` checks against the installed
    build): a typo is refused before any work starts."""
    from ..errors import ProviderError

    for item in raw_providers(providers):
        name = full_name(item)
        if name not in PROVIDER_NAMES.values() and not name.endswith("ExecutionProvider"):
            raise ProviderError(unknown_provider_message(item))


def requested_providers(providers: str | Sequence[str] | None) -> list[str]:
    """The providers asked for (``None``: the CPU), as full ONNX Runtime names where known,
    in order."""
    return [full_name(p) for p in raw_providers(providers)]


#: OpenVINO inference precisions samedge passes on (``None``: exact, fp32 on the CPU).
OPENVINO_PRECISIONS = ("f32", "bf16", "f16")


@dataclass(frozen=True)
class ProviderSettings:
    """Options of the accelerated execution providers; each provider reads its own and the
    CPU provider none.

    Attributes:
        device_id: GPU index (CUDA, TensorRT, DirectML).
        trt_cache: TensorRT engine and timing cache folder (``None``:
            ``<samedge home>/engines/tensorrt``); engines take minutes to build the first
            time and then load from here. Each graph gets its own subfolder.
        trt_fp16: let TensorRT build FP16 engines from fp32 graphs.
        trt_max_points, trt_max_batch: the largest prompt-point count (points, box corners
            and padding point) and prompt batch of the decoder's TensorRT shape profile.
        cudnn_conv_algo_search: ``HEURISTIC`` (default), ``EXHAUSTIVE`` (slower first run,
            sometimes faster convolutions) or ``DEFAULT``.
        openvino_device: OpenVINO ``device_type``: ``CPU``, ``GPU``, ``NPU``, ``AUTO``...
        openvino_precision: OpenVINO's ``INFERENCE_PRECISION_HINT`` for the graphs samedge
            runs on OpenVINO's own runtime: ``None`` keeps fp32 on the CPU (and the device's
            default elsewhere); ``bf16`` (CPUs with AMX or AVX-512 BF16) or ``f16`` trade
            agreement for speed, measured in docs/precision.md and docs/video.md. Not
            passed to ONNX Runtime's OpenVINO provider (``onnxruntime-openvino``), which
            keeps its own default; a warning says so.
        io_binding: bind inputs and outputs on the GPU for CUDA and TensorRT (keeps the
            image embedding on the device between encode and decode).
    """

    device_id: int = 0
    trt_cache: str | os.PathLike[str] | None = None
    trt_fp16: bool = False
    trt_max_points: int = 32
    trt_max_batch: int = 64
    cudnn_conv_algo_search: str = "HEURISTIC"
    openvino_device: str = "CPU"
    openvino_precision: str | None = None
    io_binding: bool = True

    def __post_init__(self) -> None:
        if self.device_id < 0:
            raise ValueError(f"device_id must be >= 0, got {self.device_id}")
        if self.trt_max_points < 2 or self.trt_max_batch < 1:
            raise ValueError("trt_max_points must be >= 2 and trt_max_batch >= 1")
        if self.cudnn_conv_algo_search not in ("HEURISTIC", "EXHAUSTIVE", "DEFAULT"):
            raise ValueError(
                f"cudnn_conv_algo_search must be HEURISTIC, EXHAUSTIVE or DEFAULT, "
                f"got {self.cudnn_conv_algo_search}"
            )
        if self.openvino_precision not in (None, *OPENVINO_PRECISIONS):
            raise ValueError(
                f"openvino_precision must be f32, bf16 or f16, got {self.openvino_precision}"
            )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields (the inverse of ``ProviderSettings(**d)``)."""
        data = dataclasses.asdict(self)
        if data["trt_cache"] is not None:
            data["trt_cache"] = os.fspath(data["trt_cache"])
        return data

    def engine_dir(self, provider: str) -> Path:
        """The cache folder of ``provider`` (``tensorrt`` or ``openvino``)."""
        if provider == "tensorrt" and self.trt_cache is not None:
            return Path(self.trt_cache)
        from ..hub import samedge_home

        return samedge_home() / "engines" / provider


def device_of(provider: str, settings: ProviderSettings | None = None) -> tuple[str, int] | None:
    """``(device, id)`` where a graph run by ``provider`` (the one a session reports first)
    keeps its tensors when that is a GPU (CUDA or TensorRT, with ``settings.io_binding``),
    else ``None``: a plain run on the host."""
    settings = settings or ProviderSettings()
    device = DEVICE_PROVIDERS.get(provider)
    if device is None or not settings.io_binding:
        return None
    return device, settings.device_id


def decoder_shape_profile(
    inputs: Sequence[str], low_res: int, max_points: int = 32, max_batch: int = 64
) -> dict[str, tuple[Shape, Shape, Shape]]:
    """TensorRT ``(min, opt, max)`` shapes of the dynamic ones among a decoder graph's
    ``inputs`` (``spec.decoder_inputs`` or ``spec.mask_decoder_inputs``); ``low_res`` is
    ``spec.low_res_size``.

    The prompt batch ``B`` and point count ``N`` (points, box corners and padding point,
    see :func:`samedge.runtime.prompts.normalize_prompts`) are dynamic: ``point_coords``
    ``(B, N, 2)``, ``point_labels`` ``(B, N)``, ``mask_input`` ``(B, 1, low_res, low_res)``,
    ``has_mask_input`` ``(B,)``; the per-image context inputs are static. Optimised for
    one click (``B = 1``, ``N = 2``); up to ``max_batch`` prompt sets of ``max_points``.
    """

    def shapes(batch: int, points: int) -> dict[str, Shape]:
        return {
            POINT_COORDS: (batch, points, 2),
            POINT_LABELS: (batch, points),
            MASK_INPUT: (batch, 1, low_res, low_res),
            HAS_MASK_INPUT: (batch,),
        }

    low, opt, high = shapes(1, 1), shapes(1, 2), shapes(max_batch, max_points)
    return {n: (low[n], opt[n], high[n]) for n in inputs if n in low}


def _profile_text(profile: ShapeProfile, which: int) -> str:
    return ",".join(
        f"{name}:{'x'.join(str(d) for d in shapes[which])}" for name, shapes in profile.items()
    )


def provider_options(
    provider: str,
    settings: ProviderSettings | None = None,
    profile: ShapeProfile | None = None,
    cache_name: str | None = None,
) -> dict[str, str]:
    """ONNX Runtime provider options for ``provider`` (short or full name).

    A pure function: it creates no folder (see
    :func:`samedge.runtime.session.create_session`).

    Args:
        settings: the options (default :class:`ProviderSettings`).
        profile: TensorRT shape profile of the graph's dynamic inputs, input name ->
            ``(min, opt, max)`` shapes (see :func:`decoder_shape_profile`).
        cache_name: subfolder of the engine caches for this graph, so that two graphs never
            share an engine file.

    Returns:
        the options to pass with the provider to ``InferenceSession``; empty for the CPU.
    """
    settings = settings or ProviderSettings()
    name = full_name(provider)

    def cache(kind: str) -> str:
        folder = settings.engine_dir(kind)
        return os.fspath(folder / cache_name if cache_name else folder)

    if name == "CUDAExecutionProvider":
        return {
            "device_id": str(settings.device_id),
            "cudnn_conv_algo_search": settings.cudnn_conv_algo_search,
            "arena_extend_strategy": "kSameAsRequested",
            "do_copy_in_default_stream": "1",
        }
    if name == "TensorrtExecutionProvider":
        options = {
            "device_id": str(settings.device_id),
            "trt_fp16_enable": "True" if settings.trt_fp16 else "False",
            "trt_engine_cache_enable": "True",
            "trt_engine_cache_path": cache("tensorrt"),
            "trt_timing_cache_enable": "True",
            "trt_timing_cache_path": cache("tensorrt"),
        }
        if profile:
            for which, key in enumerate(("min", "opt", "max")):
                options[f"trt_profile_{key}_shapes"] = _profile_text(profile, which)
        return options
    if name == "OpenVINOExecutionProvider":
        return {"device_type": settings.openvino_device, "cache_dir": cache("openvino")}
    if name == "DmlExecutionProvider":
        return {"device_id": str(settings.device_id)}
    if name == "CoreMLExecutionProvider":
        return {"ModelFormat": "MLProgram", "MLComputeUnits": "ALL"}
    return {}
