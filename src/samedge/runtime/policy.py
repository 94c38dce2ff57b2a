"""How samedge runs its graphs on this machine, from the environment: threads, spinning,
the memory arena, INT8 kernels. Imports neither onnxruntime nor torch; read when a session
is made."""

from __future__ import annotations

import os

from ..errors import SamedgeError


def default_threads() -> int:
    """Intra-op threads: ``SAMEDGE_THREADS`` if set (and not empty), else the number of
    usable cores.

    Raises:
        SamedgeError: ``SAMEDGE_THREADS`` is not a positive integer.
    """
    env = os.environ.get("SAMEDGE_THREADS", "").strip()
    if env:
        try:
            value = int(env)
        except ValueError:
            value = 0
        if value < 1:
            raise SamedgeError(
                f"SAMEDGE_THREADS must be a positive number of threads such as 4, got '{env}'; "
                f"fix it or unset it to use every core"
            )
        return value
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
    samedge session of the process shares (see
    :func:`samedge.runtime.session.create_session`). ``private``: each session keeps its own
    arena (ONNX Runtime's default). ``shrink``: the encoder's own arena is returned to the
    system after every image; the decoder graphs share one. ``off`` (``0``): the encoder
    takes every buffer from ``malloc``.

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


#: Values of ``SAMEDGE_ORT_INT8`` (see :func:`int8_mode`).
INT8_MODES = ("auto", "exact", "fast")


def int8_mode() -> str:
    """How ONNX Runtime multiplies an INT8 graph's 8-bit integers on the CPU:
    ``SAMEDGE_ORT_INT8``.

    ``auto`` (default): exactly where its fast kernels would overflow (an x86 CPU without
    VNNI or AMX, :func:`samedge.runtime.diagnostics.saturating_int8_cpu`), natively
    elsewhere. ``exact``: ONNX Runtime's unsigned x unsigned kernels
    (``session.x64quantprecision``), which sum in 32 bits; the graph is unchanged, its signed
    weights are shifted when it loads. ``fast``: the unsigned x signed kernels, whose 16-bit
    pair sums saturate on such CPUs (static INT8 EfficientViT-SAM L0 on an AVX2 EPYC: 402
    against 507 ms, but embedding error 0.073 against fp32 instead of 0.036, masks 0.959
    against 0.985 mean IoU; docs/precision.md). With VNNI or AMX both are exact.

    Raises:
        SamedgeError: another value.
    """
    value = os.environ.get("SAMEDGE_ORT_INT8", "").strip().lower() or "auto"
    if value not in INT8_MODES:
        raise SamedgeError(
            f"SAMEDGE_ORT_INT8 must be one of {', '.join(INT8_MODES)}, got "
            f"'{os.environ['SAMEDGE_ORT_INT8']}'; fix it or unset it"
        )
    return value


def exact_int8_products() -> bool:
    """Whether ONNX Runtime sessions are asked for the exact (non-saturating) 8-bit
    kernels (see :func:`int8_mode`)."""
    mode = int8_mode()
    if mode == "auto":
        from .diagnostics import saturating_int8_cpu

        return saturating_int8_cpu()
    return mode == "exact"


def int8_products(openvino: bool = False) -> str:
    """How this process computes an INT8 graph's 8-bit products on the CPU: ``native`` (the
    CPU's own exact instructions: VNNI, AMX, or not x86), ``exact`` (ONNX Runtime's
    unsigned x unsigned kernels, see :func:`int8_mode`) or ``saturating`` (16-bit pair sums
    that can overflow: ``SAMEDGE_ORT_INT8=fast``, or OpenVINO, on an x86 CPU without VNNI
    or AMX). ``openvino``: for a graph run by OpenVINO, which has no exact mode."""
    from .diagnostics import saturating_int8_cpu

    if not openvino and exact_int8_products():
        return "exact"
    return "saturating" if saturating_int8_cpu() else "native"
