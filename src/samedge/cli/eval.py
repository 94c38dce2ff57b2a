"""``samedge eval --model NAME --dataset PATH --format F --protocol P --out DIR [--against M]``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import SamedgeError
from ..saliency import BACKENDS
from .options import add_progress_option, add_runtime_options, provider_settings


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got '{text}'")
    return value


#: Same as samedge.eval's FORMATS and PROTOCOLS (a test checks), spelled out so that building
#: the parser does not import the evaluation code.
FORMATS = ("interactive", "coco", "folder")
PROTOCOLS = ("points", "center", "box", "box+center", "clicks", "auto")


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "eval",
        help="accuracy on a segmentation benchmark, or fidelity between two models",
        description="Prompt a model with points, boxes or simulated clicks derived from "
        "ground-truth masks and measure IoU (mIoU, by COCO size, NoC@85/90). With --against, "
        "also give every prompt to a second model (another export, or the official PyTorch "
        "predictor) and measure how much their masks agree. See docs/evaluation.md.",
    )
    parser.add_argument("--model", required=True, help="registered name or exported folder")
    parser.add_argument("--dataset", required=True, type=Path, help="dataset folder or JSON")
    parser.add_argument(
        "--format", required=True, choices=FORMATS, help="dataset layout (docs/evaluation.md)"
    )
    parser.add_argument(
        "--protocol",
        action="append",
        metavar="NAME[,NAME]",
        help=f"one or more of {', '.join(PROTOCOLS)} (repeatable; default center,box,clicks)",
    )
    parser.add_argument("--out", required=True, type=Path, help="folder for the result files")
    parser.add_argument("--images", type=Path, help="image folder of a COCO JSON")
    parser.add_argument("--limit", type=_positive_int, help="evaluate the first N samples only")
    parser.add_argument(
        "--points", type=_positive_int, default=1, help="k of the 'points' protocol (default 1)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the 'points' protocol")
    parser.add_argument(
        "--max-clicks", type=_positive_int, default=20, help="clicks per sample (default 20)"
    )
    parser.add_argument(
        "--against",
        metavar="MODEL|torch",
        help="fidelity: compare with another exported model, or 'torch' (official predictor "
        "with the same weights; needs the [export] extra)",
    )
    parser.add_argument(
        "--checkpoint", type=Path, help="checkpoint for --against torch (default: the cache)"
    )
    parser.add_argument(
        "--saliency",
        choices=BACKENDS,
        default="classic",
        help="saliency backend of the 'auto' protocol (default classic; see samedge segment "
        "--auto)",
    )
    parser.add_argument(
        "--saliency-model",
        type=Path,
        metavar="PATH",
        help="a local u2netp.onnx for --saliency u2netp (no download)",
    )
    add_runtime_options(parser)
    add_progress_option(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..artifacts import resolve_model
    from ..eval import EvalConfig, evaluate, open_dataset, parse_protocols, write_report
    from ..eval.fidelity import load_reference
    from ..eval.protocols import INTERACTIVE
    from ..runtime.predictor import Predictor

    try:
        protocols = parse_protocols(args.protocol or ["center,box,clicks"])
    except ValueError as exc:
        raise SamedgeError(str(exc)) from None
    if args.out.exists() and not args.out.is_dir():
        raise SamedgeError(f"--out {args.out} is a file; give a folder")
    if args.checkpoint is not None and args.against != "torch":
        raise SamedgeError("--checkpoint is only used with --against torch")
    dataset = open_dataset(args.dataset, args.format, images=args.images)
    artifact = resolve_model(args.model)
    predictor = Predictor(
        artifact, args.provider, args.threads, provider_settings=provider_settings(args)
    )
    reference = reference_name = None
    if args.against:
        reference, reference_name = load_reference(
            args.against, artifact, args.checkpoint, args.provider, args.threads
        )
    spec = artifact.spec
    if INTERACTIVE in protocols and (not spec.mask_prompt or spec.max_points is not None):
        rules = []
        if not spec.mask_prompt:
            rules.append("takes no mask prompt: each click is predicted from the clicks alone")
        if spec.max_points is not None:
            rules.append(f"at most {spec.max_points} points: clicking stops there")
        print(f"clicks protocol: {spec.title} {'; '.join(rules)}", file=sys.stderr)
    config = EvalConfig(
        protocols=protocols,
        num_points=args.points,
        seed=args.seed,
        max_clicks=args.max_clicks,
        limit=args.limit,
        saliency=args.saliency,
        saliency_model=None if args.saliency_model is None else str(args.saliency_model),
    )
    result = evaluate(
        predictor,
        dataset,
        config,
        reference=reference,
        progress=not args.no_progress,
        model_name=f"{artifact.spec.name} ({artifact.folder})",
        reference_name=reference_name,
    )
    write_report(result, args.out)
    for name, s in result.summaries.items():
        line = f"{name}: {s.samples} samples, mIoU {s.miou:.4f}"
        if s.noc:
            line += (
                f", NoC@85 {s.noc['85']:.2f}, NoC@90 {s.noc['90']:.2f}, "
                f"failures@90 {s.failures['90'] if s.failures else 0}"
            )
        if s.saliency:
            line += (
                f", saliency blob mIoU {s.saliency['blob_miou']:.4f}, all clicks inside "
                f"{s.saliency['all_clicks_inside']:.1%}, no blob {s.saliency['no_blob']}"
            )
        print(line)
    if result.fidelity is not None:
        f = result.fidelity["all"]
        if f.get("prompts"):
            print(
                f"fidelity vs {reference_name}: {f['prompts']} prompts, mean IoU "
                f"{f['mean_iou']:.4f}, p1 {f['p1_iou']:.4f}, min {f['min_iou']:.4f}, "
                f">0.99 {f['share_above_0.99']:.1%}"
            )
    if result.skipped:
        print(f"{len(result.skipped)} samples skipped (reasons in {args.out / 'summary.json'})")
    print(f"results written to {args.out}")
    return 0
