"""The in-process executor: ``--workers N`` processes on this machine, one predictor each.

Processes rather than threads: reading and decoding images, RLE encoding and mask
post-processing are Python and NumPy work that holds the GIL, so threads of one process
would queue behind each other. Workers are started with ``spawn`` (no fork of a process
that may already run ONNX Runtime threads); each loads the model once. One worker runs in
the calling process, with no process started at all.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool

from ..errors import SamedgeError
from .inputs import WorkItem
from .worker import BatchJob, ImageWorker, ItemResult

#: Images queued per worker ahead of the one it runs: keeps workers busy without holding a
#: whole dataset's items in the pool's queues.
QUEUE_PER_WORKER = 2

_worker: ImageWorker | None = None


def _start(job: BatchJob) -> None:
    global _worker
    import cv2

    # OpenCV's own threads would add to the predictor's and oversubscribe the cores.
    cv2.setNumThreads(job.threads or 1)
    _worker = ImageWorker(job)


def _run(item: WorkItem) -> ItemResult:
    assert _worker is not None, "worker process not started"
    return _worker.process(item)


def run_local(
    job: BatchJob,
    items: Iterable[WorkItem],
    workers: int,
    report: Callable[[ItemResult], None],
) -> None:
    """Process ``items`` with ``workers`` processes, calling ``report`` with each result in
    the order they finish.

    Raises:
        SamedgeError: a worker process died (killed, out of memory); the images already
            reported are saved, and a rerun resumes.
    """
    if workers == 1:
        worker = ImageWorker(job)
        try:
            for item in items:
                report(worker.process(item))
        finally:
            worker.close()
        return
    context = multiprocessing.get_context("spawn")
    pending: set[Future[ItemResult]] = set()
    try:
        with ProcessPoolExecutor(
            workers, mp_context=context, initializer=_start, initargs=(job,)
        ) as pool:
            for item in items:
                if len(pending) >= workers * (1 + QUEUE_PER_WORKER):
                    finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for future in finished:
                        report(future.result())
                pending.add(pool.submit(_run, item))
            while pending:
                finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in finished:
                    report(future.result())
    except BrokenProcessPool:
        raise SamedgeError(
            "a worker process died (killed, or out of memory: try fewer --workers); the "
            "images it finished are saved: run the same command again to resume"
        ) from None
