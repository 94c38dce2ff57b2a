"""Command-line options shared by the commands that run a model or show progress."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def add_progress_option(parser: argparse.ArgumentParser) -> None:
    """``--no-progress`` (alias ``--quiet``): no progress bars or step lines. Progress always
    goes to stderr, so stdout keeps only the results; read it as ``args.no_progress``."""
    parser.add_argument(
        "--no-progress",
        "--quiet",
        dest="no_progress",
        action="store_true",
        help="no progress bars or step lines (they go to stderr; --quiet is the same)",
    )


def step_printer(args: argparse.Namespace) -> Callable[[str], None]:
    """A ``say(message)`` for a library's ``log`` argument: ``samedge: [12.3 s] message`` on
    stderr (seconds since the call), or nothing with ``--no-progress``."""
    if args.no_progress:
        return lambda _message: None
    started = time.perf_counter()

    def say(message: str) -> None:
        print(f"samedge: [{time.perf_counter() - started:5.1f} s] {message}", file=sys.stderr)

    return say


def add_runtime_options(parser: argparse.ArgumentParser) -> None:
    """``--provider`` (ordered execution providers, CPU fallback), ``--threads`` and the
    options of the GPU and accelerator providers (read by :func:`provider_settings`)."""
    parser.add_argument(
        "--provider",
        help="execution providers in order of preference, e.g. tensorrt,cuda,cpu "
        "(cpu, cuda, tensorrt, openvino, coreml, dml; default cpu; CPU is always the fallback)",
    )
    parser.add_argument("--threads", type=int, help="intra-op threads (default: all cores)")
    add_provider_options(parser)


def add_provider_options(parser: argparse.ArgumentParser) -> None:
    """Options of the GPU and accelerator providers (read by :func:`provider_settings`)."""
    group = parser.add_argument_group("GPU and accelerator providers (see docs/precision.md)")
    group.add_argument(
        "--device-id", type=int, default=0, help="GPU index for cuda, tensorrt, dml (default 0)"
    )
    group.add_argument(
        "--trt-cache",
        type=Path,
        metavar="DIR",
        help="TensorRT engine cache folder (default: <samedge cache>/engines/tensorrt)",
    )
    group.add_argument("--trt-fp16", action="store_true", help="let TensorRT build FP16 engines")
    group.add_argument(
        "--openvino-device", default="CPU", help="OpenVINO device_type: CPU, GPU, NPU, AUTO"
    )


def provider_settings(args: argparse.Namespace) -> Any:
    """The :class:`samedge.runtime.providers.ProviderSettings` of the parsed options."""
    from ..errors import SamedgeError
    from ..runtime.session import ProviderSettings

    try:
        return ProviderSettings(
            device_id=args.device_id,
            trt_cache=args.trt_cache,
            trt_fp16=args.trt_fp16,
            openvino_device=args.openvino_device,
        )
    except ValueError as exc:
        raise SamedgeError(str(exc)) from exc
