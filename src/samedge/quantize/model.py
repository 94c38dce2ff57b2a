"""Quantising a whole model folder: convert, measure fidelity, write folder + manifest.

The new folder is built in a hidden staging folder beside ``out`` and renamed into place
only when its fidelity against the fp32 parent passes the threshold (or ``force`` is set,
in which case the manifest records the failure). On any error nothing is left on disk.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..artifacts import ModelArtifact, resolve_model
from ..errors import SamedgeError, require_extra
from ..manifest import (
    COMPONENT_ROLES,
    MANIFEST_NAME,
    FileEntry,
    Manifest,
    required_roles,
    sha256_file,
)
from ..outputs import publish_mode
from .calibration import decoder_feeds, encoder_feeds, file_hashes, list_images
from .convert import STATIC_OP_CHOICES, to_fp16, to_int8_dynamic, to_int8_static
from .ranges import METHODS as METHODS
from .ranges import CalibrationOptions

PRECISIONS = ("fp16", "int8-dynamic", "int8-static")
COMPONENTS = ("encoder", "decoder", "both")
#: Protocols of the fidelity check: one centre point and one box per ground-truth mask.
FIDELITY_PROTOCOLS = ("center", "box")


class FidelityError(SamedgeError):
    """The quantised model's masks agree too little with its fp32 parent's."""


@dataclass(frozen=True)
class QuantizeConfig:
    """What to build.

    Attributes:
        precision: one of :data:`PRECISIONS`.
        component: ``encoder``, ``decoder`` or ``both``; the other component is copied.
        fidelity_data: dataset whose ground-truth masks give the fidelity prompts.
        fidelity_format: its layout (``interactive``, ``folder``, ``coco``).
        fidelity_limit: masks used for the fidelity check.
        calibration: image folder for ``int8-static`` (must share no image with
            ``fidelity_data``).
        method: calibration method (:data:`METHODS`).
        calibration_options: other fields of :class:`.ranges.CalibrationOptions`
            (``symmetric``, ``num_bins``, ``num_quantized_bins``, ``percentile``,
            ``budget_mb``).
        num_images: calibration images used (first N by name).
        threshold: minimum mean IoU (each protocol) against the parent.
        force: write the folder even below the threshold (recorded in the manifest).
        providers, threads, provider_settings: how both models run for the fidelity check
            (see :class:`samedge.runtime.predictor.Predictor`).
        static_options: extra keyword arguments of :func:`.convert.to_int8_static`
            (``ops``: ``--int8-ops``); ``attention`` (``--[no-]int8-attention``) applies to
            the encoder only, and ``None`` or absent means the model's default for the
            runtime that runs the encoder, on a CPU with VNNI or AMX
            (:func:`default_int8_attention`).
    """

    precision: str
    component: str = "both"
    fidelity_data: str | os.PathLike[str] | None = None
    fidelity_format: str = "interactive"
    fidelity_limit: int = 20
    calibration: str | os.PathLike[str] | None = None
    method: str = "minmax"
    calibration_options: dict[str, Any] = field(default_factory=dict)
    num_images: int = 16
    threshold: float = 0.95
    force: bool = False
    providers: Any = None
    threads: int | None = None
    provider_settings: Any = None
    static_options: dict[str, Any] = field(default_factory=dict)

    def calibration_settings(self) -> CalibrationOptions:
        """The calibration options of ``int8-static``.

        Raises:
            SamedgeError: an unknown or invalid option.
        """
        try:
            return CalibrationOptions(method=self.method, **self.calibration_options)
        except (TypeError, ValueError) as exc:
            options = self.calibration_options
            raise SamedgeError(f"bad calibration options {options}: {exc}") from exc


@dataclass(frozen=True)
class QuantizeResult:
    """What was written: the folder, its manifest, and the fidelity report.

    Attributes:
        fidelity: per protocol and ``all``: ``prompts``, ``mean_iou``, ``p1_iou``,
            ``min_iou`` and shares above 0.9/0.95/0.99 (see
            :func:`samedge.eval.metrics.fidelity_stats`).
        passed: every protocol's mean IoU reached the threshold.
        embedding_error: relative L2 error of the new folder's image embeddings against the
            parent's on the fidelity images (``images``, ``mean``, ``max``): how much the
            conversion moved the encoder's output, whatever the decoder makes of it.
    """

    folder: Path
    manifest: Manifest
    fidelity: dict[str, dict[str, float | int]]
    passed: bool
    embedding_error: dict[str, float | int] | None = None


def _check_config(cfg: QuantizeConfig) -> None:
    if cfg.precision not in PRECISIONS:
        raise SamedgeError(f"unknown precision '{cfg.precision}': use {', '.join(PRECISIONS)}")
    if cfg.component not in COMPONENTS:
        raise SamedgeError(f"unknown component '{cfg.component}': use {', '.join(COMPONENTS)}")
    if cfg.method not in METHODS:
        raise SamedgeError(f"unknown calibration method '{cfg.method}': use {', '.join(METHODS)}")
    cfg.calibration_settings()
    ops = cfg.static_options.get("ops")
    if ops is not None and cfg.precision != "int8-static":
        raise SamedgeError("--int8-ops applies to --precision int8-static only")
    if cfg.static_options.get("attention") is not None and cfg.precision != "int8-static":
        raise SamedgeError("--int8-attention applies to --precision int8-static only")
    unknown = sorted(set(ops or ()) - set(STATIC_OP_CHOICES))
    if unknown:
        raise SamedgeError(
            f"unknown operator {', '.join(unknown)} for int8-static: use "
            f"{', '.join(STATIC_OP_CHOICES)}"
        )
    if cfg.precision == "int8-static" and cfg.calibration is None:
        raise SamedgeError("--precision int8-static needs --calibration DIR (a folder of images)")
    if cfg.fidelity_data is None:
        raise SamedgeError(
            "a fidelity dataset is needed (--fidelity DIR): images with masks not used for "
            "calibration, e.g. ../shared/data/interactive/GrabCut"
        )
    if cfg.fidelity_limit < 1:
        raise SamedgeError(f"--fidelity-limit must be at least 1, got {cfg.fidelity_limit}")
    from ..eval import open_dataset

    try:  # its errors before any conversion
        open_dataset(cfg.fidelity_data, cfg.fidelity_format)
    except SamedgeError as exc:
        raise SamedgeError(f"--fidelity: {exc}") from None


def _prepare_out(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise SamedgeError(f"{out} already exists and is not empty; choose another --out")


def _fidelity(
    candidate: Any,
    parent: Any,
    cfg: QuantizeConfig,
    progress: bool = False,
    shared_encoder: bool = False,
) -> tuple[dict[str, dict[str, float | int]], dict[str, float | int] | None, bool]:
    """``shared_encoder``: the candidate's encoder is a copy of the parent's file (only the
    decoder was converted), so each fidelity image is encoded once, not once per model."""
    from ..eval import EvalConfig, evaluate, open_dataset

    dataset = open_dataset(cfg.fidelity_data, cfg.fidelity_format)  # type: ignore[arg-type]
    result = evaluate(
        candidate,
        dataset,
        EvalConfig(protocols=FIDELITY_PROTOCOLS, limit=cfg.fidelity_limit),
        reference=parent,
        progress=progress,
        shared_encoder=shared_encoder,
    )
    fidelity = result.fidelity or {}
    if not fidelity.get("all", {}).get("prompts"):
        raise SamedgeError(f"the fidelity dataset {cfg.fidelity_data} gave no usable prompt")
    passed = all(float(fidelity[p]["mean_iou"]) >= cfg.threshold for p in FIDELITY_PROTOCOLS)
    return fidelity, result.embedding_error, passed


def measured_on(encoder_provider: str, precision: str, components: list[str]) -> dict[str, str]:
    """Where a fidelity figure was measured: the CPU, the encoder's runtime and, for static
    INT8 (signed 8-bit weights), how the 8-bit products were computed
    (:func:`samedge.runtime.policy.int8_products`): the same graph agrees less with fp32
    where they saturate (docs/precision.md). Dynamic INT8's unsigned weights never do."""
    from ..runtime.diagnostics import cpu_info
    from ..runtime.policy import int8_products

    where = {"cpu": cpu_info()[0], "encoder": encoder_provider}
    if precision == "int8-static":
        openvino = "encoder" in components and encoder_runtime(encoder_provider) == "openvino"
        where["int8_products"] = int8_products(openvino=openvino)
    return where


def encoder_runtime(provider: str) -> str:
    """``"openvino"`` for an encoder on OpenVINO (its own runtime, ``"OpenVINO (CPU)"``, or
    ONNX Runtime's ``OpenVINOExecutionProvider``), else ``"onnxruntime"``."""
    return "openvino" if provider.lower().startswith("openvino") else "onnxruntime"


def default_int8_attention(spec: Any, runtime: str, log: Any = None) -> bool:
    """Whether static INT8 quantises the encoder's attention when the caller did not say:
    the spec's choice for ``runtime`` (:meth:`samedge.specs.ModelSpec.int8_attention_for`),
    on a CPU that has the integer instructions OpenVINO's attention kernel needs (without
    them the quantised attention is slower than fp32; logged)."""
    from ..runtime.diagnostics import integer_attention_cpu

    if not spec.int8_attention_for(runtime):
        return False
    if integer_attention_cpu():
        return True
    if log is not None:
        log(
            "this CPU has neither VNNI nor AMX, which OpenVINO's integer attention needs "
            "(without them it ran at 0.6-0.7x fp32): attention stays fp32 "
            "(--int8-attention forces it)"
        )
    return False


def _disjoint(calibration: list[Path], cfg: QuantizeConfig) -> None:
    from ..eval import open_dataset

    dataset = open_dataset(cfg.fidelity_data, cfg.fidelity_format)  # type: ignore[arg-type]
    fidelity_images = [Path(e.path) for e in dataset.entries[: cfg.fidelity_limit]]
    shared = set(file_hashes(calibration)) & set(file_hashes(fidelity_images))
    if shared:
        names = sorted(file_hashes(calibration)[h].name for h in shared)
        raise SamedgeError(
            f"calibration and fidelity images overlap ({', '.join(names[:3])}); the fidelity "
            f"check must use images not seen in calibration: split the folder"
        )


def _entries(folder: Path, names: list[str]) -> list[FileEntry]:
    return [FileEntry(n, sha256_file(folder / n), (folder / n).stat().st_size) for n in names]


def quantize_model(
    model: str | os.PathLike[str],
    out: str | os.PathLike[str],
    cfg: QuantizeConfig,
    log: Any = None,
    progress: bool = False,
) -> QuantizeResult:
    """Build a reduced-precision copy of ``model`` in ``out`` and measure its fidelity.

    Args:
        model: an fp32 exported folder or registry name.
        out: new folder (must not exist or be empty).
        log: optional callable taking one progress line.
        progress: show a progress bar (stderr) while measuring fidelity.

    Raises:
        FidelityError: mean IoU below ``cfg.threshold`` without ``cfg.force`` (nothing
            written).
        SamedgeError: bad configuration, unreadable images, overlapping image sets.
    """
    from ..runtime.predictor import Predictor

    say = log or (lambda _msg: None)
    _check_config(cfg)
    require_extra("onnx", "quantize", "samedge quantize")
    out = Path(out)
    _prepare_out(out)
    parent_art: ModelArtifact = resolve_model(model)
    parent_precision = parent_art.manifest.precision
    if any(v != "fp32" for v in parent_precision.values()):
        raise SamedgeError(
            f"{parent_art.folder} is already reduced precision ({parent_precision}); "
            f"quantize its fp32 parent instead"
        )
    calib_images: list[Path] = []
    calib_embeddings: dict[Path, Any] = {}  # the parent's, shared by the decoder graphs' passes
    if cfg.precision == "int8-static":
        calib_images = list_images(Path(cfg.calibration), cfg.num_images)  # type: ignore[arg-type]
        _disjoint(calib_images, cfg)
    parent = Predictor(parent_art, cfg.providers, cfg.threads, cfg.provider_settings)
    # The operators holding the model's weight products, unless the caller chose: for the
    # encoder, those of the runtime that runs it (the fidelity below is measured on it too);
    # the decoders always run on ONNX Runtime.
    runtime = encoder_runtime(parent.providers["encoder"])
    # Attention is quantised in the encoder only (by default where its runtime has an
    # integer attention kernel); the decoders' small attention stays fp32.
    spec, overrides = parent_art.spec, dict(cfg.static_options)
    attention = overrides.pop("attention", None)
    if attention is None and cfg.precision == "int8-static":
        attention = default_int8_attention(spec, runtime, say)
    static_for = {
        "encoder": {"ops": spec.int8_ops_for(runtime), **overrides, "attention": bool(attention)},
        "decoder": {"ops": spec.int8_ops, **overrides, "attention": False},
    }
    if cfg.precision == "int8-static" and static_for["encoder"] != static_for["decoder"]:
        chosen = static_for["encoder"]
        say(
            f"encoder runs on {runtime}: quantising {', '.join(chosen['ops'])}"
            + (" and attention" if chosen["attention"] else "")
        )
    components = ["encoder", "decoder"] if cfg.component == "both" else [cfg.component]
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        precision = dict(parent_precision)
        files: dict[str, list[FileEntry]] = {}
        for role in required_roles(parent_art.spec.mask_prompt):
            entries = parent_art.manifest.files[role]
            src = parent_art.folder / entries[0].path
            component = next(c for c, roles in COMPONENT_ROLES.items() if role in roles)
            # The context runs once per image: it stays fp32 whatever the decoder's precision.
            if component not in components or role == "context":
                for entry in entries:
                    shutil.copy2(parent_art.folder / entry.path, stage / entry.path)
                files[role] = _entries(stage, [e.path for e in entries])
                continue
            dst = stage / f"{role}.onnx"
            external = [parent_art.folder / e.path for e in entries[1:]]
            start = time.perf_counter()
            say(f"{role}: converting to {cfg.precision}")
            if cfg.precision == "fp16":
                to_fp16(src, dst)
            elif cfg.precision == "int8-dynamic":
                to_int8_dynamic(src, dst, external_files=external)
            else:

                def samples(role: str = role) -> Iterator[dict[str, Any]]:
                    if role == "encoder":
                        return encoder_feeds(calib_images, parent.spec)
                    return decoder_feeds(
                        calib_images, parent, role == "decoder_mask", calib_embeddings
                    )

                to_int8_static(
                    src,
                    dst,
                    samples,
                    cfg.calibration_settings(),
                    threads=cfg.threads,
                    external_files=external,
                    log=lambda m, role=role: say(f"{role}: {m}"),
                    **static_for[component],
                )
            say(f"{role}: done in {time.perf_counter() - start:.0f} s")
            precision[component] = cfg.precision
            files[role] = _entries(stage, [dst.name])
        quantization = {
            "precision": cfg.precision,
            "components": components,
            "method": cfg.method if cfg.precision == "int8-static" else None,
            "calibration": (
                cfg.calibration_settings().record() if cfg.precision == "int8-static" else None
            ),
            "calibration_images": [p.name for p in calib_images],
            "num_calibration_images": len(calib_images),
            "static_options": dict(cfg.static_options),
            "int8_ops": (
                {c: list(static_for[c]["ops"]) for c in components}
                if cfg.precision == "int8-static"
                else None
            ),
            "int8_attention": (
                {c: bool(static_for[c]["attention"]) for c in components}
                if cfg.precision == "int8-static"
                else None
            ),
            "encoder_runtime": runtime,
        }
        parent_info = {
            "folder": str(parent_art.folder),
            "manifest_sha256": sha256_file(parent_art.folder / MANIFEST_NAME),
            "files": {r: [e.sha256 for e in es] for r, es in parent_art.manifest.files.items()},
        }
        manifest = dataclasses.replace(
            parent_art.manifest,
            precision=precision,
            files=files,
            created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            extra={**parent_art.manifest.extra, "parent": parent_info},
        )
        (stage / MANIFEST_NAME).write_text(manifest.to_json())
        say("measuring fidelity against the fp32 parent")
        candidate = Predictor(
            ModelArtifact.open(stage), cfg.providers, cfg.threads, cfg.provider_settings
        )
        # an encoder left unconverted is the parent's file, copied above
        fidelity, embedding_error, passed = _fidelity(
            candidate, parent, cfg, progress, shared_encoder="encoder" not in components
        )
        if not passed and not cfg.force:
            worst = min(float(fidelity[p]["mean_iou"]) for p in FIDELITY_PROTOCOLS)
            raise FidelityError(
                f"{cfg.precision} {'+'.join(components)} agrees too little with the fp32 model "
                f"(mean IoU {worst:.3f} < threshold {cfg.threshold}); nothing written. Try "
                f"another --component or --method, or pass --force to keep it anyway"
            )
        manifest.extra["fidelity"] = {
            "against": "fp32 parent",
            "dataset": str(cfg.fidelity_data),
            "protocols": list(FIDELITY_PROTOCOLS),
            "threshold": cfg.threshold,
            "passed": passed,
            "forced": bool(cfg.force and not passed),
            "stats": fidelity,
            "embedding_error": embedding_error,
            "measured_on": measured_on(candidate.providers["encoder"], cfg.precision, components),
        }
        manifest.extra["quantization"] = quantization
        (stage / MANIFEST_NAME).write_text(manifest.to_json())
        if out.exists():
            out.rmdir()
        publish_mode(stage)
        os.replace(stage, out)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    return QuantizeResult(out, manifest, fidelity, passed, embedding_error)
