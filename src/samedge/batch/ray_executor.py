"""The Ray executor: the same workers as an actor pool of a Ray Data pipeline.

The image list becomes a dataset of one row per image; ``map_batches`` runs
:class:`RayWorker`, a callable class that loads the model once per actor, over an actor
pool of ``workers`` actors, each reserving ``cpus`` CPUs (and ``gpus`` GPUs). Ray Data
streams rows to the actors with backpressure and restarts an actor that dies, retrying its
image. Each actor writes its images' shards itself, to the output folder, which must
therefore be a path every node can write (a shared file system on a cluster).

Ray is imported only here, and only when the executor runs (``pip install 'samedge[ray]'``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from ..errors import require_extra
from .inputs import WorkItem
from .worker import BatchJob, ImageWorker, ItemResult

#: Most blocks the image list is split into (a block is the unit Ray Data schedules).
MAX_BLOCKS = 10_000


class RayWorker:
    """``map_batches`` callable: one :class:`ImageWorker` per actor, rows of
    ``{"item": WorkItem JSON}`` in, rows of ``{"result": ItemResult JSON}`` out."""

    def __init__(self, job: BatchJob) -> None:
        import cv2

        cv2.setNumThreads(job.threads or 1)
        self.worker = ImageWorker(job)

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        import numpy as np

        results = [
            json.dumps(self.worker.process(WorkItem.from_json(str(text))).to_dict())
            for text in batch["item"]
        ]
        return {"result": np.array(results, dtype=object)}


def run_ray(
    job: BatchJob,
    items: list[WorkItem],
    workers: int,
    report: Callable[[ItemResult], None],
    address: str | None = None,
    cpus: float = 1.0,
    gpus: float = 0.0,
) -> None:
    """Process ``items`` on Ray, calling ``report`` with each result as it arrives.

    Args:
        address: the cluster to join (``ray.init(address=...)``: ``"auto"``,
            ``"ray://head:10001"``...); ``None``: ``RAY_ADDRESS``, else a Ray started here
            for this run. A Ray already initialised in this process is used as it is.
        workers: actors in the pool (each loads the model once).
        cpus, gpus: resources each actor reserves.
    """
    require_extra("ray", "ray", "samedge batch --ray")
    import ray
    import ray.data

    started = False
    if not ray.is_initialized():
        ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
        started = True
    context = ray.data.DataContext.get_current()
    bars = context.enable_progress_bars
    context.enable_progress_bars = False  # the caller shows one bar over images
    try:
        if not items:
            return
        rows = [{"item": item.to_json()} for item in items]
        # One image per block while that stays a modest number of blocks: results (and the
        # progress bar) arrive image by image.
        dataset = ray.data.from_items(rows, override_num_blocks=min(len(rows), MAX_BLOCKS))
        results = dataset.map_batches(
            RayWorker,
            fn_constructor_kwargs={"job": job},
            batch_size=1,
            batch_format="numpy",
            concurrency=workers,
            num_cpus=cpus,
            num_gpus=gpus or None,
        )
        for row in results.iter_rows():
            report(ItemResult.from_dict(json.loads(str(row["result"]))))
    finally:
        context.enable_progress_bars = bars
        if started:
            ray.shutdown()
