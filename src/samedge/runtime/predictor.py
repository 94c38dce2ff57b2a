"""The torch-free predictor: encode an image once, then decode each prompt in milliseconds."""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal

import numpy as np

from ..artifacts import ModelArtifact, resolve_model
from ..errors import ArtifactError
from ..imageio import ImageLike, load_image
from ..manifest import OPTIONAL_ROLES
from ..specs import (
    HAS_MASK_INPUT,
    LOW_RES_MASKS,
    LOW_RES_SIZE,
    MASK_INPUT,
    POINT_COORDS,
    POINT_LABELS,
    ModelSpec,
)
from .openvino_native import OpenVINOSession
from .postprocess import select_masks, upscale_masks
from .preprocess import preprocess
from .prompts import DecoderPrompts, normalize_prompts
from .session import (
    ProviderSettings,
    Shape,
    arena_mode,
    binding_device,
    create_session,
    default_threads,
    native_openvino,
    requested_providers,
    run_bound,
    run_into,
    run_options,
    session_io,
)
from .types import DeviceTensors, ImageEmbedding, MaskPrediction

log = logging.getLogger(__name__)


def decoder_shape_profile(
    inputs: Sequence[str], max_points: int = 32, max_batch: int = 64
) -> dict[str, tuple[Shape, Shape, Shape]]:
    """TensorRT ``(min, opt, max)`` shapes of the dynamic ones among a decoder graph's
    ``inputs`` (``spec.decoder_inputs`` or ``spec.mask_decoder_inputs``).

    The prompt batch ``B`` and point count ``N`` (points, box corners and padding point,
    see :func:`samedge.runtime.prompts.normalize_prompts`) are dynamic: ``point_coords``
    ``(B, N, 2)``, ``point_labels`` ``(B, N)``, ``mask_input`` ``(B, 1, 256, 256)``,
    ``has_mask_input`` ``(B,)``; the per-image context inputs are static. Optimised for
    one click (``B = 1``, ``N = 2``); up to ``max_batch`` prompt sets of ``max_points``.
    """

    def shapes(batch: int, points: int) -> dict[str, Shape]:
        return {
            POINT_COORDS: (batch, points, 2),
            POINT_LABELS: (batch, points),
            MASK_INPUT: (batch, 1, LOW_RES_SIZE, LOW_RES_SIZE),
            HAS_MASK_INPUT: (batch,),
        }

    low, opt, high = shapes(1, 1), shapes(1, 2), shapes(max_batch, max_points)
    return {n: (low[n], opt[n], high[n]) for n in inputs if n in low}


def run_head(spec: ModelSpec, session: Any, feeds: Mapping[str, Any]) -> list[np.ndarray]:
    """``decoder_head.onnx`` on ``decoder.onnx``'s feeds: the values of
    ``spec.head_outputs`` (scores first)."""
    return session.run(list(spec.head_outputs), {n: feeds[n] for n in spec.head_inputs})


def run_upscaler(
    spec: ModelSpec, session: Any, head_out: Sequence[np.ndarray], feeds: Mapping[str, Any]
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


class Predictor:
    """ONNX Runtime sessions for one exported model: image encoder, the decoder's per-image
    context, and the prompt decoders (points/boxes; with a mask input).

    Use :meth:`from_pretrained` to create one. The predictor holds no per-image state:
    :meth:`encode` returns an immutable :class:`ImageEmbedding` that :meth:`predict` takes,
    so one predictor serves many images and threads of control.
    """

    def __init__(
        self,
        artifact: ModelArtifact,
        providers: str | Sequence[str] | None = None,
        threads: int | None = None,
        provider_settings: ProviderSettings | None = None,
    ) -> None:
        self.artifact = artifact
        self.spec: ModelSpec = artifact.spec
        self._providers, self._threads = providers, threads
        self._settings = provider_settings or ProviderSettings()
        # GPU providers bind inputs and outputs on the device; None: plain run on the CPU.
        self._devices: dict[str, tuple[str, int] | None] = {}
        # SAMEDGE_ORT_ARENA=shrink: the encoder's own arena goes back to the system after a
        # run; otherwise every session shares one arena (see create_session).
        shrink = arena_mode() == "shrink"
        self._encoder: Any
        if native_openvino(providers):
            # OpenVINO without its ONNX Runtime provider: the encoder on OpenVINO's runtime,
            # the decoder graphs on the providers asked for after it (see openvino_native).
            self._providers = requested_providers(providers)[1:] or None
            self._encoder = OpenVINOSession(
                artifact.encoder_path,
                self._settings.openvino_device,
                threads or default_threads(),
                self._settings.engine_dir("openvino") / self._cache_name("encoder"),
            )
            log.info(
                "%s runs on OpenVINO's runtime (%s); the decoder graphs on ONNX Runtime",
                artifact.encoder_path.name,
                self._settings.openvino_device,
            )
        else:
            self._encoder = create_session(
                artifact.encoder_path,
                providers,
                threads,
                mem_pattern=False,
                settings=self._settings,
                cache_name=self._cache_name("encoder"),
                shared_arena=False if shrink else None,
            )
        self._encoder_options = None
        if shrink:
            self._encoder_options = run_options({"memory.enable_memory_arena_shrinkage": "cpu:0"})
        self._devices["encoder"] = binding_device(self._encoder, self._settings)
        # The decoder graphs' peak memory is small: keep their buffers in the arena for reuse.
        self._context = self._open("context", self.spec.context_inputs, self.spec.context_outputs)
        self._decoder = self._open("decoder", self._inputs("decoder"), self.spec.decoder_outputs)
        self._check_io(
            "encoder", self._encoder, self.spec.encoder_inputs, self.spec.encoder_outputs
        )
        # The mask-prompt decoder is opened on first use: most work never needs it.
        self._mask_decoder: Any = None
        # Batched CPU decoding (see CPU_DECODE_BATCH): single-threaded sessions per role and
        # a pool of threads that run them, made on first use.
        self._workers = self._threads or default_threads()
        self._serial: dict[str, Any] = {}
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        if artifact.random_weights:
            log.warning(
                "%s was exported with random weights (seed %s): masks are meaningless",
                self.spec.name,
                artifact.manifest.weights.get("seed"),
            )

    def _cache_name(self, role: str) -> str:
        """Engine cache subfolder of a graph: a new export never loads a stale engine."""
        return f"{self.spec.name}-{role}-{self.artifact.manifest.files[role][0].sha256[:16]}"

    def _open(
        self, role: str, inputs: Sequence[str], outputs: Sequence[str], threads: int | None = None
    ) -> Any:
        """A decoder-side session; ``threads`` given: a CPU session with that many threads."""
        settings = self._settings
        session = create_session(
            self.artifact.path(role),
            self._providers if threads is None else "cpu",
            threads or self._threads,
            arena=True,
            settings=settings,
            profile=decoder_shape_profile(inputs, settings.trt_max_points, settings.trt_max_batch),
            cache_name=self._cache_name(role),
        )
        self._check_io(role, session, inputs, outputs)
        if threads is None:  # the serial CPU sessions never bind on a device
            self._devices[role] = binding_device(session, settings)
        return session

    def _inputs(self, role: str) -> tuple[str, ...]:
        """Input names of a decoder graph."""
        return {
            "decoder_mask": self.spec.mask_decoder_inputs,
            "decoder_head": self.spec.head_inputs,
            "upscaler": self.spec.upscaler_inputs,
        }.get(role, self.spec.decoder_inputs)

    def _outputs(self, role: str) -> tuple[str, ...]:
        """Output names of a decoder graph."""
        return {"decoder_head": self.spec.head_outputs, "upscaler": (LOW_RES_MASKS,)}.get(
            role, self.spec.decoder_outputs
        )

    def _check_io(
        self, role: str, session: Any, inputs: Sequence[str], outputs: Sequence[str]
    ) -> None:
        got_in, got_out = session_io(session)
        if set(got_in) != set(inputs) or not set(outputs) <= set(got_out):
            raise ArtifactError(
                f"{self.artifact.folder}: {role} graph has inputs {got_in} and outputs "
                f"{got_out}, not those of {self.spec.name}; re-export the model"
            )

    @classmethod
    def from_pretrained(
        cls,
        name_or_dir: str | os.PathLike[str],
        providers: str | Sequence[str] | None = None,
        threads: int | None = None,
        verify: bool = True,
        provider_settings: ProviderSettings | None = None,
    ) -> Predictor:
        """Load an exported model by registry name (from the cache) or folder path.

        Args:
            name_or_dir: e.g. ``"sam2.1_hiera_tiny"`` or ``"models/sam_vit_b"``.
            providers: execution providers in order of preference, e.g. ``["cuda", "cpu"]``;
                CPU is always the fallback. ``"openvino"`` first, without ONNX Runtime's
                OpenVINO provider but with the ``openvino`` package: the image encoder runs
                on OpenVINO's own runtime (:mod:`samedge.runtime.openvino_native`).
            threads: intra-op threads per session (default: all usable cores).
            verify: check every file's sha256 against the manifest.
            provider_settings: options of the GPU and accelerator providers (TensorRT
                engine cache and FP16, CUDA device, OpenVINO device...).
        """
        return cls(resolve_model(name_or_dir, verify=verify), providers, threads, provider_settings)

    @property
    def providers(self) -> dict[str, str]:
        """The execution provider that actually runs each graph."""
        return {
            "encoder": self._encoder.get_providers()[0],
            "decoder": self._decoder.get_providers()[0],
        }

    def encode(self, image: ImageLike, color: Literal["RGB", "BGR"] = "RGB") -> ImageEmbedding:
        """Run the image encoder (and the decoder's per-image context) once.

        Args:
            image: path, PIL image or ``H x W x 3`` uint8 array (see
                :func:`samedge.imageio.load_image`).
            color: channel order of an array input.
        """
        rgb = load_image(image, color=color)
        tensor, input_size = preprocess(rgb, self.spec)
        return self.encode_preprocessed(tensor, input_size, rgb.shape[:2])

    def encode_preprocessed(
        self, tensor: np.ndarray, input_size: tuple[int, int], original_size: tuple[int, int]
    ) -> ImageEmbedding:
        """Run the encoder on the output of :func:`samedge.runtime.preprocess.preprocess`."""
        spec, devices = self.spec, self._devices
        feeds = {spec.encoder_inputs[0]: tensor}
        if devices["encoder"] is None and devices["context"] is None:
            outputs = self._encoder.run(list(spec.encoder_outputs), feeds, self._encoder_options)
            context = self._run_context(outputs[0], tuple(outputs[1:]))
            on_device = None
        else:
            outputs, context, on_device = self._encode_on_device(feeds)
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
        self, feeds: dict[str, Any]
    ) -> tuple[list[np.ndarray], list[np.ndarray], DeviceTensors | None]:
        """Encoder and context with IOBinding: the encoder's outputs stay on the GPU for the
        context graph, and the context's for the decoder, when those run on the same GPU;
        host copies are made for the :class:`ImageEmbedding`."""
        spec, devices = self.spec, self._devices
        enc_out, ctx_out = list(spec.encoder_outputs), list(spec.context_outputs)
        if devices["encoder"] is None:
            outputs, kept = self._encoder.run(enc_out, feeds, self._encoder_options), {}
        else:
            keep = enc_out if devices["context"] == devices["encoder"] else []
            outputs, kept = run_bound(self._encoder, feeds, enc_out, devices["encoder"], keep)
        ctx_feeds: dict[str, Any] = dict(zip(spec.context_inputs, outputs, strict=True))
        ctx_feeds.update(kept)
        if devices["context"] is None:
            return outputs, self._context.run(ctx_out, ctx_feeds), None
        keep = ctx_out if devices["decoder"] == devices["context"] else []
        context, ctx_kept = run_bound(self._context, ctx_feeds, ctx_out, devices["context"], keep)
        on_device = DeviceTensors(devices["context"], ctx_kept) if ctx_kept else None
        return outputs, context, on_device

    def _run_context(
        self, image_embeddings: np.ndarray, high_res: tuple[np.ndarray, ...]
    ) -> list[np.ndarray]:
        feeds = dict(zip(self.spec.context_inputs, (image_embeddings, *high_res), strict=True))
        return self._context.run(list(self.spec.context_outputs), feeds)

    def decoder_feeds(
        self, embedding: ImageEmbedding, prompts: DecoderPrompts
    ) -> tuple[str, dict[str, np.ndarray]]:
        """The graph role (``"decoder"`` or ``"decoder_mask"``) and the inputs for one call.

        Prompt sets without a mask input go to ``decoder.onnx``, which does no mask work.
        """
        if embedding.model != self.spec.name:
            raise ValueError(
                f"this embedding was computed by {embedding.model}, not {self.spec.name}"
            )
        context = embedding.context or tuple(
            self._run_context(embedding.image_embeddings, embedding.high_res_features)
        )
        values: list[np.ndarray] = [*context, prompts.point_coords, prompts.point_labels]
        if bool(np.any(prompts.has_mask_input)):
            values += [prompts.mask_input, prompts.has_mask_input]
            return "decoder_mask", dict(zip(self.spec.mask_decoder_inputs, values, strict=True))
        return "decoder", dict(zip(self.spec.decoder_inputs, values, strict=True))

    def _session(self, role: str, serial: bool = False) -> Any:
        """The session of a decoder graph; ``serial``: a single-threaded one for the
        parallel calls of a batch (the same session when the predictor has one thread).
        The split decoder's graphs (:meth:`decode_needed`) only ever run that way."""
        if serial and (self._workers > 1 or role in OPTIONAL_ROLES):
            with self._lock:
                if role not in self._serial:
                    self._serial[role] = self._open(
                        role, self._inputs(role), self._outputs(role), threads=1
                    )
                return self._serial[role]
        if role == "decoder":
            return self._decoder
        with self._lock:
            if self._mask_decoder is None:
                self._mask_decoder = self._open(role, self._inputs(role), self.spec.decoder_outputs)
            return self._mask_decoder

    def _map(self, function: Any, items: Sequence[Any]) -> list[Any]:
        """``[function(item) ...]`` on the decoding threads, in order."""
        if self._workers == 1:
            return [function(item) for item in items]
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix="samedge-decode")
        return list(self._pool.map(function, items))

    def _with_context(self, embedding: ImageEmbedding) -> ImageEmbedding:
        """``embedding`` with its decoder context, computed here if it has none, so that
        the several calls of a batch do not each compute it."""
        if embedding.context:
            return embedding
        context = self._run_context(embedding.image_embeddings, embedding.high_res_features)
        return dataclasses.replace(embedding, context=tuple(context))

    def decode(
        self, embedding: ImageEmbedding, prompts: DecoderPrompts
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """One decoder call on prepared prompts, before any mask selection or upscaling.

        Returns:
            ``low_res`` float32 ``(B, 4, 256, 256)`` logits of all mask tokens, ``iou``
            float32 ``(B, 4)``, and SAM 2's ``object_score_logits`` ``(B,)`` (else ``None``).
            On the CPU, more than :data:`CPU_DECODE_BATCH` prompt sets run as several
            single-threaded calls in parallel (prompt sets are independent, so the results
            are the same).
        """
        if self._devices["decoder"] is None and prompts.batch > CPU_DECODE_BATCH:
            return self._decode_serial(self._with_context(embedding), prompts)
        return self._decode_call(embedding, prompts)

    def _decode_serial(
        self, embedding: ImageEmbedding, prompts: DecoderPrompts
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """:meth:`decode` as single-threaded CPU calls side by side, each writing its
        outputs into its rows of the batch's arrays: no per-call arrays to concatenate, so
        a batch's logits exist once instead of twice at its peak (64 MiB for segment
        everything's 64 points), and 2-5 % less time per prompt (SAM 2.1 tiny, 64 points,
        2 threads, in turns: 13.1 / 12.7 / 13.3 against 13.4 / 13.1 / 14.0 ms)."""
        spec, batch = self.spec, prompts.batch
        tokens = spec.num_mask_tokens
        arrays = [
            np.empty((batch, tokens, LOW_RES_SIZE, LOW_RES_SIZE), np.float32),
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
        return self._devices["decoder"] is None and all(
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
        if not self.can_split or bool(np.any(prompts.has_mask_input)):
            low_res, iou, obj = self.decode(embedding, prompts)
            return low_res, iou, obj, np.ones(prompts.batch, dtype=bool)
        embedding = self._with_context(embedding)
        head, upscaler = (self._session(role, serial=True) for role in OPTIONAL_ROLES)
        spec = self.spec
        shape = (prompts.batch, spec.num_mask_tokens, LOW_RES_SIZE, LOW_RES_SIZE)
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
        obj = None if parts[0][1] is None else np.concatenate([p[1] for p in parts])  # type: ignore[misc]
        drawn = np.array([p[2] for p in parts], dtype=bool)
        return low_res, iou, obj, drawn

    def _decode_call(
        self, embedding: ImageEmbedding, prompts: DecoderPrompts, serial: bool = False
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        role, feeds = self.decoder_feeds(embedding, prompts)
        session, names = self._session(role, serial), list(self.spec.decoder_outputs)
        device = None if serial else self._devices[role]  # serial calls run on the CPU
        if device is None:
            outputs = session.run(names, feeds)
        else:
            kept = embedding.on_device
            if kept is not None and kept.device == device:
                feeds.update(kept.values)  # the context is already on the GPU: no copy
            outputs, _ = run_bound(session, feeds, names, device)
        obj = outputs[2][:, 0] if self.spec.has_object_score else None
        return outputs[0], outputs[1], obj

    def predict(
        self,
        embedding: ImageEmbedding,
        points: Any = None,
        labels: Any = None,
        box: Any = None,
        boxes: Any = None,
        mask_input: Any = None,
        multimask_output: bool = True,
        best_only: bool = False,
    ) -> MaskPrediction:
        """Masks for one or more prompt sets on an encoded image.

        Args:
            embedding: from :meth:`encode`.
            points: ``(N, 2)`` XY pixels for one prompt set, or ``(B, N, 2)`` for ``B``.
            labels: ``(N,)`` or ``(B, N)``; 1 foreground, 0 background.
            box: one XYXY box ``(4,)``.
            boxes: ``(B, 4)`` XYXY boxes, one prompt set (and one object) per box.
            mask_input: low-res logits of a previous prediction to refine, e.g.
                ``previous.low_res_logits[0, [best]]``.
            multimask_output: three candidate masks per set (best for a single click),
                or one.
            best_only: keep only the highest-scoring of the candidates (``K = 1``); only
                that mask is upscaled to full resolution, which is what an interactive click
                needs.

        Returns:
            :class:`MaskPrediction` with ``K = 3`` or ``1`` masks per set, at the original
            resolution.
        """
        prompts = normalize_prompts(
            self.spec,
            embedding.original_size,
            embedding.input_size,
            points=points,
            labels=labels,
            box=box,
            boxes=boxes,
            mask_input=mask_input,
        )
        low_res, iou, obj = self.decode(embedding, prompts)
        logits, scores = select_masks(low_res, iou, self.spec, multimask_output)
        if best_only and logits.shape[1] > 1:
            rows = np.arange(len(scores))
            pick = np.argmax(scores, axis=1)
            logits, scores = logits[rows, pick][:, None], scores[rows, pick][:, None]
        spec = self.spec
        masks = upscale_masks(
            logits, spec, embedding.input_size, embedding.original_size, spec.mask_threshold
        )
        if spec.low_res_clamp is not None:
            logits = np.clip(logits, -spec.low_res_clamp, spec.low_res_clamp)
        return MaskPrediction(
            masks=masks,
            scores=np.ascontiguousarray(scores, dtype=np.float32),
            low_res_logits=np.ascontiguousarray(logits, dtype=np.float32),
            object_score_logits=obj,
        )


class ImagePredictor:
    """The official ``SamPredictor`` interface on top of :class:`Predictor`.

    ``set_image`` encodes once; ``predict`` returns ``(masks, scores, low_res_logits)`` as
    NumPy arrays shaped like the official predictors' (``K x H x W``, ``K``,
    ``K x 256 x 256`` for one prompt set).
    """

    def __init__(self, predictor: Predictor) -> None:
        self.predictor = predictor
        self.embedding: ImageEmbedding | None = None

    @classmethod
    def from_pretrained(cls, name_or_dir: str | os.PathLike[str], **kwargs: Any) -> ImagePredictor:
        return cls(Predictor.from_pretrained(name_or_dir, **kwargs))

    def set_image(self, image: ImageLike, image_format: Literal["RGB", "BGR"] = "RGB") -> None:
        self.embedding = self.predictor.encode(image, color=image_format)

    def reset_image(self) -> None:
        self.embedding = None

    def predict(
        self,
        point_coords: Any = None,
        point_labels: Any = None,
        box: Any = None,
        mask_input: Any = None,
        multimask_output: bool = True,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if self.embedding is None:
            raise RuntimeError("call set_image(...) before predict(...)")
        box_arr = None if box is None else np.asarray(box, dtype=np.float64)
        many = box_arr is not None and box_arr.ndim == 2 and len(box_arr) > 1
        result = self.predictor.predict(
            self.embedding,
            points=point_coords,
            labels=point_labels,
            boxes=box_arr.reshape(-1, 4) if box_arr is not None else None,
            mask_input=mask_input,
            multimask_output=multimask_output,
        )
        if many or (point_coords is not None and np.ndim(point_coords) == 3):
            return result.masks, result.scores, result.low_res_logits
        return result.masks[0], result.scores[0], result.low_res_logits[0]


__all__ = ["LOW_RES_SIZE", "ImagePredictor", "Predictor"]
