"""Dataset-scale labelling: one model over a folder of images (``samedge batch``).

>>> from samedge.batch import BatchJob, BatchOptions, run_batch
>>> job = BatchJob(model="sam2.1_hiera_tiny", mode="everything", out="labels")
>>> summary = run_batch("photos/", job, BatchOptions(workers=2))
>>> summary.describe()

Three kinds of work (``mode``): ``boxes`` (one mask per box of a COCO file, written back into
that file), ``points`` (one mask per prompt of a JSONL file) and ``everything`` (segment
everything in each image). Two executors run the same :class:`~samedge.batch.worker.ImageWorker`:
worker processes on this machine (default) or a Ray Data actor pool (``BatchOptions(ray=True)``,
``pip install 'samedge[ray]'``). Each image's result is its own file, written atomically, so
an interrupted run resumes where it stopped; see :mod:`samedge.batch.runner` for the files.
"""

from __future__ import annotations

from .inputs import MODES, WorkItem, WorkList, list_images
from .runner import STAGES, BatchOptions, BatchSummary, build_work, merge, run_batch
from .worker import BatchJob, ImageWorker, ItemResult

__all__ = [
    "MODES",
    "STAGES",
    "BatchJob",
    "BatchOptions",
    "BatchSummary",
    "ImageWorker",
    "ItemResult",
    "WorkItem",
    "WorkList",
    "build_work",
    "list_images",
    "merge",
    "run_batch",
]
