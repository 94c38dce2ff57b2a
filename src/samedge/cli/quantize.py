"""``samedge quantize MODEL_DIR --precision P [--component C] --fidelity DIR --out DIR``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .options import (
    add_progress_option,
    add_runtime_options,
    positive_int,
    provider_settings,
    step_printer,
)

#: Same as samedge.quantize's PRECISIONS / COMPONENTS / METHODS (a test checks), spelled out
#: so that building the parser imports no quantisation code.
PRECISIONS = ("fp16", "int8-dynamic", "int8-static")
COMPONENTS = ("encoder", "decoder", "both")
METHODS = ("minmax", "entropy", "percentile")
INT8_OPS = ("Conv", "MatMul", "Gemm")
INT8_OPS_DEFAULT = ("MatMul", "Gemm")


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "quantize",
        help="FP16 / INT8 copy of an exported model, with its fidelity to the fp32 model",
        description="Convert the encoder, decoder or both to FP16 or INT8 (dynamic, or static "
        "QDQ calibrated on --calibration images), then compare the new model's masks with the "
        "fp32 parent's on a dataset with masks (--fidelity, images not used for calibration; "
        "a centre point and a box per mask). Below --threshold mean IoU nothing is written "
        "unless --force. See docs/precision.md.",
    )
    parser.add_argument("model", help="fp32 exported folder or registered name")
    parser.add_argument("--precision", required=True, choices=PRECISIONS)
    parser.add_argument("--component", choices=COMPONENTS, default="both")
    parser.add_argument("--out", required=True, type=Path, help="new model folder")
    parser.add_argument(
        "--fidelity",
        required=True,
        type=Path,
        metavar="DIR",
        help="dataset with masks for the fidelity check (e.g. ../shared/data/interactive/GrabCut)",
    )
    parser.add_argument(
        "--fidelity-format",
        default="interactive",
        choices=("interactive", "folder", "coco"),
        help="layout of --fidelity (default interactive; see docs/evaluation.md)",
    )
    parser.add_argument(
        "--fidelity-limit",
        type=positive_int,
        default=20,
        help="masks used for fidelity (default 20)",
    )
    parser.add_argument("--calibration", type=Path, metavar="DIR", help="images for int8-static")
    parser.add_argument("--method", choices=METHODS, default="minmax", help="calibration method")
    parser.add_argument(
        "--num-images", type=int, default=16, help="calibration images used (default 16)"
    )
    parser.add_argument(
        "--int8-ops",
        type=_op_list,
        default=None,
        metavar="OPS",
        help=f"operator types int8-static quantises, comma-separated from {','.join(INT8_OPS)} "
        f"(default: the model's, {','.join(INT8_OPS_DEFAULT)} for most: the linear layers; "
        f"Conv too for EfficientViT-SAM, and for MobileSAM with --provider openvino; see "
        f"docs/precision.md)",
    )
    parser.add_argument(
        "--int8-attention",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="int8-static: quantise the encoder's attention products too, with symmetric int8 "
        "activations, which OpenVINO runs as one integer attention kernel (default: the "
        "model's: on for SAM, SAM 2.1 and EfficientSAM with --provider openvino on a CPU "
        "with VNNI or AMX; see "
        "docs/precision.md)",
    )
    parser.add_argument(
        "--threshold", type=float, default=0.95, help="minimum mean IoU vs fp32 (default 0.95)"
    )
    parser.add_argument(
        "--force", action="store_true", help="write even below the threshold (recorded)"
    )
    add_runtime_options(parser)
    add_progress_option(parser)
    parser.set_defaults(func=run)


def _op_list(text: str) -> tuple[str, ...]:
    ops = tuple(dict.fromkeys(op.strip() for op in text.split(",") if op.strip()))
    unknown = [op for op in ops if op not in INT8_OPS]
    if unknown or not ops:
        raise argparse.ArgumentTypeError(
            f"unknown operator {', '.join(unknown) or '(none)'}: choose from {', '.join(INT8_OPS)}"
        )
    return ops


def run(args: argparse.Namespace) -> int:
    from ..quantize import QuantizeConfig, quantize_model

    cfg = QuantizeConfig(
        precision=args.precision,
        component=args.component,
        fidelity_data=args.fidelity,
        fidelity_format=args.fidelity_format,
        fidelity_limit=args.fidelity_limit,
        calibration=args.calibration,
        method=args.method,
        num_images=args.num_images,
        threshold=args.threshold,
        force=args.force,
        providers=args.provider,
        provider_settings=provider_settings(args),
        threads=args.threads,
        static_options={
            **({} if args.int8_ops is None else {"ops": args.int8_ops}),
            **({} if args.int8_attention is None else {"attention": args.int8_attention}),
        },
    )
    result = quantize_model(
        args.model, args.out, cfg, log=step_printer(args), progress=not args.no_progress
    )
    print(f"wrote {result.folder} (precision {json.dumps(result.manifest.precision)})")
    for name, stats in result.fidelity.items():
        print(
            f"  fidelity {name:>6}: {stats['prompts']} prompts, mean IoU {stats['mean_iou']:.4f}, "
            f"p1 {stats['p1_iou']:.4f}, min {stats['min_iou']:.4f}"
        )
    if result.embedding_error is not None:
        from ..eval.report import embedding_error_line

        print(f"  {embedding_error_line(result.embedding_error)}")
    where = result.manifest.extra.get("fidelity", {}).get("measured_on")
    if where:
        products = where.get("int8_products")
        print(
            f"  measured with {where['encoder']} on {where['cpu']}"
            + (f", 8-bit products {products}" if products else "")
        )
    if not result.passed:
        print(
            f"samedge: warning: below threshold {cfg.threshold}; kept because of --force "
            f"(recorded in samedge.json)",
            file=sys.stderr,
        )
    return 0
