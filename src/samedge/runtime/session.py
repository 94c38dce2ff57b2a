"""ONNX Runtime sessions: the only module in samedge that imports onnxruntime.

Providers are given as short names (``cpu``, ``cuda``, ``tensorrt``, ``openvino``,
``coreml``, ``dml``) or full ONNX Runtime names, in order of preference. Whatever is
requested, the CPU provider is appended as the fallback, and the provider that actually runs
the graph is reported (and logged once) so a silent fallback is always visible.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

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
    if providers is None:
        requested: list[str] = ["cpu"]
    elif isinstance(providers, str):
        requested = [p for p in providers.split(",") if p.strip()]
    else:
        requested = list(providers)
    available = available_providers()
    resolved: list[str] = []
    for item in requested:
        name = PROVIDER_NAMES.get(item.strip().lower(), item.strip())
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


def arena_enabled() -> bool:
    """Whether ONNX Runtime keeps freed CPU buffers in its memory arena for reuse.

    Off unless ``SAMEDGE_ORT_ARENA=1``: the arena never returns its peak to the system, and
    an encoder's peak is large (SAM ViT-B encoder: 6.9 GB with the arena and memory-pattern
    planning, 3.8 GB without; SAM 2.1 tiny: 1.5 GB and 1.0 GB), at no measured cost in speed.
    """
    return os.environ.get("SAMEDGE_ORT_ARENA", "0") == "1"


def create_session(
    path: str | os.PathLike[str],
    providers: str | Sequence[str] | None = None,
    threads: int | None = None,
    optimized_model_path: str | os.PathLike[str] | None = None,
    spin: bool | None = None,
    arena: bool | None = None,
) -> Any:
    """An ``onnxruntime.InferenceSession`` for ``path``.

    Args:
        path: the ``.onnx`` file.
        providers: preferred execution providers (see module docstring).
        threads: intra-op thread count (``None``: :func:`default_threads`).
        optimized_model_path: where ONNX Runtime may save the optimised graph.
        spin: let worker threads busy-wait (``None``: :func:`spinning_enabled`).
        arena: keep ONNX Runtime's CPU memory arena (``None``: :func:`arena_enabled`);
            worth it for graphs with a small memory peak such as the prompt decoder.

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
    # Memory-pattern planning pre-allocates one block for the whole run: off with the arena.
    options.enable_mem_pattern = keep_arena
    spinning = spinning_enabled() if spin is None else spin
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "1" if spinning else "0")
    if optimized_model_path is not None:
        options.optimized_model_filepath = os.fspath(optimized_model_path)
    chosen = resolve_providers(providers)
    try:
        session = ort.InferenceSession(os.fspath(path), sess_options=options, providers=chosen)
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


def provider_options(
    provider: str,
    cache_dir: str | os.PathLike[str] | None = None,
    fp16: bool = False,
    device_id: int = 0,
    decoder_profile: tuple[int, int, int] | None = None,
    point_inputs: Sequence[str] = ("point_coords", "point_labels"),
) -> dict[str, str]:
    """ONNX Runtime provider options for ``provider`` (short or full name).

    Args:
        cache_dir: TensorRT engine and timing cache folder (engines build once, then load).
        fp16: let TensorRT build FP16 engines.
        device_id: GPU index (CUDA, TensorRT).
        decoder_profile: ``(min, opt, max)`` number of prompt points of the decoder, turned
            into TensorRT shape profiles for ``point_inputs`` (batch 1).

    Returns:
        the options dict to pass as ``providers=[(name, options), ...]``; empty for
        providers without options here.
    """
    name = PROVIDER_NAMES.get(provider.strip().lower(), provider.strip())
    if name == "CUDAExecutionProvider":
        return {
            "device_id": str(device_id),
            "cudnn_conv_algo_search": "HEURISTIC",
            "arena_extend_strategy": "kSameAsRequested",
        }
    if name != "TensorrtExecutionProvider":
        return {}
    options = {"device_id": str(device_id), "trt_fp16_enable": "True" if fp16 else "False"}
    if cache_dir is not None:
        folder = os.fspath(cache_dir)
        options.update(
            {
                "trt_engine_cache_enable": "True",
                "trt_engine_cache_path": folder,
                "trt_timing_cache_enable": "True",
                "trt_timing_cache_path": folder,
            }
        )
    if decoder_profile is not None:
        lo, opt, hi = decoder_profile
        if not 1 <= lo <= opt <= hi:
            raise ValueError(f"decoder profile needs 1 <= min <= opt <= max, got {decoder_profile}")

        def shapes(n: int) -> str:
            return ",".join(
                f"{inp}:1x{n}x2" if "coords" in inp else f"{inp}:1x{n}" for inp in point_inputs
            )

        options.update(
            {
                "trt_profile_min_shapes": shapes(lo),
                "trt_profile_opt_shapes": shapes(opt),
                "trt_profile_max_shapes": shapes(hi),
            }
        )
    return options
