"""Evaluation: accuracy on interactive benchmarks and fidelity between two models.

    >>> from samedge import Predictor
    >>> from samedge.eval import EvalConfig, evaluate, open_dataset, write_report
    >>> dataset = open_dataset("../shared/data/interactive/GrabCut", "interactive")
    >>> result = evaluate(Predictor.from_pretrained("sam2.1_hiera_tiny"), dataset,
    ...                   EvalConfig(protocols=("center", "clicks")))
    >>> result.summaries["clicks"].noc["90"]

Modules: :mod:`.datasets` (reading and validating samples), :mod:`.clicks` (centre point and
click simulator), :mod:`.protocols` (prompts per protocol, the predictor protocol),
:mod:`.metrics`, :mod:`.runner` (:func:`evaluate`), :mod:`.fidelity` (the second model of
``--against``), :mod:`.report` (files written to ``--out``).
"""

from __future__ import annotations

from .clicks import Click, center_point, next_click
from .datasets import FORMATS, Dataset, DatasetError, ImageSample, Instance, Skipped, open_dataset
from .metrics import fidelity_stats, iou, size_bucket
from .protocols import PROTOCOLS, Prompt, PromptPredictor, parse_protocols
from .report import write_report
from .runner import (
    EvalConfig,
    EvalResult,
    FidelityRecord,
    ProtocolSummary,
    SampleRecord,
    evaluate,
)

__all__ = [
    "FORMATS",
    "PROTOCOLS",
    "Click",
    "Dataset",
    "DatasetError",
    "EvalConfig",
    "EvalResult",
    "FidelityRecord",
    "ImageSample",
    "Instance",
    "Prompt",
    "PromptPredictor",
    "ProtocolSummary",
    "SampleRecord",
    "Skipped",
    "center_point",
    "evaluate",
    "fidelity_stats",
    "iou",
    "next_click",
    "open_dataset",
    "parse_protocols",
    "size_bucket",
    "write_report",
]
