"""``samedge batch INPUT --model NAME --out DIR (--boxes COCO | --points JSONL | --everything)``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Literal

from ..errors import SamedgeError
from .options import (
    add_generator_options,
    add_progress_option,
    add_runtime_options,
    generator_options,
    provider_settings,
    step_printer,
)


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "batch",
        help="label a dataset: masks for every image of a folder, resumable, local or on Ray",
        description="Segment every image of INPUT (a folder, a glob pattern or a text file of "
        "image paths): one mask per box of a COCO file, one per prompt of a JSONL file, or "
        "everything. Each image's result is saved as it is done (a rerun skips it); the "
        "merged file is DIR/masks.json, failures are listed in DIR/errors.jsonl. Runs in "
        "worker processes here, or on a Ray cluster with --ray.",
    )
    parser.add_argument("input", help="image folder, glob pattern (quoted) or text file of paths")
    parser.add_argument("--model", required=True, help="registered name or exported folder")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    kind = parser.add_mutually_exclusive_group(required=True)
    kind.add_argument(
        "--boxes",
        type=Path,
        metavar="COCO",
        help="COCO file: one mask per annotation box, written back as RLE into a copy of it",
    )
    kind.add_argument(
        "--points",
        type=Path,
        metavar="JSONL",
        help='prompts, one object per line: {"image": NAME, "points": [[x, y]], "labels": [1]}',
    )
    kind.add_argument("--everything", action="store_true", help="segment everything")
    parser.add_argument("--png", action="store_true", help="also write DIR/png/<image>/N.png")
    parser.add_argument(
        "--overlay", action="store_true", help="also write DIR/overlays/<image>.png"
    )
    run = parser.add_argument_group("execution")
    run.add_argument(
        "--workers",
        type=int,
        default=1,
        help="worker processes (or Ray actors), each with its own model and cores/N threads "
        "(default 1)",
    )
    run.add_argument(
        "--resume",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="skip images already done in DIR (default); --no-resume redoes them all",
    )
    run.add_argument(
        "--ray",
        nargs="?",
        const="",
        metavar="ADDRESS",
        help="run on Ray Data: the cluster at ADDRESS, else RAY_ADDRESS, else a local Ray "
        "(pip install 'samedge[ray]')",
    )
    run.add_argument(
        "--cpus-per-worker",
        type=float,
        help="CPUs each Ray actor reserves, also its threads (default: cores / --workers)",
    )
    run.add_argument(
        "--gpus-per-worker", type=float, default=0.0, help="GPUs each Ray actor reserves (0)"
    )
    add_generator_options(parser, "--everything settings (defaults: the official ones)")
    add_runtime_options(parser)
    add_progress_option(parser)
    parser.set_defaults(func=run_command)


def run_command(args: argparse.Namespace) -> int:
    from ..batch import BatchJob, BatchOptions, run_batch

    amg = generator_options(args)
    given = {n: v for n, v in amg.items() if v not in (None, False)}
    if not args.everything and (given or args.single_mask):
        flags = sorted(f"--{n.replace('_', '-')}" for n in given)
        flags += ["--single-mask"] if args.single_mask else []
        raise SamedgeError(f"{', '.join(flags)} only work with --everything")
    if args.everything:
        amg["multimask_output"] = not args.single_mask
    mode: Literal["boxes", "points", "everything"] = (
        "boxes" if args.boxes else "points" if args.points else "everything"
    )
    if args.workers < 1:
        raise SamedgeError(f"--workers must be at least 1, got {args.workers}")
    if args.ray is None and (args.cpus_per_worker is not None or args.gpus_per_worker):
        raise SamedgeError("--cpus-per-worker and --gpus-per-worker only work with --ray")
    job = BatchJob(
        model=args.model,
        mode=mode,
        out=str(args.out),
        providers=args.provider,
        threads=args.threads,
        amg=amg if args.everything else {},
        png=args.png,
        overlay=args.overlay,
        provider_settings=provider_settings(args),
    )
    options = BatchOptions(
        workers=args.workers,
        resume=args.resume,
        ray=args.ray is not None,
        ray_address=args.ray or None,
        cpus_per_worker=args.cpus_per_worker,
        gpus_per_worker=args.gpus_per_worker,
        progress=not args.no_progress and sys.stderr.isatty(),
    )
    if options.ray and not args.verbose:
        _quiet_ray()
    summary = run_batch(
        args.input, job, options, prompts=args.boxes or args.points, log=step_printer(args)
    )
    print(f"samedge batch: {summary.describe()}")
    return 0


def _quiet_ray() -> None:
    """Keep Ray Data's per-run INFO lines (execution plans, progress logging) off stderr;
    ``-v`` shows them."""
    import importlib.util
    import logging

    if importlib.util.find_spec("ray") is None:
        return  # run_batch names the extra to install
    import ray.data  # noqa: F401  (configures its loggers on import; adjust them after)

    logging.getLogger("ray.data").setLevel(logging.WARNING)
    logging.getLogger("ray.data._internal.progress").setLevel(logging.ERROR)
