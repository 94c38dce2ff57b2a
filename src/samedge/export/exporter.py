"""Export a model to ONNX graphs + ``samedge.json``, behind a parity gate.

The graphs: ``encoder.onnx`` (image -> embedding), ``context.onnx`` (the decoder's per-image
work), ``decoder.onnx`` (point and box prompts), ``decoder_mask.onnx`` (prompts with a
mask input), and ``decoder.onnx`` again as two graphs for segment everything:
``decoder_head.onnx`` (the scores) and ``upscaler.onnx`` (the masks). See
:mod:`samedge.export.wrappers`, :mod:`samedge.export.attention` for how the encoders'
attention is traced, and :mod:`samedge.export.graph` for the rewrites applied to the
traced graphs.

Nothing is written to the output folder until every graph has been run in ONNX Runtime on
fixed inputs and matched the PyTorch model within tolerance. Work happens in a temporary
folder inside the output folder, which is removed whatever happens.

Exporter choice: the TorchScript-based exporter (``dynamo=False``). With torch 2.13 the
default dynamo exporter fails on these decoders once the point count is dynamic, while the
TorchScript exporter traces them with a dynamic batch and point count and matches torch to
about 1e-6. The graphs use opset 17 (:data:`OPSET`), except an encoder whose family needs a
newer operator (:data:`ENCODER_OPSET`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import platform
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import __version__
from ..errors import ExportError
from ..manifest import (
    COMPONENT_ROLES,
    MANIFEST_NAME,
    OPTIONAL_ROLES,
    FileEntry,
    Manifest,
    sha256_file,
)
from ..outputs import publish_mode
from ..registry import get_spec
from ..runtime.graphs import run_head, run_upscaler
from ..runtime.session import create_session
from ..specs import (
    HAS_MASK_INPUT,
    HEAD_IMAGE_SIDE,
    LOW_RES_MASKS,
    MASK_INPUT,
    POINT_COORDS,
    POINT_LABELS,
    ModelSpec,
)
from .attention import (
    CONTRIB_OPSET,
    banded_blocks,
    chunked_attention,
    fused_sdpa,
    separate_qkv,
    separate_tinyvit_qkv,
    separate_vit_qkv,
    tinyvit_permuted_grids,
)
from .build import build_model
from .efficientvit import TANH_GELU_OPSET, separable_upsample, tanh_gelu
from .graph import fold_pointwise_convs, single_prompt_addends
from .pos_embed import separable_pos_embed
from .wrappers import (
    DecoderContext,
    DecoderHead,
    DecoderUpscaler,
    FastDecoder,
    ImageEncoder,
    PromptDecoder,
)

log = logging.getLogger(__name__)

OPSET = 17
#: Parity tolerances: max |onnx - torch| / max(1, max |torch|) per output.
ENCODER_TOL = 1e-3
DECODER_TOL = 1e-4
#: Graphs over this many bytes keep their weights in ``<name>.data`` beside the graph. ONNX
#: Runtime then builds its weight tensors from that file instead of from a second copy
#: inside the parsed protobuf: measured on the SAM 2.1 tiny encoder, 68 MB less resident
#: memory after loading and at the peak, and 0.1 s faster to load. (Protobuf cannot hold
#: more than 2 GiB either, which SAM ViT-H's encoder exceeds.)
EXTERNAL_DATA_THRESHOLD = 4_000_000


@dataclass
class ExportResult:
    out_dir: Path
    manifest: Manifest
    parity: dict[str, Any] = field(default_factory=dict)


def _fixed_image(spec: ModelSpec, seed: int = 1234) -> torch.Tensor:
    """A deterministic, image-like encoder input: smooth gradients plus texture, normalised."""
    rng = np.random.default_rng(seed)
    side = spec.image_size
    yy, xx = np.mgrid[0:side, 0:side].astype(np.float32) / side
    rgb = np.stack([xx, yy, 0.5 * (xx + yy)]) + 0.15 * rng.standard_normal((3, side, side))
    mean = np.asarray(spec.pixel_mean, dtype=np.float32)[:, None, None]
    std = np.asarray(spec.pixel_std, dtype=np.float32)[:, None, None]
    return torch.from_numpy(((np.clip(rgb, 0, 1) - mean) / std).astype(np.float32)[None])


def _fixed_prompts(spec: ModelSpec, batch: int, points: int, seed: int) -> list[torch.Tensor]:
    """Prompt sets mixing positive/negative points, box corners and padding."""
    rng = np.random.default_rng(seed)
    coords = rng.uniform(0, spec.prompt_size, size=(batch, points, 2)).astype(np.float32)
    labels = rng.choice(np.array([0, 1, 2, 3, -1], np.float32), size=(batch, points))
    labels[:, 0] = 1
    side = spec.low_res_size
    mask_input = rng.standard_normal((batch, 1, side, side)).astype(np.float32) * 4
    has_mask = (np.arange(batch) % 2).astype(np.float32)
    return [torch.from_numpy(a) for a in (coords, labels, mask_input, has_mask)]


def _rel_err(onnx_out: np.ndarray, torch_out: np.ndarray) -> float:
    scale = max(1.0, float(np.max(np.abs(torch_out))))
    return float(np.max(np.abs(onnx_out.astype(np.float64) - torch_out))) / scale


def _export_graph(
    module: torch.nn.Module,
    args: tuple[torch.Tensor, ...],
    path: Path,
    input_names: list[str],
    output_names: list[str],
    dynamic_axes: dict[str, dict[int, str]] | None,
    trace: Sequence[Callable[[], contextlib.AbstractContextManager[None]]] = (),
    rewrite: Callable[[Any], int] | None = None,
    say: Callable[[str], None] = lambda _msg: None,
    opset: int = OPSET,
) -> list[Path]:
    """Trace ``module`` to ``path``; returns the files written (graph [+ external data]).

    ``trace``: context managers entered while the module is traced, which replace official
    forwards by the same function in a form ONNX Runtime runs faster (see
    :data:`ENCODER_TRACE`); the graph may then use ONNX Runtime's contrib operators.
    ``rewrite``: applied to
    the traced graph (an ``onnx.ModelProto``, see :mod:`samedge.export.graph`) before it
    is written. ``say`` is told each step (trace, check).
    """
    say(f"{path.stem}: tracing")
    staging = path.parent / f".{path.stem}-staging"
    staging.mkdir()
    staged = staging / path.name
    fused = contextlib.ExitStack()
    for context in trace:
        fused.enter_context(context())
    with torch.no_grad(), warnings.catch_warnings(), fused:
        # The TorchScript exporter is chosen deliberately (see module docstring).
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        # TinyViT (MobileSAM) slices with steps; the exporter only says it leaves those
        # Slice nodes unfolded, which ONNX Runtime folds itself when the session loads.
        warnings.filterwarnings("ignore", "Constant folding - Only steps=1", UserWarning)
        torch.onnx.export(
            module,
            args,
            str(staged),
            input_names=input_names,
            output_names=output_names,
            dynamic_axes=dynamic_axes,
            opset_version=opset,
            do_constant_folding=True,
            dynamo=False,
            custom_opsets=CONTRIB_OPSET if trace else None,
        )
    import onnx

    files = [path]
    extra = [p for p in staging.iterdir() if p != staged]
    external = bool(extra) or staged.stat().st_size > EXTERNAL_DATA_THRESHOLD
    if rewrite is None and not external:
        os.replace(staged, path)
    else:
        proto = onnx.load(str(staged))
        if rewrite is not None:
            rewrite(proto)
        if external:
            data_name = path.name + ".data"
            onnx.save_model(
                proto,
                str(path),
                save_as_external_data=True,
                all_tensors_to_one_file=True,
                location=data_name,
                size_threshold=1024,
            )
            files.append(path.parent / data_name)
        else:
            onnx.save_model(proto, str(path))
    shutil.rmtree(staging)
    say(f"{path.stem}: checking")
    onnx.checker.check_model(str(path))
    return files


#: How each family's image encoder is traced (see :func:`_export_graph`). SAM 1: global
#: attention in query chunks; SAM 2 and EfficientSAM's global ViT attention: ONNX Runtime's
#: fused ``MultiHeadAttention`` after separate query, key and value projections (see
#: :mod:`samedge.export.attention`); EfficientViT: the neck's bicubic upsampling as matrix
#: products and its tanh GELU as one ``Gelu`` node (see :mod:`samedge.export.efficientvit`;
#: its ReLU linear attention has no attention matrix and is traced as written). MobileSAM's
#: TinyViT attends within 7 x 7 and 14 x 14 windows, with its packed query/key/value
#: projection as three products (:func:`samedge.export.attention.separate_tinyvit_qkv`) and
#: its token grids permuted into its convolutions (``tinyvit_permuted_grids``).
ENCODER_TRACE: dict[str, tuple[Callable[[], contextlib.AbstractContextManager[None]], ...]] = {
    "sam": (chunked_attention,),
    "sam2": (partial(fused_sdpa, OPSET), separate_qkv, banded_blocks, separable_pos_embed),
    "mobile_sam": (separate_tinyvit_qkv, tinyvit_permuted_grids),
    "efficientvit_sam": (separable_upsample, tanh_gelu),
    "efficientsam": (partial(fused_sdpa, OPSET), separate_vit_qkv),
}

#: Encoders written at a newer opset than :data:`OPSET`: EfficientViT's tanh GELU is ONNX
#: ``Gelu`` with ``approximate="tanh"``, new in opset 20 (ONNX Runtime >= 1.18).
ENCODER_OPSET: dict[str, int] = {"efficientvit_sam": TANH_GELU_OPSET}


def _encoder_opset(spec: ModelSpec) -> int:
    return ENCODER_OPSET.get(spec.family, OPSET)


def _versions(spec: ModelSpec) -> dict[str, str]:
    # The distributions that install the reference package (e.g. mobile_sam comes from
    # mobilesam-mirror), under their distribution names.
    reference = metadata.packages_distributions().get(spec.reference_package, [])
    packages = ["torch", "onnx", "onnxruntime", *(reference or [spec.reference_package])]
    if spec.reference_source is not None:  # built in samedge's own code, not the package's
        packages = packages[:3]
    out = {"samedge": __version__, "python": platform.python_version()}
    for name in packages:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "unknown"
    return out


def _remove_empty(folders: list[Path]) -> None:
    """Remove the folders an export created (innermost first) where they are still empty."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            return


def export_model(
    spec: ModelSpec,
    out_dir: str | os.PathLike[str],
    checkpoint: str | os.PathLike[str] | None = None,
    seed: int | None = None,
    threads: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> ExportResult:
    """Export ``spec``'s model to ``out_dir`` after checking ONNX Runtime against torch.

    Args:
        spec: the model to export.
        out_dir: output folder (created if needed). Only the graphs (with ``.data``
            files for graphs over 4 MB) and ``samedge.json`` are written there.
        checkpoint: official checkpoint file; or
        seed: build the official architecture with seeded random weights instead.
        threads: threads for the parity runs.
        progress: told each step (building, then per graph: tracing, checking; parity;
            writing), e.g. to show progress.

    Raises:
        ExportError: the model cannot be built or exported, or fails the parity gate; the
            output folder then holds nothing new.
    """
    say = progress or (lambda _msg: None)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ExportError(f"the output folder {out} exists and is not a folder")
    started = time.perf_counter()
    torch.set_num_threads(threads or torch.get_num_threads())
    say(f"building {spec.name} in torch")
    model = build_model(spec, checkpoint=checkpoint, seed=seed)  # before creating anything
    created = [p for p in (out, *out.parents) if not p.exists()]  # to remove on failure
    try:
        out.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=".samedge-export-", dir=out))
    except OSError as exc:
        _remove_empty(created)
        reason = exc.strerror or exc
        raise ExportError(f"cannot create the output folder {out} ({reason})") from None
    try:
        result = _export_into(spec, model, work, threads, say)
        weights: dict[str, Any]
        if checkpoint is not None:
            weights = {
                "source": "checkpoint",
                "file": Path(checkpoint).name,
                "sha256": sha256_file(Path(checkpoint)),
            }
        else:
            weights = {"source": "random-init", "seed": seed}
        files = {
            role: [FileEntry(p.name, sha256_file(p), p.stat().st_size) for p in paths]
            for role, paths in result["files"].items()
        }
        manifest = Manifest(
            model=spec.name,
            family=spec.family,
            opset=max(OPSET, _encoder_opset(spec)),  # the newest among the graphs
            precision={component: "fp32" for component in COMPONENT_ROLES},
            weights=weights,
            files=files,
            parity=result["parity"],
            exporter=_versions(spec),
            created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            # An input size other than the registry's (ModelSpec.at_image_size).
            extra={"image_size": spec.image_size}
            if spec.image_size != get_spec(spec.name).image_size
            else {},
        )
        say(f"writing {out}")
        (work / MANIFEST_NAME).write_text(manifest.to_json())
        publish_mode(work)  # onnx writes external data 0600
        for paths in result["files"].values():
            for p in paths:
                os.replace(p, out / p.name)
        os.replace(work / MANIFEST_NAME, out / MANIFEST_NAME)
        created = []  # written: keep
    finally:
        shutil.rmtree(work, ignore_errors=True)
        _remove_empty(created)
    log.info("exported %s to %s in %.1f s", spec.name, out, time.perf_counter() - started)
    return ExportResult(out_dir=out, manifest=manifest, parity=manifest.parity)


def _export_into(
    spec: ModelSpec,
    model: torch.nn.Module,
    work: Path,
    threads: int | None,
    say: Callable[[str], None],
) -> dict[str, Any]:
    encoder = ImageEncoder(model, spec).eval()
    context = DecoderContext(model, spec).eval()
    decoders = {"decoder": FastDecoder(model, spec, with_mask=False).eval()}
    if spec.mask_prompt:
        decoders["decoder_mask"] = FastDecoder(model, spec, with_mask=True).eval()
    image = _fixed_image(spec)
    with torch.no_grad():
        features = [t.contiguous() for t in encoder(image)]
        ctx = [t.contiguous() for t in context(*features)]
    files = {
        "encoder": _export_graph(
            encoder,
            (image,),
            work / "encoder.onnx",
            list(spec.encoder_inputs),
            list(spec.encoder_outputs),
            None,
            trace=ENCODER_TRACE[spec.family],
            opset=_encoder_opset(spec),
            # SAM 2: the neck's lateral convolutions + conv_s0 / conv_s1
            rewrite=fold_pointwise_convs if spec.family == "sam2" else None,
            say=say,
        ),
        "context": _export_graph(
            context,
            tuple(features),
            work / "context.onnx",
            list(spec.context_inputs),
            list(spec.context_outputs),
            None,
            say=say,
        ),
    }
    batch_axes = {0: "batch"}
    dynamic_axes = {
        POINT_COORDS: {0: "batch", 1: "num_points"},
        POINT_LABELS: {0: "batch", 1: "num_points"},
        MASK_INPUT: batch_axes,
        HAS_MASK_INPUT: batch_axes,
        **{name: batch_axes for name in spec.decoder_outputs},
    }
    prompts = _fixed_prompts(spec, 2, 4, seed=7)
    for role, module in decoders.items():
        inputs = list(spec.decoder_inputs if role == "decoder" else spec.mask_decoder_inputs)
        n_prompt = len(inputs) - len(ctx)
        files[role] = _export_graph(
            module,
            (*ctx, *prompts[:n_prompt]),
            work / f"{role}.onnx",
            inputs,
            list(spec.decoder_outputs),
            {k: v for k, v in dynamic_axes.items() if k in inputs or k in spec.decoder_outputs},
            rewrite=lambda m: single_prompt_addends(m, POINT_COORDS),
            say=say,
        )
    # The same decoder in two graphs (scores, then masks on demand) for segment everything.
    head = DecoderHead(model, spec).eval()
    files["decoder_head"] = _export_graph(
        head,
        (*ctx, *prompts[:2]),
        work / "decoder_head.onnx",
        list(spec.decoder_inputs),  # the high-res features are unused: the trace drops them
        list(spec.head_outputs),
        {k: v for k, v in dynamic_axes.items() if k in spec.decoder_inputs}
        | {name: batch_axes for name in spec.head_outputs},
        say=say,
    )
    with torch.no_grad():
        side, vectors = (t.contiguous() for t in head(*ctx, *prompts[:2])[-2:])
    files["upscaler"] = _export_graph(
        DecoderUpscaler(model, spec).eval(),
        (side, vectors, *ctx[len(spec.context_outputs) - len(spec.high_res_shapes) :]),
        work / "upscaler.onnx",
        list(spec.upscaler_inputs),
        [LOW_RES_MASKS],
        {name: batch_axes for name in (*spec.upscaler_inputs[:2], LOW_RES_MASKS)},
        rewrite=lambda m: single_prompt_addends(m, HEAD_IMAGE_SIDE),
        say=say,
    )
    parity = _parity(spec, model, encoder, image, features, work, threads, say)
    if spec.video is not None:  # the tracking graphs, behind their own gate
        from .video import export_video

        video_files, video_parity = export_video(
            spec, model, features, work, _export_graph, threads, say
        )
        files |= video_files
        parity |= video_parity
    return {"files": files, "parity": parity}


def _run_split(spec: ModelSpec, sessions: list[Any], feeds: dict[str, Any]) -> list[Any]:
    """``decoder.onnx``'s outputs computed by ``decoder_head.onnx`` then ``upscaler.onnx``,
    as the runtime runs them."""
    head, upscaler = sessions
    outs = run_head(spec, head, feeds)
    return [run_upscaler(spec, upscaler, outs, feeds), *outs[: len(spec.decoder_outputs) - 1]]


def _parity(
    spec: ModelSpec,
    model: torch.nn.Module,
    encoder: torch.nn.Module,
    image: torch.Tensor,
    features: list[torch.Tensor],
    work: Path,
    threads: int | None,
    say: Callable[[str], None],
) -> dict[str, Any]:
    """Run the written graphs in ONNX Runtime against the official modules in torch.

    The decoder pair (context + decoder, context + decoder_mask) is compared with the
    official prompt encoder and mask decoder run as the official predictors run them
    (:class:`PromptDecoder`), on the encoder's ONNX output.
    """
    report: dict[str, Any] = {"encoder_tolerance": ENCODER_TOL, "decoder_tolerance": DECODER_TOL}
    say("encoder: parity with torch")
    enc = create_session(work / "encoder.onnx", threads=threads, mem_pattern=False)
    onnx_feats = enc.run(list(spec.encoder_outputs), {spec.encoder_inputs[0]: image.numpy()})
    enc_err = max(_rel_err(o, t.numpy()) for o, t in zip(onnx_feats, features, strict=True))
    report["encoder_max_rel_error"] = enc_err
    official = PromptDecoder(model, spec).eval()
    ctx_session = create_session(work / "context.onnx", threads=threads)
    ctx = ctx_session.run(
        list(spec.context_outputs), dict(zip(spec.context_inputs, onnx_feats, strict=True))
    )
    feats = [torch.from_numpy(f) for f in onnx_feats]
    dec_errs = []
    split = [create_session(work / f"{role}.onnx", threads=threads) for role in OPTIONAL_ROLES]
    # Several batch sizes and point counts: the graph's dynamic axes must really be dynamic.
    for role in ("decoder", "decoder_mask")[: 2 if spec.mask_prompt else 1]:
        say(
            f"{role}: parity with torch"
            + (" (and decoder_head + upscaler)" if role == "decoder" else "")
        )
        session = create_session(work / f"{role}.onnx", threads=threads)
        names = spec.decoder_inputs if role == "decoder" else spec.mask_decoder_inputs
        for batch, points, seed in ((1, 1, 11), (3, 5, 12), (2, 2, 13)):
            prompts = _fixed_prompts(spec, batch, points, seed)
            if role == "decoder":
                prompts[3] = torch.zeros_like(prompts[3])  # no mask prompt
            with torch.no_grad():
                expected = [t.numpy() for t in official(*feats, *prompts)]
            values = [*ctx, *(p.numpy() for p in prompts)][: len(names)]
            got = session.run(list(spec.decoder_outputs), dict(zip(names, values, strict=True)))
            dec_errs.append(max(_rel_err(o, t) for o, t in zip(got, expected, strict=True)))
            if role == "decoder":  # the same prompts through the head and the upscaler
                got = _run_split(spec, split, dict(zip(names, values, strict=True)))
                dec_errs.append(max(_rel_err(o, t) for o, t in zip(got, expected, strict=True)))
    report["decoder_max_rel_error"] = max(dec_errs)
    report["passed"] = enc_err <= ENCODER_TOL and max(dec_errs) <= DECODER_TOL
    if not report["passed"]:
        raise ExportError(
            f"{spec.name}: ONNX output differs from torch beyond tolerance (encoder "
            f"{enc_err:.2e} vs {ENCODER_TOL:.0e}, decoder {max(dec_errs):.2e} vs "
            f"{DECODER_TOL:.0e}); nothing was written"
        )
    return report
