"""ONNX Runtime sessions: the only module in samedge that imports onnxruntime.

Whatever providers are requested (see :mod:`samedge.runtime.providers`), the CPU provider is
appended as the fallback, and the provider that actually runs the graph is reported (and
logged once) so a silent fallback is always visible. Sessions are made with the
environment's policy (:mod:`samedge.runtime.policy`: threads, spinning, memory arena), and
the IOBinding runs that keep tensors on a GPU or write into a caller's arrays are here
because they need ``onnxruntime.OrtValue``.

:class:`ProviderSettings`, :func:`default_threads`, :func:`unavailable_reason` and
:func:`provider_conflicts` are importable from here as well as from their own modules.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ArtifactError, ProviderError
from .diagnostics import provider_conflicts, unavailable_reason
from .policy import (
    arena_enabled,
    arena_mode,
    default_threads,
    exact_int8_products,
    spinning_enabled,
)
from .providers import (
    PROVIDER_NAMES,
    ProviderSettings,
    ShapeProfile,
    provider_options,
    raw_providers,
    requested_providers,
    unknown_provider_message,
)
from .types import BindableSession, GraphSession

log = logging.getLogger(__name__)

__all__ = [
    "ProviderSettings",
    "available_providers",
    "calibration_session",
    "create_session",
    "default_threads",
    "native_openvino",
    "onnxruntime_version",
    "provider_conflicts",
    "resolve_providers",
    "run_bound",
    "run_into",
    "run_options",
    "session_io",
    "unavailable_reason",
]


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
    for item, name in zip(raw_providers(providers), requested_providers(providers), strict=True):
        if name not in PROVIDER_NAMES.values() and name not in available:
            raise ProviderError(unknown_provider_message(item))
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
    fix: str = "re-export it with 'samedge export'",
) -> BindableSession:
    """An ``onnxruntime.InferenceSession`` for ``path``.

    ``fix`` ends the error of a file ONNX Runtime cannot load: what the user can do. An INT8
    graph's integer products are computed exactly where the CPU's fast kernels would
    overflow (:func:`samedge.runtime.policy.int8_mode`).

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
    chosen = resolve_providers(providers)
    if "OpenVINOExecutionProvider" in chosen and settings and settings.openvino_precision:
        log.warning(
            "--openvino-precision applies to OpenVINO's own runtime; ONNX Runtime's OpenVINO "
            "provider (onnxruntime-openvino) runs %s at its own default precision",
            Path(path).name,
        )
    per_provider = [provider_options(name, settings, profile, cache_name) for name in chosen]
    for opts in per_provider:
        for key in ("trt_engine_cache_path", "cache_dir"):
            if key in opts:
                Path(opts[key]).mkdir(parents=True, exist_ok=True)
    intra_threads = threads or default_threads()
    keep_arena = arena_enabled() if arena is None else arena
    if shared_arena is None:
        shared_arena = arena_mode() != "private"
    spinning = "1" if (spinning_enabled() if spin is None else spin) else "0"

    def load(exact: bool) -> BindableSession:
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = intra_threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        # errors only; none for a try in exact mode, whose failure is retried and explained
        options.log_severity_level = 4 if exact else 3
        options.enable_cpu_mem_arena = keep_arena
        options.enable_mem_pattern = keep_arena and (mem_pattern is None or mem_pattern)
        if keep_arena and shared_arena:
            _share_cpu_arena(options)
        options.add_session_config_entry("session.intra_op.allow_spinning", spinning)
        options.add_session_config_entry("session.inter_op.allow_spinning", spinning)
        if exact:
            options.add_session_config_entry("session.x64quantprecision", "1")
        if optimized_model_path is not None:
            options.optimized_model_filepath = os.fspath(optimized_model_path)
        if "DmlExecutionProvider" in chosen:  # DirectML cannot run with memory patterns
            options.enable_mem_pattern = False
        return ort.InferenceSession(
            os.fspath(path), sess_options=options, providers=chosen, provider_options=per_provider
        )

    exact = exact_int8_products()
    try:
        try:
            session = load(exact)
        except Exception:
            if not exact:
                raise
            # ONNX Runtime's exact mode cannot load some graphs: static INT8 made by samedge
            # before session 19, where a quantised weight also fed a product of constants.
            session = load(False)
            log.warning(
                "%s: ONNX Runtime cannot load this INT8 graph with exact 8-bit products, so "
                "it runs with the fast ones, which can saturate on this CPU; quantize the "
                "model again with this samedge (its graphs load exactly)",
                Path(path).name,
            )
    except Exception as exc:  # onnxruntime raises several unrelated exception types
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ArtifactError(
            f"cannot load ONNX model {Path(path).name}: {first_line[:200]} ({fix})"
        ) from exc
    actual = session.get_providers()[0]
    if actual != chosen[0]:
        log.warning("%s requested, but %s runs %s", chosen[0], actual, Path(path).name)
    log.info("%s runs on %s with %d threads", Path(path).name, actual, intra_threads)
    return session


def run_options(config: dict[str, str]) -> Any:
    """``onnxruntime.RunOptions`` with these config entries."""
    options = _ort().RunOptions()
    for key, value in config.items():
        options.add_run_config_entry(key, value)
    return options


def calibration_session(
    path: str | os.PathLike[str], threads: int | None = None
) -> BindableSession:
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


def session_io(session: GraphSession) -> tuple[list[str], list[str]]:
    """Input and output names of a session."""
    return [i.name for i in session.get_inputs()], [o.name for o in session.get_outputs()]


def onnxruntime_version() -> str:
    return str(_ort().__version__)


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


def run_into(
    session: BindableSession, feeds: Mapping[str, Any], outputs: Mapping[str, np.ndarray]
) -> None:
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
    session: BindableSession,
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
