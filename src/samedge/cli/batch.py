"""``samedge batch INPUT --model NAME --out DIR (--boxes COCO | --points JSONL | --everything)``."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from ..errors import SamedgeError
from .options import add_progress_option, add_runtime_options, provider_settings, step_printer


def register(sub: argparse._SubParsersAction) -> None:
    from .everything import _family_defaults

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
    g = parser.add_argument_group("--everything settings (defaults: the official ones)")
    g.add_argument("--fast", action="store_true", help="coarse-to-fine point sampling")
    g.add_argument("--fast-stride", type=int, help="coarse grid stride (2)")
    g.add_argument("--points-per-side", type=int, help=_family_defaults("points_per_side"))
    g.add_argument("--points-per-batch", type=int, help=_family_defaults("points_per_batch"))
    g.add_argument("--pred-iou-thresh", type=float, help=_family_defaults("pred_iou_thresh"))
    for name in ("stability_score_thresh", "stability_score_offset"):
        g.add_argument(f"--{name.replace('_', '-')}", type=float, help=_family_defaults(name))
    g.add_argument("--mask-threshold", type=float, help=_family_defaults("mask_threshold"))
    g.add_argument("--box-nms-thresh", type=float, help=_family_defaults("box_nms_thresh"))
    g.add_argument("--crop-n-layers", type=int)
    g.add_argument("--crop-nms-thresh", type=float, help=_family_defaults("crop_nms_thresh"))
    g.add_argument("--crop-overlap-ratio", type=float, help=_family_defaults("crop_overlap_ratio"))
    g.add_argument("--crop-n-points-downscale-factor", type=int)
    g.add_argument("--min-mask-region-area", type=int)
    g.add_argument("--use-m2m", action="store_true", help="refine each mask once (SAM 2)")
    g.add_argument(
        "--single-mask", action="store_true", help="one mask per point (multimask_output=False)"
    )
    add_runtime_options(parser)
    add_progress_option(parser)
    parser.set_defaults(func=run_command)


def run_command(args: argparse.Namespace) -> int:
    from ..amg import AmgSettings
    from ..batch import BatchJob, BatchOptions, run_batch

    names = {f.name for f in dataclasses.fields(AmgSettings)}
    given = {n: v for n, v in vars(args).items() if n in names and v not in (None, False)}
    if not args.everything and (given or args.single_mask):
        flags = sorted(f"--{n.replace('_', '-')}" for n in given)
        flags += ["--single-mask"] if args.single_mask else []
        raise SamedgeError(f"{', '.join(flags)} only work with --everything")
    amg = {n: v for n, v in vars(args).items() if n in names}
    if args.everything:
        amg["multimask_output"] = not args.single_mask
    mode = "boxes" if args.boxes else "points" if args.points else "everything"
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
