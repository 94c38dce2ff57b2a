"""OpenVINO's own runtime for samedge graphs: the only module that imports ``openvino``.

``--provider openvino`` asks for OpenVINO. ONNX Runtime reaches it through its OpenVINO
execution provider, which only the ``onnxruntime-openvino`` distribution has (and which
replaces the plain ``onnxruntime`` package). Without it, but with the ``openvino`` package
installed (extra ``openvino``), the predictor runs the image encoder here, on OpenVINO's
runtime reading the same ``encoder.onnx``, and the decoder graphs on ONNX Runtime's CPU
provider: see :func:`samedge.runtime.session.native_openvino`.

Why only the encoder, measured on this project's 2-core AVX-512 CPU, fp32, 2 threads:
SAM 2.1 tiny's encoder 1.19 s on OpenVINO against 1.40 s on ONNX Runtime (its fully
connected layers run at ~300 GFLOP/s in oneDNN's kernels against ~240 in MLAS; the outputs
agree to 1e-5), SAM ViT-B's 4.1 s against 5.1 s; but one click's ``decoder.onnx`` 23 ms
against 17.5 ms, with its shapes made static (28 ms dynamic).

On the CPU the graph is compiled with ``INFERENCE_PRECISION_HINT=f32``: OpenVINO's CPU
plugin would otherwise compute in bf16 on CPUs with AMX, a silent change of precision. A
reduced precision is there when asked for (``ProviderSettings.openvino_precision``,
``--openvino-precision bf16``), reported in the provider name (``OpenVINO (CPU, bf16)``),
and logged as a warning when the device cannot honour it. A
compiled model is cached (``CACHE_DIR``) under ``<samedge home>/engines/openvino``, one
folder per graph file (see :meth:`samedge.runtime.providers.ProviderSettings.engine_dir`):
SAM 2.1 tiny's encoder compiles in ~1.5 s, and loads from the cache in ~0.4 s.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ArtifactError
from .providers import ProviderSettings

log = logging.getLogger(__name__)


def installed() -> bool:
    """Whether the ``openvino`` package can be imported (it is not imported here)."""
    import importlib.util

    return importlib.util.find_spec("openvino") is not None


class _SignalStack(ctypes.Structure):
    """``stack_t`` of ``sigaltstack(2)`` (the same layout on Linux x86-64 and AArch64)."""

    _fields_ = [
        ("ss_sp", ctypes.c_void_p),
        ("ss_flags", ctypes.c_int),
        ("ss_size", ctypes.c_size_t),
    ]


@contextlib.contextmanager
def _signal_stack_kept() -> Iterator[None]:
    """Restore the calling thread's alternate signal stack after the block.

    OpenVINO's CPU plugin installs one of ~20 KB on the thread that creates it (its engine
    is made by ``compile_model``), which does not stay usable, while Python's signal
    handlers run on the alternate stack (``SA_ONSTACK``): in a process that had run
    ``samedge gaze``, Ctrl-C was a segmentation fault (a webcam run, which Ctrl-C ends,
    lost its video), and disabling that stack afterwards cured it. Seen on Linux (x86-64
    with AMX); elsewhere nothing is done.
    """
    if sys.platform != "linux":
        yield
        return
    libc = ctypes.CDLL(None, use_errno=True)
    before = _SignalStack()
    if libc.sigaltstack(None, ctypes.byref(before)) != 0:
        yield
        return
    try:
        yield
    finally:
        after = _SignalStack()
        libc.sigaltstack(None, ctypes.byref(after))
        if (after.ss_sp, after.ss_flags, after.ss_size) != (
            before.ss_sp,
            before.ss_flags,
            before.ss_size,
        ):
            libc.sigaltstack(ctypes.byref(before), None)


def compile_model(
    path: str | os.PathLike[str],
    device: str = "CPU",
    threads: int | None = None,
    config: Mapping[str, Any] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    hint: str = "",
) -> Any:
    """``openvino.CompiledModel`` of an ONNX or IR file on ``device``.

    Args:
        threads: ``INFERENCE_NUM_THREADS`` (``None``: OpenVINO's default, all cores).
        config: further properties of the device.
        cache_dir: OpenVINO's model cache folder (created), or ``None`` for no cache.
        hint: appended to the error message (what the caller can do about it).

    Raises:
        ArtifactError: OpenVINO cannot read or compile the file (one line: its message).
    """
    import openvino as ov

    core = ov.Core()
    properties: dict[str, Any] = dict(config or {})
    if threads:
        properties["INFERENCE_NUM_THREADS"] = int(threads)
    if cache_dir is not None:
        Path(cache_dir).mkdir(parents=True, exist_ok=True)
        properties["CACHE_DIR"] = os.fspath(cache_dir)
    try:
        with _signal_stack_kept():
            return core.compile_model(os.fspath(path), device, properties)
    except Exception as exc:  # OpenVINO raises RuntimeError subclasses with long messages
        raise ArtifactError(
            f"OpenVINO cannot load {Path(path).name} on {device}: {_reason(exc)}{hint}"
        ) from exc


def _reason(exc: Exception) -> str:
    """The informative line of an OpenVINO error: its messages open with a stack of
    ``Exception from <source file>:<line>:`` lines before the one that says what failed."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    said = [line for line in lines if not line.startswith("Exception from ")]
    return (said[-1] if said else lines[-1] if lines else type(exc).__name__)[:200]


@dataclass(frozen=True)
class Port:
    """A graph input or output as :class:`OpenVINOSession` lists them (ONNX Runtime's
    ``NodeArg`` fields that samedge reads)."""

    name: str
    shape: tuple[int | None, ...]


def _port(port: Any) -> Port:
    dims = tuple(d.get_length() if d.is_static else None for d in port.get_partial_shape())
    return Port(file_name(port), dims)


def file_name(port: Any) -> str:
    """The name the model file gives a compiled port. A port can carry internal tensor names
    as well (YuNet's output ``cls_8`` is also ``330``) and ``any_name`` may return one of
    those; OpenVINO's ONNX reader names an output's result node ``<name>/sink_port_0`` and a
    parameter after its input, which picks the file's name among them."""
    names = port.get_names()
    node = port.get_node().get_friendly_name()
    for name in sorted(names):
        if node in (name, f"{name}/sink_port_0"):
            return name
    return port.any_name


class OpenVINOSession:
    """One ONNX graph compiled by OpenVINO, with the part of ``onnxruntime.InferenceSession``'s
    interface that :class:`samedge.runtime.graphs.ModelGraphs` runs an encoder through
    (:class:`samedge.runtime.types.GraphSession`): ``run``, ``get_inputs``,
    ``get_outputs`` and ``get_providers``.

    Args:
        path: the ``.onnx`` file.
        device: OpenVINO device (``CPU``, ``GPU``, ``NPU``, ``AUTO``...).
        threads: CPU inference threads (``None``: all usable cores).
        cache_dir: compiled-model cache folder, or ``None``.
        precision: ``INFERENCE_PRECISION_HINT`` (``f32``, ``bf16``, ``f16``); ``None``: fp32
            on the CPU, the device's default elsewhere. What the device actually computes in
            is :attr:`precision`.

    Raises:
        ArtifactError: the file cannot be compiled.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        device: str = "CPU",
        threads: int | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        precision: str | None = None,
    ) -> None:
        config: dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY"}
        if precision is not None:
            config["INFERENCE_PRECISION_HINT"] = precision
        elif device.upper() == "CPU":
            config["INFERENCE_PRECISION_HINT"] = "f32"
        self.path = Path(path)
        self.device = device
        hint = " (check --openvino-device, re-export the model, or use --provider cpu)"
        self._compiled = compile_model(path, device, threads, config, cache_dir, hint)
        #: What the device computes in (``f32``, ``bf16``, ``f16``...), as it reports it.
        self.precision: str = self._compiled.get_property(
            "INFERENCE_PRECISION_HINT"
        ).get_type_name()
        if precision is not None and precision != self.precision:
            log.warning(
                "%s: %s asked for, but OpenVINO's %s runs it in %s (the device has no %s support)",
                self.path.name,
                precision,
                device,
                self.precision,
                precision,
            )
        self._request = self._compiled.create_infer_request()
        self._inputs = [_port(p) for p in self._compiled.inputs]
        self._outputs = [_port(p) for p in self._compiled.outputs]
        self._index = {}
        for i, port in enumerate(self._compiled.outputs):
            for name in port.get_names():  # a port can carry several tensor names
                self._index[name] = i
        # An infer request is not thread-safe; ONNX Runtime's run is: calls take turns.
        self._lock = threading.Lock()

    def get_inputs(self) -> list[Port]:
        return list(self._inputs)

    def get_outputs(self) -> list[Port]:
        return list(self._outputs)

    def get_providers(self) -> list[str]:
        """What runs the graph, as the predictor and benchmark report it (with the precision
        when it is not fp32)."""
        if self.precision == "f32":
            return [f"OpenVINO ({self.device})"]
        return [f"OpenVINO ({self.device}, {self.precision})"]

    @classmethod
    def for_settings(
        cls,
        path: str | os.PathLike[str],
        settings: ProviderSettings,
        threads: int | None,
        cache_name: str,
    ) -> OpenVINOSession:
        """``path`` compiled for ``settings``' OpenVINO device and precision, cached under
        ``<engine dir>/openvino/<cache_name>`` (plus ``-<precision>`` when one is asked for)."""
        precision = settings.openvino_precision
        suffix = f"-{precision}" if precision else ""
        return cls(
            path,
            settings.openvino_device,
            threads,
            settings.engine_dir("openvino") / f"{cache_name}{suffix}",
            precision,
        )

    def run(
        self,
        output_names: Sequence[str] | None,
        feeds: Mapping[str, np.ndarray],
        run_options: Any = None,
    ) -> list[np.ndarray]:
        """The outputs named (all when ``None``), as arrays the caller owns.

        ``run_options`` (ONNX Runtime's) is accepted and ignored.
        """
        names = list(output_names) if output_names else [p.name for p in self._outputs]
        unknown = [n for n in names if n not in self._index]
        if unknown:
            raise ValueError(f"{self.path.name} has no outputs {unknown}")
        with self._lock:
            result = self._request.infer(dict(feeds), share_inputs=True)
            # share_outputs is off: every array is a copy, not the request's buffer.
            return [result[self._index[n]] for n in names]
