"""Running protocols over a dataset: one encoder call per image, typed results."""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from .clicks import Click
from .datasets import Dataset, Instance, Skipped, no_usable_sample
from .metrics import (
    SIZE_BUCKETS,
    embedding_error,
    embedding_error_stats,
    fidelity_stats,
    iou,
    mean_noc,
    number_of_clicks,
    size_bucket,
)
from .protocols import (
    AUTO,
    INTERACTIVE,
    PromptPredictor,
    Step,
    auto_quality,
    auto_steps,
    interactive,
    run_prompt,
    static_prompt,
)

if TYPE_CHECKING:
    from ..saliency import AutoPrompt, SaliencyBackend
    from ..specs import ModelSpec

NOC_THRESHOLDS = (0.85, 0.90)


@dataclass(frozen=True)
class EvalConfig:
    """What to run.

    Attributes:
        protocols: names from :data:`samedge.eval.protocols.PROTOCOLS`.
        num_points: ``k`` of the ``points`` protocol.
        seed: seed of the ``points`` protocol.
        max_clicks: clicks per instance in the ``clicks`` protocol (NoC failures above it).
        limit: evaluate only the first ``limit`` listed samples (instances, in dataset order;
            samples rejected by validation count towards it).
        saliency: the ``auto`` protocol's saliency backend (:data:`samedge.saliency.BACKENDS`).
        saliency_model: a local U²-Net-p file for ``saliency="u2netp"``.
    """

    protocols: tuple[str, ...] = ("center", "box", INTERACTIVE)
    num_points: int = 1
    seed: int = 0
    max_clicks: int = 20
    limit: int | None = None
    saliency: str = "classic"
    saliency_model: str | None = None


@dataclass(frozen=True)
class SampleRecord:
    """One instance under one protocol (one JSONL line).

    Attributes:
        ious: IoU after each click (``clicks`` protocol; shorter than ``max_clicks`` only when
            an earlier click left no error, in which case the last value holds).
        noc: ``{"85": n, "90": n}`` clicks to reach 85 / 90 % IoU, ``None`` = failure.
    """

    sample_id: str
    image_id: str
    protocol: str
    area: int
    size: str
    iou: float
    score: float
    prompt: dict[str, Any]
    clicks: list[list[int]] | None = None
    ious: list[float] | None = None
    noc: dict[str, int | None] | None = None

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass(frozen=True)
class ProtocolSummary:
    """Aggregates of one protocol.

    Attributes:
        miou: mean IoU (``clicks``: after the last click, i.e. ``miou_per_click[-1]``).
        miou_by_size: per COCO size bucket, ``{"count": n, "miou": x}``.
        noc: mean NoC@85 / NoC@90 (failures counted as ``max_clicks``).
        failures: samples that never reached 85 / 90 % within ``max_clicks``.
        miou_per_click: mIoU after 1..``max_clicks`` clicks.
        saliency: ``auto`` only: ``blob_miou`` (the saliency blob's mean IoU with the
            instance), ``all_clicks_inside`` (share of samples whose every click is inside
            the instance), ``no_blob`` (samples of images with no salient blob).
    """

    protocol: str
    samples: int
    miou: float
    miou_by_size: dict[str, dict[str, float | int]]
    noc: dict[str, float] | None = None
    failures: dict[str, int] | None = None
    miou_per_click: list[float] | None = None
    saliency: dict[str, float | int] | None = None


@dataclass(frozen=True)
class FidelityRecord:
    """Agreement of the two models on one prompt (one click step in ``clicks``)."""

    sample_id: str
    protocol: str
    step: int
    iou: float
    iou_gt: float
    iou_gt_reference: float


@dataclass
class EvalResult:
    """Everything an evaluation produced; :mod:`samedge.eval.report` writes it to disk."""

    model: str
    dataset: str
    config: EvalConfig
    records: list[SampleRecord]
    skipped: list[Skipped]
    summaries: dict[str, ProtocolSummary]
    images: int
    seconds: float
    reference: str | None = None
    fidelity_records: list[FidelityRecord] = field(default_factory=list)
    fidelity: dict[str, dict[str, float | int]] | None = None
    #: With a reference: relative L2 error of the two models' image embeddings per image
    #: (``images``, ``mean``, ``max``; :func:`.metrics.embedding_error`); ``None`` when the
    #: reference keeps its embedding to itself (the official PyTorch predictor).
    embedding_error: dict[str, float | int] | None = None

    def summary_json(self) -> dict[str, Any]:
        reasons: dict[str, int] = defaultdict(int)
        for s in self.skipped:
            reasons[_reason_kind(s.reason)] += 1
        return {
            "model": self.model,
            "reference": self.reference,
            "dataset": self.dataset,
            "config": asdict(self.config),
            "images": self.images,
            "samples": len({r.sample_id for r in self.records}),
            "seconds": round(self.seconds, 2),
            "protocols": {k: asdict(v) for k, v in self.summaries.items()},
            "fidelity": self.fidelity,
            "embedding_error": self.embedding_error,
            "skipped_count": len(self.skipped),
            "skipped_by_reason": dict(reasons),
            "skipped": [asdict(s) for s in self.skipped],
        }


def _reason_kind(reason: str) -> str:
    for key in ("rotated", "not found", "unreadable", "empty", "crowd", "no image", "no mask"):
        if key in reason:
            return key
    return "mask of another size" if "but its image is" in reason else reason


def _json_clicks(steps: list[Step]) -> list[list[int]]:
    return [[s.click.x, s.click.y, s.click.label] for s in steps if s.click is not None]


def _summarise(protocol: str, records: list[SampleRecord], max_clicks: int) -> ProtocolSummary:
    by_size: dict[str, dict[str, float | int]] = {}
    for bucket in SIZE_BUCKETS:
        vals = [r.iou for r in records if r.size == bucket]
        if vals:
            by_size[bucket] = {"count": len(vals), "miou": float(np.mean(vals))}
    miou = float(np.mean([r.iou for r in records])) if records else float("nan")
    if protocol == AUTO:
        quality = [r.prompt["saliency"] for r in records]
        saliency: dict[str, float | int] = {
            "blob_miou": float(np.mean([q["blob_iou"] for q in quality])) if quality else 0.0,
            "all_clicks_inside": float(
                np.mean([q["clicks"] > 0 and q["clicks_inside"] == q["clicks"] for q in quality])
            )
            if quality
            else 0.0,
            "no_blob": sum(q["clicks"] == 0 for q in quality),
        }
        return ProtocolSummary(protocol, len(records), miou, by_size, saliency=saliency)
    if protocol != INTERACTIVE:
        return ProtocolSummary(protocol, len(records), miou, by_size)
    curves = (
        np.array(
            [
                (r.ious or [0.0]) + [(r.ious or [0.0])[-1]] * (max_clicks - len(r.ious or [0.0]))
                for r in records
            ]
        )
        if records
        else np.zeros((0, max_clicks))
    )
    per_click = [float(v) for v in curves.mean(axis=0)] if len(records) else []
    noc: dict[str, float] = {}
    failures: dict[str, int] = {}
    for thr in NOC_THRESHOLDS:
        key = f"{round(thr * 100)}"
        values = [r.noc[key] if r.noc else None for r in records]
        noc[key] = mean_noc(values, max_clicks)
        failures[key] = sum(v is None for v in values)
    return ProtocolSummary(protocol, len(records), miou, by_size, noc, failures, per_click)


def _instance_steps(
    predictor: PromptPredictor,
    embedding: Any,
    instance: Instance,
    protocol: str,
    config: EvalConfig,
    clicks: list[Click] | None = None,
    auto: AutoPrompt | None = None,
    spec: ModelSpec | None = None,
) -> list[Step]:
    if protocol == AUTO:
        return auto_steps(predictor, embedding, auto, instance)
    if protocol == INTERACTIVE:
        # The evaluated model's prompt rules hold for its reference too (same family).
        return interactive(
            predictor,
            embedding,
            instance,
            config.max_clicks,
            clicks,
            mask_prompt=spec is None or spec.mask_prompt,
            max_points=None if spec is None else spec.max_points,
        )
    prompt = static_prompt(protocol, instance, config.num_points, config.seed)
    return [run_prompt(predictor, embedding, prompt, instance)]


def _record(
    image_id: str,
    instance: Instance,
    protocol: str,
    steps: list[Step],
    config: EvalConfig,
    auto: AutoPrompt | None = None,
) -> SampleRecord:
    area = instance.area
    if protocol != INTERACTIVE:
        last = steps[-1] if steps else None  # none: 'auto' on an image with no salient blob
        prompt: dict[str, Any] = last.prompt.to_json() if last is not None else {"points": None}
        if protocol == AUTO:
            prompt["saliency"] = auto_quality(auto, instance)
        return SampleRecord(
            instance.sample_id,
            image_id,
            protocol,
            area,
            size_bucket(area),
            last.iou if last is not None else 0.0,
            last.score if last is not None else 0.0,
            prompt,
        )
    last = steps[-1]
    ious = [s.iou for s in steps]
    noc = {
        f"{round(t * 100)}": number_of_clicks(ious, t, config.max_clicks) for t in NOC_THRESHOLDS
    }
    return SampleRecord(
        instance.sample_id,
        image_id,
        protocol,
        area,
        size_bucket(area),
        last.iou,
        last.score,
        {"max_clicks": config.max_clicks},
        _json_clicks(steps),
        ious,
        noc,
    )


def _auto_prompt(backend: SaliencyBackend, image: np.ndarray) -> AutoPrompt | None:
    from ..saliency import NoSalientObjectError, auto_prompt

    try:
        return auto_prompt(image, backend)
    except NoSalientObjectError:
        return None


def evaluate(
    predictor: PromptPredictor,
    dataset: Dataset,
    config: EvalConfig | None = None,
    reference: PromptPredictor | None = None,
    progress: bool = False,
    model_name: str = "model",
    reference_name: str | None = None,
    shared_encoder: bool = False,
) -> EvalResult:
    """Run ``config.protocols`` on ``dataset`` with ``predictor``.

    Every image is encoded once (by each model) and all its instances, protocols and clicks
    reuse that embedding. With ``reference``, every prompt is also given to the reference
    model (in ``clicks``, the reference replays exactly the clicks ``predictor`` got, with its
    own previous logits fed back) and the IoU between the two models' masks is recorded.
    ``shared_encoder``: the reference's encoder is ``predictor``'s (the same graph file, as
    in a folder whose decoder alone was quantised): the reference takes ``predictor``'s
    embedding instead of encoding again, and the embedding error is 0.
    A ``predictor`` with a ``spec`` (:class:`samedge.Predictor`) has its prompt rules
    honoured in ``clicks``: no previous logits where it takes no mask prompt, and no more
    clicks than its ``max_points``.

    Returns:
        :class:`EvalResult`; accuracy records are those of ``predictor``.

    Raises:
        DatasetError: the dataset (or its first ``config.limit`` samples) has no sample
            that passed validation: nothing to measure (the message names the first
            reasons).
    """
    from tqdm import tqdm

    config = config or EvalConfig()
    if dataset.num_samples == 0:
        raise no_usable_sample(dataset, dataset.unmatched)
    spec: ModelSpec | None = getattr(predictor, "spec", None)
    backend = None
    if AUTO in config.protocols:
        from ..saliency import make_backend

        backend = make_backend(config.saliency, config.saliency_model, progress=progress)
    start = time.perf_counter()
    records: list[SampleRecord] = []
    fidelity_records: list[FidelityRecord] = []
    embedding_errors: list[float] = []
    skipped: list[Skipped] = list(dataset.unmatched)
    total = dataset.num_samples if config.limit is None else min(config.limit, dataset.num_samples)
    seen = 0
    images = 0
    with tqdm(total=total, unit="sample", disable=not progress, desc=dataset.name) as bar:
        for entry in dataset.entries:
            if seen >= total:
                break
            room = total - seen
            if len(entry.masks) > room:
                entry = type(entry)(entry.image_id, entry.path, entry.masks[:room], entry.skipped)
            sample = dataset.load(entry)
            seen += len(entry.masks)
            skipped.extend(sample.skipped)
            if sample.image is not None and sample.instances:
                images += 1
                emb = predictor.encode(sample.image)
                ref_emb = None
                if reference is not None:
                    ref_emb = emb if shared_encoder else reference.encode(sample.image)
                error = None if ref_emb is None else embedding_error(emb, ref_emb)
                if error is not None:
                    embedding_errors.append(error)
                auto = None if backend is None else _auto_prompt(backend, sample.image)
                for instance in sample.instances:
                    for protocol in config.protocols:
                        steps = _instance_steps(
                            predictor, emb, instance, protocol, config, auto=auto, spec=spec
                        )
                        records.append(
                            _record(sample.image_id, instance, protocol, steps, config, auto)
                        )
                        if reference is not None:
                            clicks = [s.click for s in steps if s.click is not None]
                            ref_steps = _instance_steps(
                                reference,
                                ref_emb,
                                instance,
                                protocol,
                                config,
                                clicks or None,
                                auto,
                                spec,
                            )
                            for k, (a, b) in enumerate(zip(steps, ref_steps, strict=True)):
                                fidelity_records.append(
                                    FidelityRecord(
                                        instance.sample_id,
                                        protocol,
                                        k + 1,
                                        iou(a.mask, b.mask),
                                        a.iou,
                                        b.iou,
                                    )
                                )
            bar.update(len(entry.masks))
    if not records:
        raise no_usable_sample(dataset, skipped, config.limit)
    by_protocol: dict[str, list[SampleRecord]] = defaultdict(list)
    for r in records:
        by_protocol[r.protocol].append(r)
    summaries = {p: _summarise(p, by_protocol[p], config.max_clicks) for p in config.protocols}
    fidelity = None
    if reference is not None:
        fidelity = {"all": fidelity_stats([f.iou for f in fidelity_records])}
        for p in config.protocols:
            fidelity[p] = fidelity_stats([f.iou for f in fidelity_records if f.protocol == p])
    return EvalResult(
        model=model_name,
        dataset=str(dataset.root),
        config=config,
        records=records,
        skipped=skipped,
        summaries=summaries,
        images=images,
        seconds=time.perf_counter() - start,
        reference=reference_name,
        fidelity_records=fidelity_records,
        fidelity=fidelity,
        embedding_error=embedding_error_stats(embedding_errors),
    )
