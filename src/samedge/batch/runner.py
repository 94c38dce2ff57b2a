"""A batch run from start to end: list the work, skip what is done, run an executor, merge.

The output folder holds:

* ``shards/<key>.json``: one per image, written by the worker that did it (the record of
  that image being done, with the image file's path, size and modification time: a resumed
  run redoes an image whose file changed);
* ``masks.json``: the merged COCO-style file, written atomically once every image has been
  tried; for ``--boxes``, the input COCO file with a mask in each box annotation;
* ``errors.jsonl``: one ``{"path", "reason"}`` line per image that failed in this run, and
  one per prompt of a done image that got no mask (a box outside its image);
* ``job.json``: the model, work kind and settings, so that a resumed run cannot mix shards
  of different settings;
* ``png/<key>/<index>.png`` and ``overlays/<key>.png`` when asked for.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import SamedgeError
from ..outputs import OutputSet
from .inputs import WorkList, coco_items, everything_items, list_images, points_items
from .shards import (
    ERRORS,
    MERGED,
    check_job,
    clear_shards,
    done_keys,
    forget,
    image_source,
    read_shard,
    remove_partial,
    write_jsonl,
)
from .worker import BatchJob, ItemResult, amg_settings

#: Stages timed in each worker, in the order the summary lists them.
STAGES = ("read", "encode", "decode", "write")


@dataclass(frozen=True)
class BatchOptions:
    """How to run a job.

    Attributes:
        workers: worker processes (in-process executor) or actors (Ray).
        resume: skip images whose shard is complete; ``False`` redoes every image.
        ray: run on Ray.
        ray_address: the cluster (``None``: ``RAY_ADDRESS``, else a local Ray).
        cpus_per_worker, gpus_per_worker: what each Ray actor reserves.
        progress: show a progress bar on stderr.
    """

    workers: int = 1
    resume: bool = True
    ray: bool = False
    ray_address: str | None = None
    cpus_per_worker: float | None = None
    gpus_per_worker: float = 0.0
    progress: bool = False


@dataclass
class BatchSummary:
    """What a run did.

    Attributes:
        total: images in the work list (including those that could not be started).
        done: images segmented in this run.
        skipped: images already done by an earlier run (resumed).
        failed: images that failed (listed in the errors file).
        rejected: prompts of done images that got no mask (listed in the errors file).
        seconds: wall time of the processing (model loading included), not of the merge.
        stages: seconds summed over this run's images, per stage (see :data:`STAGES`).
        merged: the merged output file.
        errors: the errors file.
    """

    total: int
    done: int
    skipped: int
    failed: int
    seconds: float
    rejected: int = 0
    stages: dict[str, float] = field(default_factory=dict)
    merged: Path | None = None
    errors: Path | None = None

    @property
    def images_per_second(self) -> float:
        return self.done / self.seconds if self.seconds > 0 else 0.0

    def describe(self) -> str:
        """One paragraph for people: counts, throughput, mean seconds per stage."""
        text = (
            f"{self.total} images: {self.done} done, {self.skipped} skipped (already done), "
            f"{self.failed} failed"
        )
        if self.rejected:
            text += f", {self.rejected} prompts without a mask"
        if self.failed or self.rejected:
            text += f" (reasons in {self.errors})"
        if self.done:
            text += f"; {self.images_per_second:.2f} images/s over {self.seconds:.1f} s"
            per = ", ".join(
                f"{name} {self.stages.get(name, 0.0) / self.done:.3f}"
                for name in STAGES
                if name in self.stages
            )
            text += f"; seconds per image in a worker: {per}"
        return text + f"; merged {self.merged}"


def build_work(source: str, mode: str, prompts: Path | None) -> WorkList:
    """The work list of INPUT for ``mode`` (``prompts``: the COCO or JSONL file)."""
    images = list_images(source)
    if mode == "boxes":
        assert prompts is not None
        return coco_items(images, prompts)
    if mode == "points":
        assert prompts is not None
        return points_items(images, prompts)
    return everything_items(images)


def _file_digest(path: Path | None) -> str | None:
    if path is None:
        return None
    return hashlib.sha256(path.read_bytes()).hexdigest()


def job_identity(job: BatchJob, prompts: Path | None) -> dict[str, Any]:
    """What makes two runs' shards interchangeable: model, weights, precision and graph
    files (a quantized copy keeps its parent's weights), work kind, settings, the prompts
    file's content, the pictures asked for. Also the merged file's ``info``."""
    from ..artifacts import resolve_model

    artifact = resolve_model(job.model, verify=False)
    manifest = artifact.manifest
    identity: dict[str, Any] = {
        "model": artifact.spec.name,
        "weights": manifest.weights,
        "precision": manifest.precision,
        "graphs_sha256": {
            role: [entry.sha256 for entry in entries]
            for role, entries in sorted(manifest.files.items())
        },
        "mode": job.mode,
        "prompts_sha256": _file_digest(prompts),
        "png": job.png,
        "overlay": job.overlay,
    }
    if job.mode == "everything":
        settings = amg_settings(artifact.spec, job.amg)
        identity["settings"] = {
            k: v for k, v in dataclasses.asdict(settings).items() if k != "point_grids"
        }
    return identity


def merge(
    work: WorkList,
    out: Path,
    identity: dict[str, Any],
    errors: list[tuple[str, str]] | None = None,
) -> dict[str, Any]:
    """The merged document of every done image's shard, in work-list order; ``errors``
    receives ``(path, reason)`` of each prompt the shards name as left without a mask.

    ``boxes``: the input COCO document with ``segmentation`` (COCO RLE), ``area`` (mask
    pixels) and ``mask_score`` (the decoder's predicted IoU) set in each annotation of a
    done image, everything else as it was, and ``samedge`` (model and job) added. Otherwise
    ``{"info", "images", "annotations", "categories"}`` with annotation ids 1, 2, ...
    """
    info = {k: v for k, v in identity.items() if k not in ("png", "overlay")}
    done = [(item, read_shard(out, item.key)) for item in work.items]
    shards = [shard for _, shard in done if shard is not None]
    if errors is not None:
        errors += [(item.path, r) for item, sh in done if sh for r in sh.get("errors", [])]
    if work.coco is not None:
        document = copy.deepcopy(work.coco)
        masks = {}
        for shard in shards:
            for record in shard["annotations"]:
                masks[(shard["image"]["id"], record["id"])] = record
        for ann in document["annotations"]:
            record = masks.get((ann.get("image_id"), ann.get("id"))) if "bbox" in ann else None
            if record is not None:
                ann.update({k: v for k, v in record.items() if k != "id"})
        document["samedge"] = info
        return document
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    for item, found in done:
        if found is None:
            continue
        # This run's numbering: a resumed shard may come from a run with other images.
        images.append({**found["image"], "id": item.image_id, "file_name": item.file_name})
        for record in found["annotations"]:
            fields = {k: v for k, v in record.items() if k not in ("id", "image_id")}
            annotations.append({"id": len(annotations) + 1, "image_id": item.image_id, **fields})
    return {"info": info, "images": images, "annotations": annotations, "categories": []}


def default_threads(workers: int) -> int:
    """Intra-op threads per worker so that ``workers`` workers share the cores."""
    from ..runtime.policy import default_threads as cores

    return max(1, cores() // workers)


def run_batch(
    source: str,
    job: BatchJob,
    options: BatchOptions,
    prompts: Path | None = None,
    log: Callable[[str], None] = lambda _message: None,
) -> BatchSummary:
    """Run ``job`` over INPUT ``source`` and merge; see the module docstring for the files.

    Args:
        source: folder, glob or text file of image paths.
        job: what each worker does (``job.threads`` ``None``: cores split across workers).
        options: executor, workers, resume, progress.
        prompts: the ``--boxes`` COCO file or the ``--points`` JSONL file.
        log: receives step lines (``samedge: [t] ...`` in the CLI).

    Raises:
        SamedgeError: bad INPUT, prompts file, model or output folder; a worker process died.
    """
    if options.workers < 1:
        raise SamedgeError(f"--workers must be at least 1, got {options.workers}")
    if options.ray:
        from ..errors import require_extra

        require_extra("ray", "ray", "samedge batch --ray")
    out = Path(job.out)
    if out.exists() and not out.is_dir():
        raise SamedgeError(f"--out {out} exists and is not a folder")
    if job.threads is None:
        per = options.cpus_per_worker if options.ray else None
        threads = max(1, int(per)) if per else default_threads(options.workers)
        job = dataclasses.replace(job, threads=threads)
    work = build_work(source, job.mode, prompts)
    identity = job_identity(job, prompts)
    out.mkdir(parents=True, exist_ok=True)
    if not options.resume:
        clear_shards(out)
    check_job(out, identity, options.resume)
    remove_partial(out)
    sources = {item.key: image_source(item.path) for item in work.items}
    done = done_keys(out, sources) if options.resume else set()
    todo = [item for item in work.items if item.key not in done]
    for item in todo:
        forget(out, item.key)
    log(
        f"{len(work.items)} images, {len(done)} already done, {len(todo)} to do; "
        f"{options.workers} {'Ray actor' if options.ray else 'worker'}"
        f"{'s' if options.workers > 1 else ''} x {job.threads} threads"
    )
    results: list[ItemResult] = []
    bar = None
    if options.progress and todo:
        from tqdm import tqdm

        bar = tqdm(total=len(todo), unit="img", desc="batch", file=sys.stderr, smoothing=0.1)

    def report(result: ItemResult) -> None:
        results.append(result)
        if bar is not None:
            bar.update(1)

    start = time.perf_counter()
    try:
        if not todo:
            pass
        elif options.ray:
            from .ray_executor import run_ray

            run_ray(
                job,
                todo,
                options.workers,
                report,
                address=options.ray_address,
                cpus=options.cpus_per_worker or float(job.threads or 1),
                gpus=options.gpus_per_worker,
            )
        else:
            from .local import run_local

            run_local(job, todo, options.workers, report)
    finally:
        if bar is not None:
            bar.close()
    seconds = time.perf_counter() - start
    failures = [(path, reason) for path, reason in work.errors]
    failures += [(r.path, r.reason) for r in results if not r.ok]
    stages: dict[str, float] = {}
    for r in results:
        for name, value in r.stages.items():
            stages[name] = stages.get(name, 0.0) + value
    rejected: list[tuple[str, str]] = []
    document = merge(work, out, identity, rejected)
    errors_path = out / ERRORS
    lines = sorted(failures + rejected)
    write_jsonl(errors_path, [{"path": p, "reason": r} for p, r in lines])
    merged_path = out / MERGED
    with OutputSet() as files:
        files.add_json(merged_path, document)
    return BatchSummary(
        total=len(work.items) + len(work.errors),
        done=sum(r.ok for r in results),
        skipped=len(done),
        failed=len(failures),
        seconds=seconds,
        rejected=len(rejected),
        stages=stages,
        merged=merged_path,
        errors=errors_path,
    )


__all__ = ["STAGES", "BatchOptions", "BatchSummary", "build_work", "merge", "run_batch"]
