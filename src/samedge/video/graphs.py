"""The sessions of the video tracker: the image encoder and the tracking graphs.

See :mod:`samedge.export.video` for what each graph computes. Inputs are bound by the names
in ``spec.video.graph_io(spec)``; the sessions are ONNX Runtime's, made as the image
predictor makes its own (:func:`samedge.runtime.session.create_session`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from ..artifacts import ModelArtifact
from ..errors import ArtifactError, SamedgeError
from ..runtime.openvino_native import OpenVINOSession
from ..runtime.policy import default_threads
from ..runtime.providers import ProviderSettings, requested_providers
from ..runtime.session import create_session, native_openvino, session_io
from ..runtime.types import Closeable, GraphSession
from ..specs import VideoSpec


def video_spec(artifact: ModelArtifact) -> VideoSpec:
    """``artifact``'s tracking settings, checking that its folder can track.

    Raises:
        SamedgeError: the model cannot track video (one line naming the fix), or its folder
            holds no tracking graphs (exported before samedge tracked video, or quantized).
    """
    spec = artifact.spec
    if spec.video is None:
        raise SamedgeError(
            f"{spec.title} cannot track video: samedge tracks with SAM 2.1 models; use e.g. "
            f"--model sam2.1_hiera_tiny (samedge export sam2.1_hiera_tiny)"
        )
    missing = [role for role in spec.video.roles if not artifact.has(role)]
    if missing:
        raise ArtifactError(
            f"{artifact.folder} has no video tracking graphs ({', '.join(missing)}): it was "
            f"exported before samedge tracked video, or quantized; re-export it with "
            f"'{artifact.manifest.export_command(artifact.folder)}'"
        )
    return spec.video


class VideoGraphs(Closeable):
    """One session per graph the tracker runs, the rarely used ones opened on first use.

    Each call adds its run time to :attr:`timings` under its stage name (``encoder``,
    ``memory_attention``, ``decoder``, ``memory_encoder``), which the predictor reads per
    frame.
    """

    #: The stage each graph's time counts towards.
    STAGES: ClassVar[dict[str, str]] = {
        "encoder": "encoder",
        "memory_attention": "memory_attention",
        "track_decoder": "decoder",
        "track_decoder_mask": "decoder",
        "mask_prompt": "decoder",
        "memory_encoder": "memory_encoder",
    }

    def __init__(
        self,
        artifact: ModelArtifact,
        providers: str | Sequence[str] | None = None,
        threads: int | None = None,
        settings: ProviderSettings | None = None,
    ) -> None:
        self.artifact = artifact
        self.spec = artifact.spec
        self.video = video_spec(artifact)
        self.io = dict(self.video.graph_io(self.spec))
        self.io["encoder"] = (self.spec.encoder_inputs, self.spec.encoder_outputs)
        self._providers, self._threads = providers, threads
        self._settings = settings or ProviderSettings()
        # OpenVINO without its ONNX Runtime provider: the encoder on OpenVINO's own runtime
        # (as the image predictor runs it, sharing its compiled-model cache), the tracking
        # graphs on the providers asked for after it.
        self._openvino = native_openvino(providers)
        if self._openvino:
            self._providers = requested_providers(providers)[1:] or None
        self._sessions: dict[str, GraphSession] = {}
        self.timings: dict[str, float] = {}
        for role in ("encoder", "memory_attention", "track_decoder", "memory_encoder"):
            self._session(role)

    #: The graphs OpenVINO's own runtime runs when it is asked for: in fp32 the encoder
    #: (faster there: 1.2 against 1.4 s); in a reduced precision (``openvino_precision``
    #: ``bf16``/``f16``) also the memory attention and the memory encoder, which in fp32 run
    #: faster on ONNX Runtime (its fused attention: 1.69 against 1.92 s on a full memory).
    #: The decoders, which decide the masks and whether the object is present, stay fp32 on
    #: ONNX Runtime either way. Measured on a 2-core Xeon with AMX, 2 threads.
    OPENVINO_ROLES: ClassVar[tuple[str, ...]] = ("encoder",)
    OPENVINO_REDUCED_ROLES: ClassVar[tuple[str, ...]] = (
        "encoder",
        "memory_attention",
        "memory_encoder",
    )

    def _on_openvino(self, role: str) -> bool:
        if not self._openvino:
            return False
        reduced = self._settings.openvino_precision not in (None, "f32")
        return role in (self.OPENVINO_REDUCED_ROLES if reduced else self.OPENVINO_ROLES)

    def _session(self, role: str) -> GraphSession:
        session = self._sessions.get(role)
        if session is not None:
            return session
        if self._on_openvino(role):
            session = OpenVINOSession.for_settings(
                self.artifact.path(role),
                self._settings,
                self._threads or default_threads(),
                self.artifact.cache_name(role),
            )
        else:
            session = create_session(
                self.artifact.path(role),
                self._providers,
                self._threads,
                # The encoder's planned block is larger than its live tensors (see
                # create_session); the memory attention's inputs change size per frame.
                mem_pattern=role not in ("encoder", "memory_attention"),
                settings=self._settings,
            )
        inputs, outputs = self.io[role]
        got_in, got_out = session_io(session)
        if set(got_in) != set(inputs) or not set(outputs) <= set(got_out):
            raise ArtifactError(
                f"{self.artifact.folder}: {role} graph has inputs {got_in} and outputs "
                f"{got_out}, not those of {self.spec.name}; re-export the model"
            )
        self._sessions[role] = session
        return session

    @property
    def closed(self) -> bool:
        return getattr(self, "_closed", False)

    def close(self) -> None:
        """Drop every session; the graphs cannot be used after this."""
        self._closed = True
        self._sessions.clear()

    def run(self, role: str, values: Sequence[Any]) -> list[np.ndarray]:
        """Run ``role`` on ``values`` (in the order of its inputs); returns its outputs."""
        if self.closed:
            raise RuntimeError("the video predictor was closed: load the model again")
        inputs, outputs = self.io[role]
        feeds = dict(zip(inputs, values, strict=True))
        session = self._session(role)
        start = time.perf_counter()
        result = session.run(list(outputs), feeds)
        stage = self.STAGES[role]
        self.timings[stage] = self.timings.get(stage, 0.0) + time.perf_counter() - start
        return result

    @property
    def providers(self) -> dict[str, str]:
        """The execution provider that actually runs each open graph."""
        return {role: s.get_providers()[0] for role, s in self._sessions.items()}
