"""Why a provider cannot run here, which onnxruntime installs conflict, and what the CPU
offers (for ``samedge doctor``, the fallback warning and ``samedge quantize``). Imports
onnxruntime only through :mod:`samedge.runtime.session`, and only when the caller gives no
provider list."""

from __future__ import annotations

import functools
import platform
from collections.abc import Sequence
from pathlib import Path

from .providers import ORT_DISTRIBUTIONS, PROVIDER_PACKAGES, full_name


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

    Args:
        available: the providers of the installed onnxruntime build (``None``: ask it).
        installed: :func:`installed_ort_distributions` (``None``: look them up).
    """
    name = full_name(provider)
    if available is None:
        from .session import available_providers

        available = available_providers()
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


#: /proc/cpuinfo flags that matter for ONNX Runtime's CPU kernels.
CPU_FLAGS = {
    "avx2": "AVX2",
    "fma": "FMA",
    "avx512f": "AVX-512F",
    "avx512_vnni": "AVX-512 VNNI",
    "avx_vnni": "AVX-VNNI",
    "avx512_bf16": "AVX-512 BF16",
    "avx512_fp16": "AVX-512 FP16",
    "amx_int8": "AMX-INT8",
    "amx_bf16": "AMX-BF16",
    "f16c": "F16C",
}


def cpu_model_and_flags(cpuinfo: str | None = None) -> tuple[str, set[str]]:
    """CPU model name and every flag of ``/proc/cpuinfo`` (``flags`` on x86, ``Features``
    on ARM); without that file the platform's processor name and no flags."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            cpuinfo = ""
    model, flags = platform.processor() or platform.machine(), set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name" and value.strip():
            model = value.strip()
        elif key.strip() in ("flags", "Features"):
            flags = set(value.split())
            break
    return model, flags


def cpu_info(cpuinfo: str | None = None) -> tuple[str, dict[str, bool]]:
    """CPU model name and which of :data:`CPU_FLAGS` it has (from ``/proc/cpuinfo``)."""
    model, flags = cpu_model_and_flags(cpuinfo)
    return model, _features(flags)


def _features(flags: set[str]) -> dict[str, bool]:
    return {label: flag in flags for flag, label in CPU_FLAGS.items()}


def integer_dot_product_cpu(features: dict[str, bool] | None = None) -> bool:
    """Whether the CPU multiplies and sums 8-bit integers into 32 bits in one instruction:
    VNNI (AVX-512 or AVX) or AMX."""
    if features is None:
        features = cpu_info()[1]
    return any(features.get(k) for k in ("AMX-INT8", "AVX-512 VNNI", "AVX-VNNI"))


def integer_attention_cpu(features: dict[str, bool] | None = None) -> bool:
    """Whether OpenVINO's integer attention kernel runs here: it needs VNNI (AVX-512 or
    AVX) or AMX. Without them a quantised EfficientSAM-Ti attention ran at 0.6-0.7x its fp32
    (OpenVINO limited to AVX2 or AVX-512 without VNNI); with AVX2-VNNI 1.85x, AVX-512 VNNI
    2.0x, AMX 2.8x (docs/precision.md)."""
    return integer_dot_product_cpu(features)


@functools.cache
def saturating_int8_cpu() -> bool:
    """Whether 8-bit integer products can overflow in the runtimes' fast kernels here: an
    x86 CPU (its ``/proc/cpuinfo`` flags read) without VNNI or AMX. Such kernels
    (``vpmaddubsw``: unsigned x signed 8-bit pairs summed into a saturating 16-bit integer)
    are what ONNX Runtime's u8s8 and OpenVINO's integer convolutions use there; with
    activations up to 255 and weights up to 127 a pair reaches 64,770, past 32,767.
    Measured on an AVX2 AMD EPYC, static INT8 EfficientViT-SAM L0 (docs/precision.md):
    embedding error 0.073 against fp32 with those kernels, 0.036 computed exactly."""
    if platform.machine().lower() not in ("x86_64", "amd64", "i386", "i686"):
        return False
    _, flags = cpu_model_and_flags()
    if not flags:  # no /proc/cpuinfo: nothing known, keep the runtimes' defaults
        return False
    return not integer_dot_product_cpu(_features(flags))
