"""``samedge eval --model NAME --dataset PATH --format F --protocol P --out DIR [--against M]``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import SamedgeError
from ..saliency import BACKENDS
from .options import add_progress_option, add_runtime_options, positive_int, provider_settings

#: Same as samedge.eval's FORMATS and PROTOCOLS (a test checks), spelled out so that building
#: the parser does not import the evaluation code.
FORMATS = ("interactive", "coco", "folder")
#: Video formats (samedge.eval.davis): J&F of tracking, not prompts on images.
VIDEO_FORMATS = ("davis",)
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
    parser.add_argument(
        "--model",
        help="registered name or exported folder (required, except for --format davis "
        "--predictions)",
    )
    parser.add_argument("--dataset", required=True, type=Path, help="dataset folder or JSON")
    parser.add_argument(
        "--format",
        required=True,
        choices=FORMATS + VIDEO_FORMATS,
        help="dataset layout (docs/evaluation.md); davis: video object segmentation, J&F "
        "(docs/video.md)",
    )
    parser.add_argument(
        "--protocol",
        action="append",
        metavar="NAME[,NAME]",
        help=f"one or more of {', '.join(PROTOCOLS)} (repeatable; default center,box,clicks)",
    )
    parser.add_argument("--out", required=True, type=Path, help="folder for the result files")
    parser.add_argument("--images", type=Path, help="image folder of a COCO JSON")
    parser.add_argument("--limit", type=positive_int, help="evaluate the first N samples only")
    parser.add_argument(
        "--points", type=positive_int, default=1, help="k of the 'points' protocol (default 1)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the 'points' protocol")
    parser.add_argument(
        "--max-clicks", type=positive_int, default=20, help="clicks per sample (default 20)"
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
    davis = parser.add_argument_group("--format davis (docs/video.md)")
    davis.add_argument(
        "--predictions",
        type=Path,
        metavar="DIR",
        help="score these DAVIS-layout predictions (DIR/<sequence>/<frame>.png, object ids) "
        "instead of tracking with --model",
    )
    davis.add_argument(
        "--sequences",
        metavar="NAME[,NAME]",
        help="only these sequences (default: ImageSets/"
        "2017/val.txt if the dataset has it, else every annotated sequence)",
    )
    davis.add_argument(
        "--max-frames",
        type=positive_int,
        metavar="N",
        help="only the first N frames of each sequence (a quick check, not the benchmark)",
    )
    add_runtime_options(parser)
    add_progress_option(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.format in VIDEO_FORMATS:
        return run_davis(args)
    given = [f"--{n.replace('_', '-')}" for n in ("predictions", "sequences", "max_frames")
             if getattr(args, n) is not None]  # fmt: skip
    if given:
        raise SamedgeError(f"{given[0]} is for --format davis")
    if args.model is None:
        raise SamedgeError("--model is required: a registered name or an exported folder")
    from ..artifacts import resolve_model
    from ..eval import EvalConfig, evaluate, open_dataset, parse_protocols, write_report
    from ..eval.datasets import no_usable_sample
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
    if dataset.num_samples == 0:  # before loading any model
        raise no_usable_sample(dataset, dataset.unmatched)
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
        if result.embedding_error is not None:
            from ..eval.report import embedding_error_line

            print(embedding_error_line(result.embedding_error))
    if result.skipped:
        print(f"{len(result.skipped)} samples skipped (reasons in {args.out / 'summary.json'})")
    print(f"results written to {args.out}")
    return 0


def _refuse_other_runs_predictions(out: Path, predictions: Path) -> None:
    """A ``--model`` run keeps its tracked masks in ``OUT/predictions``; a report of other
    ``--predictions`` written beside them would describe masks that are not the ones there.
    Scoring that folder itself (``--predictions OUT/predictions``) is fine; anything else is
    refused rather than deleting minutes of tracking."""
    kept = (out / "predictions").absolute()
    if not kept.is_dir():
        return
    if predictions.resolve().is_relative_to(kept.resolve()):
        return
    raise SamedgeError(
        f"--out {out} holds {kept.name}/ of an earlier --model run, which this report of "
        f"{predictions} would not describe: give another --out, or remove {kept}"
    )


def run_davis(args: argparse.Namespace) -> int:
    """``--format davis``: track every sequence from its first-frame annotation with
    ``--model`` (or read ``--predictions``), then J&F as the DAVIS toolkit computes it."""
    import shutil
    import tempfile

    from tqdm import tqdm

    from ..eval.davis import evaluate_davis, open_davis, track_davis, write_davis_report
    from ..outputs import OutputSet

    if (args.model is None) == (args.predictions is None):
        raise SamedgeError(
            "--format davis scores either a model (--model, tracked from each first-frame "
            "annotation) or predictions (--predictions DIR): give one of them"
        )
    unused = [
        name
        for name, value, default in (
            ("--protocol", args.protocol, None),
            ("--images", args.images, None),
            ("--points", args.points, 1),
            ("--max-clicks", args.max_clicks, 20),
        )
        if value != default
    ]
    if unused:
        raise SamedgeError(f"{unused[0]} is not used by --format davis")
    if args.against is not None and args.against != "torch":
        raise SamedgeError("--format davis compares with --against torch only")
    if args.against is not None and args.model is None:
        raise SamedgeError("--against torch needs --model (the export to compare)")
    if args.checkpoint is not None and args.against != "torch":
        raise SamedgeError("--checkpoint is only used with --against torch")
    if args.out.exists() and not args.out.is_dir():
        raise SamedgeError(f"--out {args.out} is a file; give a folder")
    if args.predictions is not None:
        _refuse_other_runs_predictions(args.out, args.predictions)
    names = [n.strip() for n in args.sequences.split(",") if n.strip()] if args.sequences else None
    dataset = open_davis(args.dataset, names, limit=args.limit)
    model_name = None
    with OutputSet() as out:
        scratch = None
        try:
            predictions = args.predictions
            if args.model is not None:
                from ..video import VideoPredictor

                predictor = VideoPredictor.from_pretrained(
                    args.model,
                    providers=args.provider,
                    threads=args.threads,
                    provider_settings=provider_settings(args),
                )
                model_name = args.model
                parent = args.out.absolute().parent
                parent.mkdir(parents=True, exist_ok=True)
                scratch = Path(tempfile.mkdtemp(prefix=f".{args.out.name}.", dir=parent))
                total = sum(
                    min(len(dataset.annotation_files(s)), args.max_frames or 10**9)
                    for s in dataset.sequences
                )
                with tqdm(
                    total=total, unit="frame", desc="davis", disable=args.no_progress,
                    file=sys.stderr,
                ) as bar:  # fmt: skip
                    track_davis(predictor, dataset, scratch, args.max_frames, bar.update)
                predictions = scratch
            result = evaluate_davis(predictions, dataset, max_frames=args.max_frames)
            result.model = model_name
            if args.against is not None:
                from ..eval.davis import against_torch

                result.agreement = against_torch(
                    args.model,
                    dataset,
                    predictions,
                    args.max_frames,
                    not args.no_progress,
                    checkpoint=args.checkpoint,
                )
            write_davis_report(result, args.out, out)
            if scratch is not None:
                final = args.out / "predictions"
                if final.exists():
                    shutil.rmtree(final)
                args.out.mkdir(parents=True, exist_ok=True)
                scratch.rename(final)
                scratch = None
        finally:
            if scratch is not None:
                shutil.rmtree(scratch, ignore_errors=True)
    g = result.means()
    print(
        f"davis: {len(result.sequences)} sequences, "
        f"{sum(len(s.objects) for s in result.sequences)} objects, J&F {g['J&F-Mean']:.4f} "
        f"(J {g['J-Mean']:.4f}, F {g['F-Mean']:.4f})"
    )
    for s in result.sequences:
        print(f"  {s.name}: J&F {(s.j_mean + s.f_mean) / 2:.4f} ({len(s.objects)} objects)")
    if result.agreement is not None:
        a = result.agreement
        print(
            f"agreement with {a['reference']}: mean IoU {a['mean_iou']:.4f}, "
            f"min {a['min_iou']:.4f}, >=0.99 {a['share_above_0.99']:.1%}"
        )
    print(f"results written to {args.out}")
    return 0
