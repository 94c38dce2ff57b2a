"""Command-line options shared by the commands that run a model or show progress."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..runtime.providers import OPENVINO_PRECISIONS


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
    parser.add_argument(
        "--threads",
        type=positive_int,
        help="intra-op threads, at least 1 (default: $SAMEDGE_THREADS, else all cores)",
    )
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
    group.add_argument(
        "--openvino-precision",
        choices=OPENVINO_PRECISIONS,
        help="OpenVINO's inference precision (default: f32 on the CPU); bf16 is several times "
        "faster on CPUs with AMX and costs agreement (docs/precision.md)",
    )


def provider_settings(args: argparse.Namespace) -> Any:
    """The :class:`samedge.runtime.providers.ProviderSettings` of the parsed options."""
    from ..errors import SamedgeError
    from ..runtime.providers import PROVIDER_NAMES, check_provider_names, requested_providers
    from ..runtime.session import ProviderSettings

    check_provider_names(getattr(args, "provider", None))
    wanted = requested_providers(getattr(args, "provider", None))
    if args.openvino_precision and PROVIDER_NAMES["openvino"] not in wanted:
        raise SamedgeError(
            f"--openvino-precision {args.openvino_precision} applies to OpenVINO: add "
            f"--provider openvino"
        )
    try:
        return ProviderSettings(
            device_id=args.device_id,
            trt_cache=args.trt_cache,
            trt_fp16=args.trt_fp16,
            openvino_device=args.openvino_device,
            openvino_precision=args.openvino_precision,
        )
    except ValueError as exc:
        raise SamedgeError(str(exc)) from exc


def add_generator_options(parser: argparse.ArgumentParser, title: str) -> None:
    """The segment-everything settings, one option per :class:`~samedge.amg.AmgSettings`
    field. Unset options keep ``AmgSettings.for_spec``'s value: the official generator's
    default for the model's family (e.g. pred_iou_thresh 0.88 for SAM, 0.8 for SAM 2)."""
    g = parser.add_argument_group(title)
    g.add_argument("--fast", action="store_true", help="coarse-to-fine point sampling")
    g.add_argument("--fast-stride", type=int, help="coarse grid stride (2)")
    g.add_argument("--points-per-side", type=int, help=_family_defaults("points_per_side"))
    g.add_argument("--points-per-batch", type=int, help=_family_defaults("points_per_batch"))
    g.add_argument("--pred-iou-thresh", type=float, help=_family_defaults("pred_iou_thresh"))
    for name in ("stability_score_thresh", "stability_score_offset"):
        g.add_argument(f"--{name.replace('_', '-')}", type=float, help=_family_defaults(name))
    g.add_argument(
        "--mask-threshold",
        type=float,
        help="mask logit threshold, " + _family_defaults("mask_threshold"),
    )
    g.add_argument("--box-nms-thresh", type=float, help=_family_defaults("box_nms_thresh"))
    g.add_argument("--crop-n-layers", type=int)
    g.add_argument("--crop-nms-thresh", type=float, help=_family_defaults("crop_nms_thresh"))
    g.add_argument("--crop-overlap-ratio", type=float, help=_family_defaults("crop_overlap_ratio"))
    g.add_argument("--crop-n-points-downscale-factor", type=int)
    g.add_argument("--min-mask-region-area", type=int)
    g.add_argument("--use-m2m", action="store_true", help="refine each mask once (SAM 2)")
    g.add_argument(
        "--single-mask", action="store_true", help="one mask per point (multimask_output=False)"
    )


def generator_options(args: argparse.Namespace) -> dict[str, Any]:
    """The options of :func:`add_generator_options` named after ``AmgSettings`` fields, as
    given (``None``: keep the family default)."""
    import dataclasses

    from ..amg import AmgSettings

    names = {f.name for f in dataclasses.fields(AmgSettings)}
    return {name: value for name, value in vars(args).items() if name in names}


def _family_defaults(name: str) -> str:
    """``"default 0.88 for sam, 0.8 for sam2"``, or ``"default 0.95"`` where the families
    agree: the official default of ``name`` (a :class:`~samedge.specs.AmgDefaults` field,
    else a :class:`~samedge.specs.ModelSpec` one)."""
    from ..registry import get_spec, list_models

    pairs = []  # (default, family) of every registered model
    for model in list_models():
        spec = get_spec(model)
        value = getattr(spec.amg, name) if hasattr(spec.amg, name) else getattr(spec, name)
        pairs.append((value, spec.family))
    values = list(dict.fromkeys(v for v, _ in pairs))
    if len(values) == 1:
        return f"default {values[0]:.4g}"
    return "default " + ", ".join(
        f"{v:.4g} for {' and '.join(dict.fromkeys(f for w, f in pairs if w == v))}" for v in values
    )


def positive_int(text: str) -> int:
    """An ``argparse`` type: an integer of at least 1 (else argparse's one-line error)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got '{text}'")
    return value


def quiet_decoder_logs() -> None:
    """FFmpeg and OpenCV print their own warnings for files they cannot read; the error
    samedge raises already says it in one line."""
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    import cv2

    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
