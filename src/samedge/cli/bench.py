"""``samedge bench --model NAME_or_DIR [--model DIR ...] [--compare-torch] [--json out.json]``.

Per-stage latency, peak memory and compute floors of the samedge runtime, optionally side by
side with the official PyTorch predictor in the same run, and with other precisions of the
same model (more ``--model`` folders: fp32 / fp16 / int8 rows with speed-up and fidelity;
see ``docs/benchmarks.md`` and ``docs/precision.md``). ``--targets FILE`` judges the run's
figures against limits read from a file (``benchmarks/targets-issue7.json``).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from dataclasses import replace
from pathlib import Path

from ..errors import SamedgeError, require_extra, require_reference
from .options import add_progress_option, add_provider_options, positive_int, provider_settings

#: Used when --images is not given (the project's real photos, beside a source checkout).
DEFAULT_IMAGES = Path("..") / "shared" / "data" / "images"


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "bench",
        help="per-stage latency and memory, optionally against the official PyTorch predictor",
        description="Time image load + preprocess, encoder, decoder, postprocess, one click "
        "and end to end over seeded prompts on a set of images; report min/median/mean/p90, "
        "peak RSS, model load and import time, and each stage's compute floor. With "
        "--compare-torch the official predictor runs on the same images and prompts in its "
        "own process, alternating with samedge, and every figure gets a samedge/official ratio. "
        "More --model folders (FP16/INT8 copies made by 'samedge quantize') are timed in the "
        "same alternation and shown as precision rows: speed-up over the first --model and "
        "the fidelity recorded in each folder's manifest.",
    )
    parser.add_argument(
        "--model",
        required=True,
        action="append",
        metavar="NAME_or_DIR",
        help="registered name or exported folder; repeat it to compare precisions of the same "
        "model (the first is the baseline, e.g. --model tiny --model tiny-int8)",
    )
    parser.add_argument("--provider", help="execution providers, e.g. cuda,cpu (default cpu)")
    parser.add_argument(
        "--threads", type=positive_int, help="threads for both sides (default: all usable cores)"
    )
    add_provider_options(parser)
    parser.add_argument(
        "--images",
        nargs="+",
        metavar="DIR_or_FILE",
        help=f"image folder(s) or files (default: {DEFAULT_IMAGES} when present)",
    )
    parser.add_argument(
        "--runs", type=positive_int, default=3, help="passes over the images per repeat (default 3)"
    )
    parser.add_argument(
        "--repeats",
        type=positive_int,
        default=2,
        help="repeats, alternating between samedge and the official predictor (default 2)",
    )
    parser.add_argument(
        "--prompts-per-image", type=positive_int, default=3, help="prompts per image (default 3)"
    )
    parser.add_argument("--seed", type=int, default=0, help="prompt generator seed (default 0)")
    parser.add_argument(
        "--compare-torch",
        action="store_true",
        help="also run the model family's official PyTorch predictor (segment-anything, sam2, "
        "mobile_sam or efficientsam's EfficientViTSamPredictor; needs samedge[export])",
    )
    parser.add_argument(
        "--no-floors", action="store_true", help="skip FLOP counting and the GEMM peak"
    )
    parser.add_argument(
        "--import-tries",
        type=positive_int,
        default=3,
        help="fresh processes for the import and model-load times, best kept (default 3)",
    )
    parser.add_argument(
        "--targets",
        type=Path,
        metavar="FILE",
        help="JSON file of figure limits to judge the run against, e.g. "
        "benchmarks/targets-issue7.json (see docs/benchmarks.md); without it no figure is "
        "judged",
    )
    parser.add_argument("--json", type=Path, help="write the full result as JSON")
    parser.add_argument("--markdown", type=Path, help="write the result tables as Markdown")
    parser.add_argument("--plot", type=Path, help="write a bar chart PNG (needs samedge[bench])")
    add_progress_option(parser)
    parser.set_defaults(func=run)


def _check_outputs(args: argparse.Namespace) -> None:
    for path, suffix in ((args.json, ".json"), (args.markdown, ".md"), (args.plot, ".png")):
        if path is not None and path.suffix.lower() != suffix:
            raise SamedgeError(f"{path} must end in {suffix}")
        if path is not None and path.is_dir():
            raise SamedgeError(f"output path {path} is a folder; give a file name")
    if args.plot is not None:
        require_extra("matplotlib", "bench", "--plot")


def _command_line(args: argparse.Namespace) -> str:
    """The options that shape the result, as a ``samedge bench`` command line."""
    parts = ["samedge", "bench"]
    for model in args.model:
        parts += ["--model", str(model)]
    if args.provider:
        parts += ["--provider", args.provider]
    if args.device_id:
        parts += ["--device-id", str(args.device_id)]
    if args.trt_cache:
        parts += ["--trt-cache", str(args.trt_cache)]
    if args.trt_fp16:
        parts.append("--trt-fp16")
    if args.openvino_device != "CPU":
        parts += ["--openvino-device", args.openvino_device]
    if args.openvino_precision:
        parts += ["--openvino-precision", args.openvino_precision]
    if args.threads:
        parts += ["--threads", str(args.threads)]
    if args.images:
        parts += ["--images", *map(str, args.images)]
    parts += ["--runs", str(args.runs), "--repeats", str(args.repeats)]
    parts += ["--prompts-per-image", str(args.prompts_per_image)]
    if args.seed:
        parts += ["--seed", str(args.seed)]
    if args.compare_torch:
        parts.append("--compare-torch")
    if args.no_floors:
        parts.append("--no-floors")
    for flag in ("targets", "json", "markdown", "plot"):
        if getattr(args, flag):
            parts += [f"--{flag}", str(getattr(args, flag))]
    return shlex.join(parts)


def run(args: argparse.Namespace) -> int:
    from ..artifacts import resolve_model
    from ..bench.report import console_summary, markdown, plot_png
    from ..bench.runner import (
        BenchConfig,
        check_official_weights,
        check_variants,
        find_images,
        run_benchmark,
    )
    from ..bench.targets import all_met, check_targets, load_targets
    from ..outputs import OutputSet
    from ..runtime.session import default_threads

    _check_outputs(args)
    targets = load_targets(args.targets) if args.targets else None
    artifact = resolve_model(args.model[0], verify=False)
    others = [resolve_model(m, verify=False) for m in args.model[1:]]
    check_variants(artifact, others)
    variants = [str(v.folder) for v in others]
    if args.compare_torch:
        require_extra("torch", "export", "--compare-torch")
        require_reference(artifact.spec, "--compare-torch")
        check_official_weights(artifact)
    if args.images:
        sources = args.images
    elif DEFAULT_IMAGES.is_dir():
        sources = [DEFAULT_IMAGES]
    else:
        raise SamedgeError("no images: pass --images DIR or image files")
    config = BenchConfig(
        model=str(artifact.folder),
        images=find_images(sources),
        threads=args.threads or default_threads(),
        provider=args.provider,
        provider_settings=provider_settings(args).to_dict(),
        runs=args.runs,
        repeats=args.repeats,
        prompts_per_image=args.prompts_per_image,
        seed=args.seed,
        compare_torch=args.compare_torch,
        floors=not args.no_floors,
        import_tries=args.import_tries,
        command=_command_line(args),
        variants=variants,
    )
    bar = None

    def progress(total: int):
        nonlocal bar
        from tqdm import tqdm

        bar = tqdm(total=total, unit="image", desc="bench", disable=args.no_progress)
        return lambda: bar.update(1)

    print(
        f"benchmarking {artifact.spec.name} ({artifact.spec.image_size} px input): "
        f"{len(config.images)} images x {config.runs} runs x "
        f"{config.prompts_per_image} prompts, {config.repeats} repeats, {config.threads} threads"
        + (", against the official predictor" if config.compare_torch else "")
        + (f", {len(variants)} other precision(s)" if variants else ""),
        file=sys.stderr,
    )
    try:
        result = run_benchmark(config, progress=progress)
    finally:
        if bar is not None:
            bar.close()
    if targets is not None:
        result = replace(result, targets=check_targets(targets, result))
    with OutputSet() as out:
        if args.json:
            out.add_json(args.json, result.to_dict())
        if args.markdown:
            out.add(args.markdown, markdown(result).encode())
        if args.plot:
            out.add(args.plot, plot_png(result))
    print(console_summary(result))
    if targets is not None:
        verdict = all_met(targets, result.targets)
        print(
            f"targets from {args.targets}: "
            + {True: "all met", False: "some missed", None: "none missed, some not measured"}[
                verdict
            ]
        )
    return 0
