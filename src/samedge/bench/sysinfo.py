"""What a benchmark result depends on: CPU, cores, load and library versions."""

from __future__ import annotations

import os
import platform
import sys
from importlib import metadata
from typing import Any

from .. import __version__
from ..runtime.diagnostics import cpu_model_and_flags

#: CPU flags recorded with a benchmark result.
CPU_FLAGS_RECORDED = (
    "avx", "avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "neon",
)  # fmt: skip


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _memory_total_gib() -> float | None:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def load_average() -> list[float] | None:
    """1, 5 and 15 minute load averages (``None`` where the OS has none)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def _reference_packages() -> list[str]:
    """The official PyTorch packages of the registered model families, sorted."""
    from ..registry import get_spec, list_models

    return sorted({get_spec(name).reference_package for name in list_models()})


def system_info() -> dict[str, Any]:
    """CPU model and features, core counts, memory, OS, Python and library versions."""
    cpu_model, cpu_flags = cpu_model_and_flags()
    usable: int | None
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS / Windows
        usable = os.cpu_count()
    ort = next(
        (
            (name, v)
            for name in ("onnxruntime", "onnxruntime-gpu", "onnxruntime-openvino")
            if (v := _version(name))
        ),
        ("onnxruntime", None),
    )
    return {
        "cpu": cpu_model,
        "cpu_flags": [f for f in CPU_FLAGS_RECORDED if f in cpu_flags],
        "logical_cores": os.cpu_count(),
        "usable_cores": usable,
        "memory_gib": _memory_total_gib(),
        "os": platform.platform(),
        "python": sys.version.split()[0],
        "versions": {
            "samedge": __version__,
            ort[0]: ort[1],
            "numpy": _version("numpy"),
            "opencv-python-headless": _version("opencv-python-headless"),
            "torch": _version("torch"),
            # importlib.metadata matches distribution names with "-" and "_" alike.
            **{package: _version(package) for package in _reference_packages()},
        },
    }
