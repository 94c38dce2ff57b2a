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
                "falling back. Install the matching onnxruntime package "
                "(e.g. onnxruntime-gpu for CUDA) and only one onnxruntime package.",
                name,
                ", ".join(available),
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


def create_session(
    path: str | os.PathLike[str],
    providers: str | Sequence[str] | None = None,
    threads: int | None = None,
    optimized_model_path: str | os.PathLike[str] | None = None,
    spin: bool | None = None,
) -> Any:
    """An ``onnxruntime.InferenceSession`` for ``path``.

    Args:
        path: the ``.onnx`` file.
        providers: preferred execution providers (see module docstring).
        threads: intra-op thread count (``None``: :func:`default_threads`).
        optimized_model_path: where ONNX Runtime may save the optimised graph.
        spin: let worker threads busy-wait (``None``: :func:`spinning_enabled`).

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


def session_io(session: Any) -> tuple[list[str], list[str]]:
    """Input and output names of a session."""
    return [i.name for i in session.get_inputs()], [o.name for o in session.get_outputs()]


def onnxruntime_version() -> str:
    return str(_ort().__version__)
