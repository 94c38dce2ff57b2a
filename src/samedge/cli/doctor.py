"""``samedge doctor``: what this machine offers samedge (runtime, providers, CPU, threads)."""

from __future__ import annotations

import argparse
import os
import platform
import sys

from ..errors import SamedgeError
from ..runtime.diagnostics import CPU_FLAGS as CPU_FLAGS
from ..runtime.diagnostics import cpu_info as cpu_info


def int8_advice(features: dict[str, bool]) -> str:
    if features.get("AMX-INT8"):
        return (
            "AMX-INT8 present: static INT8 pays most on OpenVINO's integer kernels "
            "(samedge quantize --provider openvino, then run with --provider openvino: "
            "EfficientViT-SAM L0's encoder 3.5x its fp32 speed, EfficientSAM-Ti's 2.4x with "
            "its attention in INT8; docs/precision.md)"
        )
    if features.get("AVX-512 VNNI") or features.get("AVX-VNNI"):
        return "VNNI present: INT8 matmuls/convolutions run natively (static INT8 pays most)"
    if features.get("AVX2"):
        return (
            "no VNNI: the fast 8-bit kernels sum pairs into 16 bits, which saturate, so "
            "ONNX Runtime runs INT8 graphs with its exact kernels here (SAMEDGE_ORT_INT8=fast "
            "for the saturating ones; static INT8 EfficientViT-SAM L0 1.2x its fp32 exact, "
            "1.5x saturating); OpenVINO's INT8 saturates here (docs/precision.md)"
        )
    return "no AVX2: INT8 gains are unlikely"


def bf16_advice(features: dict[str, bool]) -> str:
    if features.get("AMX-BF16") or features.get("AVX-512 BF16"):
        return (
            "bf16 units present: --provider openvino --openvino-precision bf16 trades a "
            "small, measured agreement cost for speed (with AMX: SAM 2.1 tiny's encoder "
            "3.6x faster; docs/precision.md)"
        )
    return "no bf16 units: --openvino-precision bf16 would run in fp32"


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "doctor",
        help="report onnxruntime, providers, CPU features, threads and setup conflicts",
        description="Print what samedge will run on: the onnxruntime build, available "
        "execution providers (with the reason each missing one is missing), CPU features "
        "relevant to FP16/INT8, thread settings, and conflicting onnxruntime installs.",
    )
    parser.add_argument("--provider", help="also explain these providers, e.g. cuda,tensorrt")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..runtime import diagnostics, policy
    from ..runtime import session as s
    from ..runtime.providers import PROVIDER_NAMES

    out: list[str] = []
    installed = diagnostics.installed_ort_distributions()
    out.append("== onnxruntime")
    out.append(f"python {sys.version.split()[0]} ({platform.platform()})")
    try:
        version = s.onnxruntime_version()
        available = s.available_providers()
    except ImportError as exc:
        out.append(f"onnxruntime cannot be imported: {exc}")
        print("\n".join(out))
        return 1
    out.append(f"onnxruntime {version}")
    out.append("packages: " + (", ".join(f"{k} {v}" for k, v in installed.items()) or "none"))
    out.append("== providers")
    out.append("available: " + ", ".join(available))
    wanted = [p for p in (args.provider or "").split(",") if p.strip()]
    for short in wanted or [k for k in PROVIDER_NAMES if k != "cpu"]:
        reason = diagnostics.unavailable_reason(short, available, installed)
        if reason is not None and s.native_openvino([short]):
            from importlib import metadata

            reason = (
                f"the image encoder runs on OpenVINO's own runtime (openvino "
                f"{metadata.version('openvino')}) and the decoders on the CPU provider; "
                f"whole models on OpenVINO: {reason}"
            )
        out.append(f"{short}: {'available' if reason is None else reason}")
    out.append("== cpu")
    model, features = cpu_info()
    out.append(f"model: {model}")
    out.append("features: " + ", ".join(f"{k} {'yes' if v else 'no'}" for k, v in features.items()))
    out.append(f"int8: {int8_advice(features)}")
    out.append(f"bf16: {bf16_advice(features)}")
    out.append("== threads")
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    out.append(f"usable cores: {cores}")
    for var in (
        "SAMEDGE_THREADS",
        "SAMEDGE_ORT_SPIN",
        "SAMEDGE_ORT_ARENA",
        "SAMEDGE_ORT_INT8",
        "OMP_NUM_THREADS",
    ):
        out.append(f"{var}={os.environ.get(var, '(unset)')}")
    problems = []
    try:
        threads = f"{policy.default_threads()} intra-op threads"
    except SamedgeError as exc:  # every command that runs a model stops with this
        threads = "no thread count (SAMEDGE_THREADS is invalid)"
        problems.append(str(exc))
    try:
        int8 = {
            "exact": "exact (unsigned x unsigned kernels)",
            "saturating": "fast (16-bit sums that can saturate)",
            "native": "native (exact)",
        }[policy.int8_products()]
    except SamedgeError as exc:
        int8 = "refused (SAMEDGE_ORT_INT8 is invalid)"
        problems.append(str(exc))
    out.append(
        f"effective: {threads}, spinning {'on' if policy.spinning_enabled() else 'off'}, "
        f"memory arena {policy.arena_mode()}, INT8 products {int8}"
    )
    out.append("== conflicts")
    conflicts = problems + diagnostics.provider_conflicts(installed)
    out.extend(conflicts or ["none"])
    print("\n".join(out))
    return 1 if conflicts else 0
