"""ONNX Runtime sessions: the only module in samedge that imports onnxruntime.

Providers are given as short names (``cpu``, ``cuda``, ``tensorrt``, ``openvino``,
``coreml``, ``dml``) or full ONNX Runtime names, in order of preference. Whatever is
requested, the CPU provider is appended as the fallback, and the provider that actually runs
the graph is reported (and logged once) so a silent fallback is always visible.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ArtifactError

log = logging.getLogger(__name__)

PROVIDER_NAMES = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
    "openvino": "OpenVINOExecutionProvider",
    "coreml": "CoreMLExecutionProvider",
    "dml": "DmlExecutionProvider",
}


def _ort() -> Any:
    import onnxruntime

    return onnxruntime


def available_providers() -> list[str]:
    """Execution providers compiled into the installed onnxruntime build."""
    return list(_ort().get_available_providers())


def resolve_providers(providers: str | Sequence[str] | None) -> list[str]:
    """Full ONNX Runtime provider names, in order, with the CPU fallback last.

    Unavailable providers are dropped with a warning that says why.
    """
    available = available_providers()
    resolved: list[str] = []
    for item, name in zip(_raw(providers), requested_providers(providers), strict=True):
        if name not in PROVIDER_NAMES.values() and name not in available:
            known = ", ".join(PROVIDER_NAMES)
            raise ValueError(f"unknown execution provider '{item}': use one of {known}")
        if name not in available:
            log.warning(
                "%s is not available in this onnxruntime build (available: %s); "
                "falling back. Why: %s",
                name,
                ", ".join(available),
                unavailable_reason(name, available),
            )
            continue
        if name not in resolved:
            resolved.append(name)
    if "CPUExecutionProvider" not in resolved:
        resolved.append("CPUExecutionProvider")
    return resolved


def _raw(providers: str | Sequence[str] | None) -> list[str]:
    if providers is None:
        return ["cpu"]
    items = providers.split(",") if isinstance(providers, str) else list(providers)
    return [p for p in items if p.strip()]


def requested_providers(providers: str | Sequence[str] | None) -> list[str]:
    """The providers asked for (``None``: the CPU), as full ONNX Runtime names where known,
    in order."""
    return [PROVIDER_NAMES.get(p.strip().lower(), p.strip()) for p in _raw(providers)]


def native_openvino(providers: str | Sequence[str] | None) -> bool:
    """Whether the image encoder runs on OpenVINO's own runtime
    (:mod:`samedge.runtime.openvino_native`): OpenVINO is the first provider asked for, this
    onnxruntime build lacks its OpenVINO execution provider, and the ``openvino`` package is
    installed. The decoder graphs then run on the providers that follow it (the CPU)."""
    from . import openvino_native

    requested = requested_providers(providers)
    return (
        bool(requested)
        and requested[0] == PROVIDER_NAMES["openvino"]
        and requested[0] not in available_providers()
        and openvino_native.installed()
    )


def default_threads() -> int:
    """Intra-op threads: ``SAMEDGE_THREADS`` if set, else the number of usable cores."""
    env = os.environ.get("SAMEDGE_THREADS")
    if env:
        return max(1, int(env))
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - macOS / Windows
        return max(1, os.cpu_count() or 1)


def spinning_enabled() -> bool:
    """Whether ONNX Runtime's worker threads busy-wait between operators.

    Off unless ``SAMEDGE_ORT_SPIN=1``: spinning saves microseconds per operator on an idle
    machine but burns the cores a UI or other processes need, and on a loaded CPU it made
    stages several times slower (YOLOX-Nano: 78 ms spinning vs 28 ms not, 2 threads).
    """
    return os.environ.get("SAMEDGE_ORT_SPIN", "0") == "1"


def arena_mode() -> str:
    """How ONNX Runtime's CPU memory arena is used: ``SAMEDGE_ORT_ARENA``.

    ``on`` (default, also ``1``): freed buffers are kept for reuse, in one arena that every
    samedge session of the process shares (see :func:`create_session`). ``private``: each
    session keeps its own arena (ONNX Runtime's default). ``shrink``: the encoder's own arena
    is returned to the system after every image; the decoder graphs share one. ``off``
    (``0``): the encoder takes every buffer from ``malloc``.

    Measured on SAM 2.1 tiny's encoder (fresh processes, 2 threads; memory-pattern planning
    off): off 1.81-1.87 s, peak 0.96-1.09 GB, 0.67-0.78 GB resident after the run (glibc's
    heap keeps what it was given); an arena 1.62-1.64 s, peak 0.72-0.73 GB, which stays
    resident; shrink 1.69-1.80 s, peak 0.76 GB, 0.37 GB after. SAM ViT-B: off 5.46 s, peak
    1.47 GB; arena 5.32 s, 1.52 GB; shrink 5.56 s, 1.57 GB. Shared against private arenas
    (5 photos, 3 clicks each): peak 566-572 vs 664-666 MB (SAM 2.1 tiny), 1499 vs 1542 MB
    (ViT-B), encoder and click times the same.
    """
    value = os.environ.get("SAMEDGE_ORT_ARENA", "on").strip().lower()
    if value in ("0", "off"):
        return "off"
    return value if value in ("shrink", "private") else "on"


def arena_enabled() -> bool:
    """Whether ONNX Runtime keeps freed CPU buffers in its memory arena (see
    :func:`arena_mode`)."""
    return arena_mode() != "off"


_shared_arena_lock = threading.Lock()
_shared_arena_registered = False


def _share_cpu_arena(options: Any) -> None:
    """Make ``options``' session take its CPU buffers from the process-wide arena.

    ONNX Runtime gives every session its own arena, and buffers freed in one are never
    reused by another: the decoder graphs grew their arenas beside the encoder's, whose
    hundreds of MB were idle once the image was encoded. The arena is registered with ONNX
    Runtime's environment on first use (once per process; default growth settings).
    """
    global _shared_arena_registered
    ort = _ort()
    with _shared_arena_lock:
        if not _shared_arena_registered:
            info = ort.OrtMemoryInfo(
                "Cpu", ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0, ort.OrtMemType.DEFAULT
            )
            ort.create_and_register_allocator(info, ort.OrtArenaCfg(0, -1, -1, -1))
            _shared_arena_registered = True
    options.add_session_config_entry("session.use_env_allocators", "1")


def create_session(
    path: str | os.PathLike[str],
    providers: str | Sequence[str] | None = None,
    threads: int | None = None,
    optimized_model_path: str | os.PathLike[str] | None = None,
    spin: bool | None = None,
    arena: bool | None = None,
    mem_pattern: bool | None = None,
    settings: ProviderSettings | None = None,
    profile: ShapeProfile | None = None,
    cache_name: str | None = None,
    shared_arena: bool | None = None,
) -> Any:
    """An ``onnxruntime.InferenceSession`` for ``path``.

    Args:
        path: the ``.onnx`` file.
        providers: preferred execution providers (see module docstring).
        threads: intra-op thread count (``None``: :func:`default_threads`).
        optimized_model_path: where ONNX Runtime may save the optimised graph.
        spin: let worker threads busy-wait (``None``: :func:`spinning_enabled`).
        arena: keep ONNX Runtime's CPU memory arena (``None``: :func:`arena_enabled`).
        mem_pattern: memory-pattern planning, which pre-allocates one block for a whole run
            (``None``: with the arena). Worth it for graphs with a small peak such as the
            prompt decoders; an encoder's planned block is larger than its live tensors
            (SAM 2.1 tiny: peak 1.07 GB with it, 0.73 GB without).
        settings, profile, cache_name: options of the accelerated providers (see
            :func:`provider_options`); the engine cache folders of the providers that are
            available are created.
        shared_arena: with the arena kept, take CPU buffers from the one arena all samedge
            sessions of the process share (``None``: unless ``SAMEDGE_ORT_ARENA=private``),
            so a buffer one graph freed serves the next graph's run.

    Raises:
        ArtifactError: the file is not a loadable ONNX model.
    """
    ort = _ort()
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads or default_threads()
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3
    keep_arena = arena_enabled() if arena is None else arena
    options.enable_cpu_mem_arena = keep_arena
    options.enable_mem_pattern = keep_arena and (mem_pattern is None or mem_pattern)
    if shared_arena is None:
        shared_arena = arena_mode() != "private"
    if keep_arena and shared_arena:
        _share_cpu_arena(options)
    spinning = spinning_enabled() if spin is None else spin
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "1" if spinning else "0")
    if optimized_model_path is not None:
        options.optimized_model_filepath = os.fspath(optimized_model_path)
    chosen = resolve_providers(providers)
    per_provider = [provider_options(name, settings, profile, cache_name) for name in chosen]
    for opts in per_provider:
        for key in ("trt_engine_cache_path", "cache_dir"):
            if key in opts:
                Path(opts[key]).mkdir(parents=True, exist_ok=True)
    if "DmlExecutionProvider" in chosen:  # DirectML cannot run with memory patterns
        options.enable_mem_pattern = False
    try:
        session = ort.InferenceSession(
            os.fspath(path),
            sess_options=options,
            providers=chosen,
            provider_options=per_provider,
        )
    except Exception as exc:  # onnxruntime raises several unrelated exception types
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ArtifactError(
            f"cannot load ONNX model {Path(path).name}: {first_line[:200]} "
            f"(re-export it with 'samedge export')"
        ) from exc
    actual = session.get_providers()[0]
    if actual != chosen[0]:
        log.warning("%s requested, but %s runs %s", chosen[0], actual, Path(path).name)
    log.info("%s runs on %s with %d threads", Path(path).name, actual, options.intra_op_num_threads)
    return session


def run_options(config: dict[str, str]) -> Any:
    """``onnxruntime.RunOptions`` with these config entries."""
    options = _ort().RunOptions()
    for key, value in config.items():
        options.add_run_config_entry(key, value)
    return options


def calibration_session(path: str | os.PathLike[str], threads: int | None = None) -> Any:
    """A CPU session that runs a graph whose intermediate tensors were made outputs.

    For INT8 calibration (:mod:`samedge.quantize.ranges`): graph optimisations are off, so
    every observed tensor keeps its name and value; nodes run in priority-based order, so a
    node that reduces an observed tensor (``ReduceMin``/``ReduceMax``) runs as soon as the
    tensor exists and the tensor is freed early (in the default order such leaf nodes ran
    last and kept every tensor alive: 5.1 GB instead of 2.2 GB for one SAM 2.1 tiny image);
    no memory arena, so the peak is returned to the system after each run.
    """
    ort = _ort()
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.execution_order = ort.ExecutionOrder.PRIORITY_BASED
    options.intra_op_num_threads = threads or default_threads()
    options.inter_op_num_threads = 1
    options.enable_cpu_mem_arena = False
    options.enable_mem_pattern = False
    options.log_severity_level = 3
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(
        os.fspath(path), sess_options=options, providers=["CPUExecutionProvider"]
    )


def session_io(session: Any) -> tuple[list[str], list[str]]:
    """Input and output names of a session."""
    return [i.name for i in session.get_inputs()], [o.name for o in session.get_outputs()]


def onnxruntime_version() -> str:
    return str(_ort().__version__)


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


def installed_ort_distributions() -> dict[str, str]:
    """onnxruntime distributions installed in this environment, name -> version."""
    from importlib import metadata

    found = {}
    for name in ORT_DISTRIBUTIONS:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def provider_conflicts(installed: dict[str, str] | None = None) -> list[str]:
    """One line per conflicting onnxruntime installation (empty when the setup is sane)."""
    installed = installed_ort_distributions() if installed is None else installed
    if len(installed) <= 1:
        return []
    names = ", ".join(f"{k} {v}" for k, v in installed.items())
    keep = next((k for k in installed if k != "onnxruntime"), "onnxruntime")
    return [
        f"several onnxruntime packages are installed ({names}); they overwrite each other and "
        f"GPU providers may silently disappear: pip uninstall {' '.join(installed)} && "
        f"pip install {keep}"
    ]


def unavailable_reason(
    provider: str,
    available: Sequence[str] | None = None,
    installed: dict[str, str] | None = None,
) -> str | None:
    """Why ``provider`` (short or full name) cannot run here, or ``None`` if it can.

    The reason names the fix: the package to install, the conflicting packages to remove,
    or the native libraries (CUDA, cuDNN, TensorRT) that the package could not load.
    """
    name = PROVIDER_NAMES.get(provider.strip().lower(), provider.strip())
    available = available_providers() if available is None else list(available)
    if name in available:
        return None
    installed = installed_ort_distributions() if installed is None else installed
    package = PROVIDER_PACKAGES.get(name, "a matching onnxruntime build")
    conflicts = provider_conflicts(installed)
    if conflicts:
        return f"{name} is not available: {conflicts[0]}"
    if name == "CoreMLExecutionProvider":
        return f"{name} is only available on macOS builds of onnxruntime"
    if package in installed:
        return (
            f"{name} is not available although {package} {installed[package]} is installed: "
            f"its native libraries were not found (for CUDA/TensorRT: install the CUDA, cuDNN "
            f"and TensorRT versions that {package} {installed[package]} was built for and put "
            f"them on the library path)"
        )
    have = ", ".join(installed) or "no onnxruntime package"
    return f"{name} is not available: it needs {package} (installed: {have})"


#: Providers that keep tensors in GPU memory: the predictor binds their inputs and outputs
#: (IOBinding) so that an image embedding stays on the GPU between encode and decode.
DEVICE_PROVIDERS = {"CUDAExecutionProvider": "cuda", "TensorrtExecutionProvider": "cuda"}

#: ``Shape`` is one tensor shape; a profile maps input names to (min, opt, max) shapes.
Shape = tuple[int, ...]
ShapeProfile = Mapping[str, tuple[Shape, Shape, Shape]]


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

    A pure function: it creates no folder (see :func:`create_session`).

    Args:
        settings: the options (default :class:`ProviderSettings`).
        profile: TensorRT shape profile of the graph's dynamic inputs, input name ->
            ``(min, opt, max)`` shapes (see
            :func:`samedge.runtime.predictor.decoder_shape_profile`).
        cache_name: subfolder of the engine caches for this graph, so that two graphs never
            share an engine file.

    Returns:
        the options to pass with the provider to ``InferenceSession``; empty for the CPU.
    """
    settings = settings or ProviderSettings()
    name = PROVIDER_NAMES.get(provider.strip().lower(), provider.strip())

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


def binding_device(
    session: Any, settings: ProviderSettings | None = None
) -> tuple[str, int] | None:
    """``(device, id)`` where ``session`` keeps its tensors when that is a GPU (CUDA or
    TensorRT runs it and ``settings.io_binding``), else ``None`` (plain ``session.run``)."""
    settings = settings or ProviderSettings()
    device = DEVICE_PROVIDERS.get(session.get_providers()[0])
    if device is None or not settings.io_binding:
        return None
    return device, settings.device_id


def _bind_inputs(binding: Any, feeds: Mapping[str, Any]) -> list[Any]:
    """Bind each feed to ``binding``: an ``OrtValue`` as it is (already on its device), a
    NumPy array as a C-contiguous CPU input. Returns the bound values, which must outlive
    the run (a non-contiguous array is bound through a copy that nothing else holds)."""
    ort, bound = _ort(), []
    for name, value in feeds.items():
        if isinstance(value, ort.OrtValue):
            binding.bind_ortvalue_input(name, value)
        else:
            value = np.ascontiguousarray(value)
            binding.bind_cpu_input(name, value)
        bound.append(value)
    return bound


def run_into(session: Any, feeds: Mapping[str, Any], outputs: Mapping[str, np.ndarray]) -> None:
    """One run on the CPU that writes each output straight into a caller's array.

    ``session.run`` hands back new arrays, which a batched caller then copies into its
    batch (a SAM decoder call returns 1 MiB of mask logits per prompt set). Here each
    output is bound to its destination, typically a slice of the batch's array, so ONNX
    Runtime writes the values where they end up.

    Args:
        feeds: input name -> NumPy array or CPU ``OrtValue`` (see :func:`_bind_inputs`).
        outputs: output name -> C-contiguous array of the output's exact shape and dtype.
    """
    binding = session.io_binding()
    bound = _bind_inputs(binding, feeds)
    for name, array in outputs.items():
        if not array.flags.c_contiguous:
            raise ValueError(f"output {name} must be written into a contiguous array")
        binding.bind_output(name, "cpu", 0, array.dtype, list(array.shape), array.ctypes.data)
    session.run_with_iobinding(binding)
    del bound  # the inputs had to outlive the run


def run_bound(
    session: Any,
    feeds: Mapping[str, Any],
    outputs: Sequence[str],
    device: tuple[str, int],
    keep: Sequence[str] = (),
) -> tuple[list[np.ndarray], dict[str, Any]]:
    """One run through IOBinding.

    Args:
        feeds: input name -> NumPy array (copied to the device once) or an onnxruntime
            ``OrtValue`` already there (bound as it is, no copy).
        outputs: output names, in the order returned.
        device: ``("cuda", id)`` (``("cpu", 0)`` runs the same code on the CPU).
        keep: outputs that also stay on the device.

    Returns:
        the outputs as NumPy arrays, and the ``keep`` outputs as ``OrtValue`` on the device.
    """
    binding = session.io_binding()
    bound = _bind_inputs(binding, feeds)
    for name in outputs:
        where = device if name in keep else ("cpu", 0)
        binding.bind_output(name, where[0], where[1])
    session.run_with_iobinding(binding)
    del bound  # the inputs had to outlive the run
    host = binding.copy_outputs_to_cpu()
    values = binding.get_outputs()
    kept = {name: value for name, value in zip(outputs, values, strict=True) if name in keep}
    return list(host), kept
