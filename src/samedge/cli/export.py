"""``samedge export NAME [--checkpoint PATH | --random-init SEED] [--image-size N] [--out DIR]``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..errors import ExportError, require_extra
from ..registry import get_spec
from .options import add_progress_option, positive_int, step_printer


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "export",
        help="export a model to ONNX (needs the [export] extra)",
        description="Build the official PyTorch model, export its encoder and decoder graphs "
        "(encoder, context, decoder, decoder_mask .onnx), check them against torch, then write "
        "them with a samedge.json manifest.",
    )
    parser.add_argument("name", help="registered model name (see 'samedge models list')")
    weights = parser.add_mutually_exclusive_group()
    weights.add_argument(
        "--checkpoint", type=Path, help="official checkpoint file (default: the cached one)"
    )
    weights.add_argument(
        "--random-init",
        type=int,
        metavar="SEED",
        help="seeded random weights instead of a checkpoint (tests, benchmarks)",
    )
    parser.add_argument(
        "--image-size",
        type=positive_int,
        metavar="N",
        help="SAM 2 only: encoder input of N x N pixels, a multiple of 32 (default: the "
        "model's, 1024): a faster encoder; the official weights are trained at 1024 and "
        "samedge has not measured the accuracy cost (README, 'Segment an image')",
    )
    parser.add_argument(
        "--out",
        type=Path,
        help="output folder (default: $SAMEDGE_HOME/models/NAME, or NAME-Npx with --image-size)",
    )
    parser.add_argument("--threads", type=positive_int, help="threads for the parity check")
    add_progress_option(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..artifacts import default_model_folder, export_name
    from ..hub import checkpoint_path

    spec = get_spec(args.name)
    if args.image_size is not None:
        try:
            spec = spec.at_image_size(args.image_size)
        except ValueError as exc:
            raise ExportError(f"--image-size: {exc}") from None
    require_extra("torch", "export", "samedge export")
    require_extra("onnx", "export", "samedge export")
    if spec.reference_source is None:  # else samedge builds the network in its own code
        require_extra(spec.reference_package, "export", "samedge export")
    checkpoint = args.checkpoint
    if args.random_init is None and checkpoint is None:
        checkpoint = checkpoint_path(spec)
        if not checkpoint.exists():
            raise ExportError(
                f"no checkpoint for {spec.name}: run 'samedge models pull {spec.name}' or pass "
                f"--checkpoint PATH (or --random-init SEED for random weights)"
            )
    out = args.out or default_model_folder(export_name(spec))
    from ..export import export_model

    result = export_model(
        spec,
        out,
        checkpoint=checkpoint,
        seed=args.random_init,
        threads=args.threads,
        progress=step_printer(args),
    )
    parity = result.parity
    video = parity.get("video_max_rel_error")
    video_part = f", video graphs {max(video.values()):.1e}" if video else ""
    print(
        f"{spec.name} -> {out}: encoder max rel. error {parity['encoder_max_rel_error']:.1e}, "
        f"decoder {parity['decoder_max_rel_error']:.1e}{video_part} (parity passed)"
    )
    if args.verbose:
        print(json.dumps(parity, indent=2))
    return 0
