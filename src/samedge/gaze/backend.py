"""One way to run a small network, whatever executes it: ONNX Runtime or OpenVINO.

:func:`load_network` returns a :class:`Network`, a callable from named float32 inputs to
named outputs. ONNX files run on ONNX Runtime (through
:func:`samedge.runtime.session.create_session`) or on OpenVINO, which reads ONNX directly;
OpenVINO IR (``.xml``) runs on OpenVINO only, compiled by
:func:`samedge.runtime.openvino_native.compile_model` when asked for (extra ``gaze``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ArtifactError, SamedgeError, require_extra

BACKENDS = ("ort", "openvino")


def default_backend() -> str:
    """``openvino`` when the ``openvino`` package is installed (the ``[gaze]`` extra has it:
    the default gaze networks run on it), else ``ort``. OpenVINO runs the pipeline's ONNX
    stages faster on a Xeon with AVX-512 (2 threads: YuNet 6.2 vs 9.5 ms, YOLOX-Nano 13.0 vs
    17.7 ms) and about as fast on an AVX2-only EPYC (docs/gaze.md)."""
    from ..runtime.openvino_native import installed

    return "openvino" if installed() else "ort"


class Network:
    """A loaded network: ``net({input_name: array}) -> {output_name: array}``.

    Attributes:
        path: the model file.
        backend: ``ort`` or ``openvino``.
        inputs: input names with their shapes (``-1`` or a name for dynamic dimensions).
        outputs: output names.
        output_shapes: output names with their shapes, in the same order.
    """

    def __init__(
        self,
        path: Path,
        backend: str,
        runner: Any,
        inputs: dict[str, tuple[Any, ...]],
        outputs: list[str],
        output_shapes: dict[str, tuple[Any, ...]] | None = None,
    ) -> None:
        self.path = path
        self.backend = backend
        self._runner = runner
        self.inputs = inputs
        self.outputs = outputs
        self.output_shapes = output_shapes if output_shapes is not None else {}

    def __call__(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        missing = set(self.inputs) - set(feeds)
        if missing:
            raise ValueError(f"{self.path.name}: missing inputs {sorted(missing)}")
        return self._runner(feeds)

    def __repr__(self) -> str:
        return f"Network({self.path.name}, backend={self.backend})"


def _load_ort(path: Path, providers: Sequence[str] | str | None, threads: int | None) -> Network:
    from ..runtime.session import create_session

    fix = "pass the right file, or get the default models with 'samedge gaze --fetch-models'"
    session = create_session(path, providers, threads, fix=fix)
    names = [o.name for o in session.get_outputs()]

    def run(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return dict(zip(names, session.run(names, feeds), strict=True))

    inputs = {i.name: tuple(i.shape) for i in session.get_inputs()}
    shapes = {o.name: tuple(o.shape) for o in session.get_outputs()}
    return Network(path, "ort", run, inputs, names, shapes)


def _load_openvino(path: Path, threads: int | None) -> Network:
    require_extra("openvino", "gaze", "running networks on OpenVINO")
    from ..runtime.openvino_native import compile_model, file_name
    from ..runtime.policy import default_threads

    compiled = compile_model(path, "CPU", threads or default_threads())
    request = compiled.create_infer_request()
    out_ports = list(compiled.outputs)
    # Ports are named as the file names them (a compiled port can carry internal tensor
    # names too: YuNet's ``cls_8`` is also ``330``); results are given under every name.
    names = [file_name(p) for p in out_ports]
    aliases = [sorted(p.get_names()) for p in out_ports]

    def dims(port: Any) -> tuple[int, ...]:
        return tuple(d.get_length() if d.is_static else -1 for d in port.get_partial_shape())

    inputs = {file_name(p): dims(p) for p in compiled.inputs}
    shapes = {name: dims(p) for name, p in zip(names, out_ports, strict=True)}

    def run(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        result = request.infer(feeds)
        out: dict[str, np.ndarray] = {}
        for port, port_names in zip(out_ports, aliases, strict=True):
            value = np.asarray(result[port])
            for name in port_names:
                out[name] = value
        return out

    return Network(path, "openvino", run, inputs, names, shapes)


def load_network(
    path: str | os.PathLike[str],
    backend: str = "ort",
    providers: Sequence[str] | str | None = None,
    threads: int | None = None,
) -> Network:
    """Load ``path`` (``.onnx`` or OpenVINO IR ``.xml``) on ``backend``.

    Args:
        backend: ``ort`` (ONNX Runtime; ONNX files only) or ``openvino``.
        providers: ONNX Runtime execution providers (``ort`` only).
        threads: intra-op threads (default: all usable cores).

    Raises:
        SamedgeError: unknown backend, or an IR file asked to run on ONNX Runtime.
        ArtifactError: the file cannot be loaded.
    """
    path = Path(path)
    if backend not in BACKENDS:
        raise SamedgeError(f"unknown backend '{backend}': use one of {', '.join(BACKENDS)}")
    if not path.is_file():
        raise ArtifactError(f"model file {path} does not exist")
    if path.suffix.lower() == ".xml":
        if backend != "openvino":
            raise SamedgeError(
                f"{path.name} is an OpenVINO IR model: it runs with backend 'openvino' only"
            )
        return _load_openvino(path, threads)
    if backend == "openvino":
        return _load_openvino(path, threads)
    return _load_ort(path, providers, threads)
