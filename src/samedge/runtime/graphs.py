"""The graphs of one exported model and the sessions that run them.

:class:`ModelGraphs` is what :class:`samedge.runtime.predictor.Predictor`, segment
everything, the benchmark and the video tracker call to run a model: it opens one session
per graph (file role), fixes at construction where each keeps its tensors (the host, or a
GPU through IOBinding), runs batches of prompts on the CPU as single-threaded calls side by
side, and draws masks only where they are needed with the split decoder. Every graph's input
and output names come from the spec (:func:`graph_io`).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple, TypeVar

import numpy as np

from ..artifacts import ModelArtifact
from ..errors import ArtifactError
from ..manifest import OPTIONAL_ROLES
from ..specs import LOW_RES_MASKS, ModelSpec
from .openvino_native import OpenVINOSession
from .policy import arena_mode, default_threads
from .prompts import DecoderPrompts
from .providers import (
    ProviderSettings,
    decoder_shape_profile,
    device_of,
    requested_providers,
)
from .session import (
    create_session,
    native_openvino,
    run_bound,
    run_into,
    run_options,
    session_io,
)
from .types import BindableSession, Closeable, DeviceTensors, GraphSession, ImageEmbedding

log = logging.getLogger(__name__)

_T = TypeVar("_T")
_R = TypeVar("_R")

#: Where a graph keeps its tensors: ``(device, id)`` on a GPU, ``None`` on the host.
Device = tuple[str, int] | None


class GraphIO(NamedTuple):
    """Input and output names of one graph, in the order the runtime feeds and reads them."""

    inputs: tuple[str, ...]
    outputs: tuple[str, ...]


def graph_io(spec: ModelSpec) -> dict[str, GraphIO]:
    """The input and output names of every graph (file role, see
    :data:`samedge.manifest.ROLES` and :data:`samedge.manifest.OPTIONAL_ROLES`) of a model
    exported for ``spec``."""
    return {
        "encoder": GraphIO(spec.encoder_inputs, spec.encoder_outputs),
        "context": GraphIO(spec.context_inputs, spec.context_outputs),
        "decoder": GraphIO(spec.decoder_inputs, spec.decoder_outputs),
        "decoder_mask": GraphIO(spec.mask_decoder_inputs, spec.decoder_outputs),
        "decoder_head": GraphIO(spec.head_inputs, spec.head_outputs),
        "upscaler": GraphIO(spec.upscaler_inputs, (LOW_RES_MASKS,)),
    }


def run_head(
    spec: ModelSpec, session: GraphSession, feeds: Mapping[str, np.ndarray]
) -> list[np.ndarray]:
    """``decoder_head.onnx`` on ``decoder.onnx``'s feeds: the values of
    ``spec.head_outputs`` (scores first)."""
    return session.run(list(spec.head_outputs), {n: feeds[n] for n in spec.head_inputs})


def run_upscaler(
    spec: ModelSpec,
    session: GraphSession,
    head_out: Sequence[np.ndarray],
    feeds: Mapping[str, np.ndarray],
) -> np.ndarray:
    """``upscaler.onnx`` on :func:`run_head`'s outputs (and SAM 2's high-res context from
    ``decoder.onnx``'s feeds): ``low_res_masks``, as ``decoder.onnx`` computes them."""
    values = {**feeds, **dict(zip(spec.head_outputs, head_out, strict=True))}
    return session.run([LOW_RES_MASKS], {n: values[n] for n in spec.upscaler_inputs})[0]


#: On the CPU, several prompt sets are decoded one per call, on as many Python threads as
#: the predictor has intra-op threads, each call running single-threaded: no thread wake-ups
#: between the decoder's ~500 operators and each core's cache holds one prompt's working
#: set. Measured (SAM 2.1 tiny, quiet 2-core machine, ms per prompt): one 2-thread session
#: 25.9 / 24.3 / 26.3 / 30.0 at 1 / 2 / 4 / 64 prompt sets per call, two single-threaded
#: calls side by side 19.6. GPU providers get the whole batch in one call.
CPU_DECODE_BATCH = 1

#: A decoder call's outputs before mask selection: ``low_res`` ``(B, 4, 256, 256)``,
#: ``iou`` ``(B, 4)`` and SAM 2's object score logits ``(B,)`` (``None`` for SAM).
Decoded = tuple[np.ndarray, np.ndarray, np.ndarray | None]


def _warn_saturating_openvino(artifact: ModelArtifact) -> None:
    """OpenVINO's integer kernels overflow on x86 CPUs without VNNI or AMX (ONNX Runtime's
    are made exact there, see :func:`samedge.runtime.policy.int8_mode`): say so."""
    from .diagnostics import saturating_int8_cpu

    if saturating_int8_cpu():
        log.warning(
            "%s: this CPU has neither VNNI nor AMX, so OpenVINO's 8-bit products saturate "
            "and the INT8 encoder's masks stray further from fp32 than its recorded fidelity "
            "(EfficientViT-SAM L0: embedding error 0.073 instead of 0.036); without "
            "--provider openvino, ONNX Runtime computes them exactly here",
            artifact.folder,
        )


class ModelGraphs(Closeable):
    """The sessions of one exported model: image encoder, the decoder's per-image context,
    the prompt decoders (points/boxes; with a mask input) and the split decoder.

    ``close()`` (or the end of a ``with`` block) shuts the decoding threads down and drops
    every session; the object cannot be used after that.

    Args:
        artifact: the model folder.
        providers: execution providers in order of preference (see
            :func:`samedge.runtime.session.resolve_providers`); ``"openvino"`` first without
            ONNX Runtime's OpenVINO provider: the encoder on OpenVINO's own runtime
            (:func:`samedge.runtime.session.native_openvino`), the decoder graphs on the
            providers that follow it.
        threads: intra-op threads per session (``None``: :func:`default_threads`).
        settings: options of the accelerated providers.

    Attributes:
        io: :func:`graph_io` of the model's spec.
        devices: where each graph (role) keeps its tensors, fixed at construction: a
            ``(device, id)`` GPU that IOBinding binds to, or ``None`` for plain host runs.
    """

    def __init__(
        self,
        artifact: ModelArtifact,
        providers: str | Sequence[str] | None = None,
        threads: int | None = None,
        settings: ProviderSettings | None = None,
    ) -> None:
        self.artifact = artifact
        self.spec: ModelSpec = artifact.spec
        self.io = graph_io(self.spec)
        self.settings = settings or ProviderSettings()
        self._providers, self._threads = providers, threads
        self._sessions: dict[str, BindableSession] = {}
        # SAMEDGE_ORT_ARENA=shrink: the encoder's own arena goes back to the system after a
        # run; otherwise every session shares one arena (see create_session).
        shrink = arena_mode() == "shrink"
        encoder: GraphSession
        if native_openvino(providers):
            # OpenVINO without its ONNX Runtime provider: the encoder on OpenVINO's runtime,
            # the decoder graphs on the providers asked for after it (see openvino_native).
            self._providers = requested_providers(providers)[1:] or None
            encoder = OpenVINOSession.for_settings(
                artifact.encoder_path,
                self.settings,
                threads or default_threads(),
                self._cache_name("encoder"),
            )
            log.info(
                "%s runs on OpenVINO's runtime (%s); the decoder graphs on ONNX Runtime",
                artifact.encoder_path.name,
                encoder.get_providers()[0],
            )
            if artifact.manifest.precision.get("encoder", "").startswith("int8"):
                _warn_saturating_openvino(artifact)
        else:
            encoder = self._sessions["encoder"] = create_session(
                artifact.encoder_path,
                providers,
                threads,
                mem_pattern=False,
                settings=self.settings,
                cache_name=self._cache_name("encoder"),
                shared_arena=False if shrink else None,
            )
        self._encoder: GraphSession | None = encoder
        self._encoder_options = None
        if shrink:
            self._encoder_options = run_options({"memory.enable_memory_arena_shrinkage": "cpu:0"})
        # The decoder graphs' peak memory is small: keep their buffers in the arena for reuse.
        for role in ("context", "decoder"):
            self._sessions[role] = self._open(role)
        self._check_io("encoder", encoder)
        self._check_encoder_input(encoder)
        # The mask-prompt decoder, opened on first use (most work never needs it), gets the
        # decoder's providers and settings and so binds where the decoder does.
        self.devices: Mapping[str, Device] = {
            "encoder": self._device(encoder),
            "context": self._device(self._sessions["context"]),
            "decoder": self._device(self._sessions["decoder"]),
            "decoder_mask": self._device(self._sessions["decoder"]),
        }
        # Batched CPU decoding (see CPU_DECODE_BATCH): single-threaded sessions per role and
        # a pool of threads that run them, made on first use.
        self._workers = threads or default_threads()
        self._serial: dict[str, BindableSession] = {}
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def _device(self, session: GraphSession) -> Device:
        return device_of(session.get_providers()[0], self.settings)

    def _cache_name(self, role: str) -> str:
        """Engine cache subfolder of a graph: a new export never loads a stale engine."""
        return self.artifact.cache_name(role)

    def _open(self, role: str, threads: int | None = None) -> BindableSession:
        """A decoder-side session; ``threads`` given: a CPU session with that many threads."""
        settings, inputs = self.settings, self.io[role].inputs
        session = create_session(
            self.artifact.path(role),
            self._providers if threads is None else "cpu",
            threads or self._threads,
            arena=True,
            settings=settings,
            profile=decoder_shape_profile(
                inputs, self.spec.low_res_size, settings.trt_max_points, settings.trt_max_batch
            ),
            cache_name=self._cache_name(role),
        )
        self._check_io(role, session)
        return session

    def _check_io(self, role: str, session: GraphSession) -> None:
        inputs, outputs = self.io[role]
        got_in, got_out = session_io(session)
        if set(got_in) != set(inputs) or not set(outputs) <= set(got_out):
            raise ArtifactError(
                f"{self.artifact.folder}: {role} graph has inputs {got_in} and outputs "
                f"{got_out}, not those of {self.spec.name}; re-export the model"
            )

    def _check_encoder_input(self, encoder: GraphSession) -> None:
        """Same names, another model's encoder (e.g. 512 vs 1024 px): its image size."""
        (image,) = [i for i in encoder.get_inputs() if i.name == self.io["encoder"].inputs[0]]
        side = self.spec.image_size
        if tuple(image.shape[-2:]) != (side, side):
            raise ArtifactError(
                f"{self.artifact.folder}: the encoder graph takes images of shape "
                f"{list(image.shape)}, {self.spec.name} {side} x {side} pixels: it is "
                f"another model's encoder; re-export the model"
            )

    def _live_encoder(self) -> GraphSession:
        """The encoder's session; raises once :meth:`close` was called."""
        if self._encoder is None:
            raise RuntimeError(
                f"the {self.spec.name} sessions were closed (close() or the end of a with "
                f"block): load the model again"
            )
        return self._encoder

    def close(self) -> None:
        """Shut the decoding threads down (after the calls they are running) and drop every
        session. Calling it again does nothing."""
        with self._lock:
            pool, self._pool = self._pool, None
            self._encoder = None
            self._sessions.clear()
            self._serial.clear()
        if pool is not None:
            pool.shutdown(wait=True)

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._encoder is None

    @property
    def providers(self) -> dict[str, str]:
        """The execution provider that actually runs each graph."""
        encoder = self._live_encoder()
        return {
            "encoder": encoder.get_providers()[0],
            "decoder": self._sessions["decoder"].get_providers()[0],
        }

    def encode(
        self, tensor: np.ndarray, input_size: tuple[int, int], original_size: tuple[int, int]
    ) -> ImageEmbedding:
        """The encoder and the decoder's per-image context on one preprocessed image.

        Args:
            tensor: float32 ``(1, 3, S, S)``, from
                :func:`samedge.runtime.preprocess.preprocess`.
            input_size: ``(h, w)`` of the resized image inside the prompt frame (see
                :func:`samedge.runtime.preprocess.resized_size`).
            original_size: ``(H, W)`` of the image before preprocessing.
        """
        spec, devices = self.spec, self.devices
        encoder = self._live_encoder()
        feeds = {spec.encoder_inputs[0]: tensor}
        if devices["encoder"] is None and devices["context"] is None:
            outputs = encoder.run(list(spec.encoder_outputs), feeds, self._encoder_options)
            context = self._run_context(outputs[0], tuple(outputs[1:]))
            on_device = None
        else:
            outputs, context, on_device = self._encode_on_device(encoder, feeds)
        return ImageEmbedding(
            model=spec.name,
            image_embeddings=outputs[0],
            high_res_features=tuple(outputs[1:]),
            original_size=(int(original_size[0]), int(original_size[1])),
            input_size=input_size,
            context=tuple(context),
            on_device=on_device,
        )

    def _encode_on_device(
        self, encoder: GraphSession, feeds: dict[str, np.ndarray]
    ) -> tuple[list[np.ndarray], list[np.ndarray], DeviceTensors | None]:
        """Encoder and context with IOBinding: the encoder's outputs stay on the GPU for the
        context graph, and the context's for the decoder, when those run on the same GPU;
        host copies are made for the :class:`ImageEmbedding`."""
        spec, devices = self.spec, self.devices
        enc_out, ctx_out = list(spec.encoder_outputs), list(spec.context_outputs)
        enc_device, ctx_device = devices["encoder"], devices["context"]
        kept: dict[str, Any] = {}  # OrtValues left on the GPU for the context graph
        if enc_device is None:
            outputs = encoder.run(enc_out, feeds, self._encoder_options)
        else:  # a device only ever comes from ONNX Runtime's providers: its session binds
            keep = enc_out if ctx_device == enc_device else []
            outputs, kept = run_bound(self._sessions["encoder"], feeds, enc_out, enc_device, keep)
        ctx_feeds = dict(zip(spec.context_inputs, outputs, strict=True))
        ctx_feeds.update(kept)
        context_session = self._sessions["context"]
        if ctx_device is None:
            return outputs, context_session.run(ctx_out, ctx_feeds), None
        keep = ctx_out if devices["decoder"] == ctx_device else []
        context, ctx_kept = run_bound(context_session, ctx_feeds, ctx_out, ctx_device, keep)
        on_device = DeviceTensors(ctx_device, ctx_kept) if ctx_kept else None
        return outputs, context, on_device

    def _run_context(
        self, image_embeddings: np.ndarray, high_res: tuple[np.ndarray, ...]
    ) -> list[np.ndarray]:
        inputs, outputs = self.io["context"]
        feeds = dict(zip(inputs, (image_embeddings, *high_res), strict=True))
        return self._sessions["context"].run(list(outputs), feeds)

    def _with_context(self, embedding: ImageEmbedding) -> ImageEmbedding:
        """``embedding`` with its decoder context, computed here if it has none, so that
        the several calls of a batch do not each compute it."""
        if embedding.context:
            return embedding
        context = self._run_context(embedding.image_embeddings, embedding.high_res_features)
        return dataclasses.replace(embedding, context=tuple(context))

    def decoder_feeds(
        self, embedding: ImageEmbedding, prompts: DecoderPrompts
    ) -> tuple[str, dict[str, np.ndarray]]:
        """The graph role (``"decoder"`` or ``"decoder_mask"``) and the inputs for one call.

        Prompt sets without a mask input go to ``decoder.onnx``, which does no mask work.
        """
        self._live_encoder()
        if embedding.model != self.spec.name:
            raise ValueError(
                f"this embedding was computed by {embedding.model}, not {self.spec.name}"
            )
        context = embedding.context or tuple(
            self._run_context(embedding.image_embeddings, embedding.high_res_features)
        )
        values: list[np.ndarray] = [*context, prompts.point_coords, prompts.point_labels]
        role = "decoder"
        if bool(np.any(prompts.has_mask_input)):
            values += [prompts.mask_input, prompts.has_mask_input]
            role = "decoder_mask"
        return role, dict(zip(self.io[role].inputs, values, strict=True))

    def _session(self, role: str, serial: bool = False) -> BindableSession:
        """The session of a decoder graph; ``serial``: a single-threaded one for the
        parallel calls of a batch (the same session when there is one thread). The split
        decoder's graphs (:meth:`decode_needed`) only ever run that way."""
        if serial and (self._workers > 1 or role in OPTIONAL_ROLES):
            with self._lock:
                self._live_encoder()
                if role not in self._serial:
                    self._serial[role] = self._open(role, threads=1)
                return self._serial[role]
        session = self._sessions.get(role)
        if session is not None:
            return session
        with self._lock:  # the mask-prompt decoder, on first use
            self._live_encoder()
            if role not in self._sessions:
                self._sessions[role] = self._open(role)
            return self._sessions[role]

    def _decoding_threads(self) -> ThreadPoolExecutor:
        with self._lock:
            self._live_encoder()
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix="samedge-decode")
            return self._pool

    def _map(self, function: Callable[[_T], _R], items: Iterable[_T]) -> list[_R]:
        """``[function(item) ...]`` on the decoding threads, in order."""
        if self._workers == 1:
            return [function(item) for item in items]
        return list(self._decoding_threads().map(function, items))

    def open_parallel_decoding(self) -> None:
        """Open now what :meth:`decode` of several prompt sets opens on its first use on the
        CPU: the decoder's single-threaded session and the threads that run it
        (EfficientViT-SAM L0, 2 threads: the first 2-box call took 103 ms, the next 27 ms),
        so that a real-time loop's first frame with several prompts does not pay for it.
        The mask-prompt decoder and the split decoder of :meth:`decode_needed` stay opened
        on first use. Nothing to open with one thread or a decoder on a GPU."""
        if self.devices["decoder"] is not None or self._workers == 1:
            return
        self._session("decoder", serial=True)
        self._decoding_threads()

    def decode(self, embedding: ImageEmbedding, prompts: DecoderPrompts) -> Decoded:
        """One decoder call on prepared prompts, before any mask selection or upscaling.

        Returns:
            ``low_res`` float32 ``(B, 4, 256, 256)`` logits of all mask tokens, ``iou``
            float32 ``(B, 4)``, and SAM 2's ``object_score_logits`` ``(B,)`` (else ``None``).
            On the CPU, more than :data:`CPU_DECODE_BATCH` prompt sets run as several
            single-threaded calls in parallel (prompt sets are independent, so the results
            are the same).
        """
        self._live_encoder()
        if self.devices["decoder"] is None and prompts.batch > CPU_DECODE_BATCH:
            return self._decode_serial(self._with_context(embedding), prompts)
        return self._decode_call(embedding, prompts)

    def _decode_serial(self, embedding: ImageEmbedding, prompts: DecoderPrompts) -> Decoded:
        """:meth:`decode` as single-threaded CPU calls side by side, each writing its
        outputs into its rows of the batch's arrays: no per-call arrays to concatenate, so
        a batch's logits exist once instead of twice at its peak (64 MiB for segment
        everything's 64 points), and 2-5 % less time per prompt (SAM 2.1 tiny, 64 points,
        2 threads, in turns: 13.1 / 12.7 / 13.3 against 13.4 / 13.1 / 14.0 ms)."""
        spec, batch = self.spec, prompts.batch
        tokens = spec.num_mask_tokens
        arrays = [
            np.empty((batch, tokens, spec.low_res_size, spec.low_res_size), np.float32),
            np.empty((batch, tokens), np.float32),
        ]
        if spec.has_object_score:
            arrays.append(np.empty((batch, 1), np.float32))
        names = list(spec.decoder_outputs)

        def one(start: int) -> None:
            stop = min(start + CPU_DECODE_BATCH, batch)
            role, feeds = self.decoder_feeds(embedding, prompts.rows(start, stop))
            rows = {name: a[start:stop] for name, a in zip(names, arrays, strict=True)}
            run_into(self._session(role, serial=True), feeds, rows)

        self._map(one, range(0, batch, CPU_DECODE_BATCH))
        obj = arrays[2][:, 0] if spec.has_object_score else None
        return arrays[0], arrays[1], obj

    @property
    def can_split(self) -> bool:
        """Whether :meth:`decode_needed` draws masks only where they are needed: the folder
        holds the split decoder (``decoder_head.onnx`` + ``upscaler.onnx``; not in quantized
        or older folders) and the decoder runs on the CPU."""
        return self.devices["decoder"] is None and all(
            self.artifact.has(role) for role in OPTIONAL_ROLES
        )

    def decode_needed(
        self,
        embedding: ImageEmbedding,
        prompts: DecoderPrompts,
        needed: Callable[[np.ndarray], bool],
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray]:
        """:meth:`decode` for point and box prompts, drawing the masks of a prompt set only
        when ``needed(iou)`` (its ``(4,)`` predicted IoUs) is true.

        Each prompt set goes through ``decoder_head.onnx`` (transformer and scores), then,
        if needed, ``upscaler.onnx`` (the masks): the two compute exactly what
        ``decoder.onnx`` does (checked by the export's parity gate), and the upscaling,
        about 40 % of a call, is skipped where no mask would be kept. Drawing every mask
        this way costs ~12 % more than :meth:`decode` (measured, SAM 2.1 tiny, two
        single-threaded calls side by side: 16.4 vs 14.6 ms per prompt; none drawn: 8.9 ms).
        Without :attr:`can_split` this is :meth:`decode`, every mask drawn.

        Returns:
            ``low_res`` ``(B, 4, 256, 256)`` (zeros where not drawn), ``iou`` ``(B, 4)``,
            SAM 2's object score logits ``(B,)`` (else ``None``) and ``drawn`` bool ``(B,)``.
        """
        self._live_encoder()
        if not self.can_split or bool(np.any(prompts.has_mask_input)):
            low_res, iou, obj = self.decode(embedding, prompts)
            return low_res, iou, obj, np.ones(prompts.batch, dtype=bool)
        embedding = self._with_context(embedding)
        head, upscaler = (self._session(role, serial=True) for role in OPTIONAL_ROLES)
        spec = self.spec
        side = spec.low_res_size
        shape = (prompts.batch, spec.num_mask_tokens, side, side)
        low_res = np.zeros(shape, np.float32)  # calloc: rows never drawn cost no memory

        def one(i: int) -> tuple[np.ndarray, np.ndarray | None, bool]:
            feeds = self.decoder_feeds(embedding, prompts.rows(i, i + 1))[1]
            outs = run_head(spec, head, feeds)
            iou = outs[0]
            obj = outs[1][:, 0] if spec.has_object_score else None
            if not needed(iou[0]):
                return iou, obj, False
            low_res[i] = run_upscaler(spec, upscaler, outs, feeds)[0]
            return iou, obj, True

        parts = self._map(one, range(prompts.batch))
        iou = np.concatenate([p[0] for p in parts])
        objs = [p[1] for p in parts if p[1] is not None]
        obj = np.concatenate(objs) if objs else None
        drawn = np.array([p[2] for p in parts], dtype=bool)
        return low_res, iou, obj, drawn

    def _decode_call(self, embedding: ImageEmbedding, prompts: DecoderPrompts) -> Decoded:
        role, feeds = self.decoder_feeds(embedding, prompts)
        session, names = self._session(role), list(self.spec.decoder_outputs)
        device = self.devices[role]
        if device is None:
            outputs = session.run(names, feeds)
        else:
            kept = embedding.on_device
            if kept is not None and kept.device == device:
                feeds.update(kept.values)  # the context is already on the GPU: no copy
            outputs, _ = run_bound(session, feeds, names, device)
        obj = outputs[2][:, 0] if self.spec.has_object_score else None
        return outputs[0], outputs[1], obj
