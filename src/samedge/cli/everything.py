"""``samedge everything IMAGE --model NAME --out masks.json [--overlay PNG] [--png-dir DIR]``."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from ..errors import SamedgeError
from .options import (
    add_generator_options,
    add_progress_option,
    add_runtime_options,
    generator_options,
    provider_settings,
)


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "everything",
        help="segment everything: automatic masks from a grid of points",
        description="Generate masks for the whole image (the official automatic mask "
        "generators' algorithm and defaults) and write them as COCO-style JSON, optionally "
        "with an overlay picture and one PNG per mask.",
    )
    parser.add_argument("image", type=Path, help="image file")
    parser.add_argument("--model", required=True, help="registered name or exported folder")
    parser.add_argument("--out", type=Path, required=True, help="JSON file to write")
    parser.add_argument("--overlay", type=Path, help="also write the image with all masks")
    parser.add_argument(
        "--png-dir",
        type=Path,
        help="also write one PNG per mask here (mask_0000.png, ...; an earlier run's "
        "mask_NNNN.png beyond this run's count are removed)",
    )
    parser.add_argument(
        "--output-mode",
        choices=("coco_rle", "uncompressed_rle", "polygons"),
        default="coco_rle",
        help="how the JSON stores each mask (default coco_rle)",
    )
    add_generator_options(parser, "generator settings (defaults: the official ones)")
    add_runtime_options(parser)
    add_progress_option(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..amg import AmgSettings, MaskGenerator
    from ..amg.render import everything_overlay
    from ..amg.summary import outcome
    from ..artifacts import export_name, resolve_model
    from ..imageio import load_image
    from ..outputs import OutputSet
    from ..runtime.predictor import Predictor

    if args.out.suffix.lower() != ".json":
        raise SamedgeError(f"--out must be a .json file, got {args.out}")
    if args.overlay is not None and args.overlay.suffix.lower() != ".png":
        raise SamedgeError(f"--overlay must be a .png file, got {args.overlay}")
    if args.png_dir is not None and args.png_dir.exists() and not args.png_dir.is_dir():
        raise SamedgeError(f"--png-dir {args.png_dir} exists and is not a folder")
    image = load_image(args.image)
    artifact = resolve_model(args.model)
    predictor = Predictor(
        artifact, args.provider, args.threads, provider_settings=provider_settings(args)
    )
    given = generator_options(args)
    settings = AmgSettings.for_spec(predictor.spec, **given, multimask_output=not args.single_mask)
    print(f"generator settings: {AmgSettings.source(predictor.spec)}", file=sys.stderr)
    generator = MaskGenerator(
        predictor, settings, progress=not args.no_progress and sys.stderr.isatty()
    )
    result = generator.generate_masks(image)
    height, width = image.shape[:2]
    annotations = []
    for i, record in enumerate(result.records(settings.output_mode)):
        annotations.append({"id": i, **record})
    stats = {k: round(v, 3) if isinstance(v, float) else v for k, v in result.stats.items()}
    document = {
        "model": export_name(predictor.spec),
        "weights": artifact.manifest.weights.get("source"),
        "image": {"path": str(args.image), "width": width, "height": height},
        "settings": {k: v for k, v in dataclasses.asdict(settings).items() if k != "point_grids"},
        "settings_source": AmgSettings.source(predictor.spec),
        "provider": predictor.providers,
        "stats": stats,
        "annotations": annotations,
    }
    with OutputSet() as out:
        out.add_json(args.out, document)
        if args.overlay is not None:
            out.add_png(args.overlay, everything_overlay(image, result.masks))
        if args.png_dir is not None:
            for i, mask in enumerate(result.masks):
                out.add_png(args.png_dir / f"mask_{i:04d}.png", mask)
    if args.png_dir is not None:  # an earlier run's masks past this run's count
        for stale in args.png_dir.glob("mask_*.png"):
            index = stale.stem[len("mask_") :]
            if index.isdigit() and len(index) >= 4 and int(index) >= len(result.masks):
                stale.unlink()
    print(
        f"{args.out}: {len(result)} masks from {stats['prompts']} prompts in "
        f"{stats['total_s']:.1f} s (encode {stats['encode_s']:.1f} s, decode "
        f"{stats['decode_s']:.1f} s, post-processing {stats['post_s']:.1f} s); "
        + outcome(stats, settings.pred_iou_thresh, settings.stability_score_thresh)
    )
    return 0
