"""Command-line options shared by the commands that run a model."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


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
    """The :class:`samedge.runtime.session.ProviderSettings` of the parsed options."""
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
