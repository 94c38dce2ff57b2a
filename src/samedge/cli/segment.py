"""``samedge segment IMAGE --model NAME --point X,Y[,LABEL] --box X0,Y0,X1,Y1 --out mask.png``,
or ``--auto`` for the five clicks on the most salient object (:mod:`samedge.saliency`)."""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np

from ..errors import PromptError, SamedgeError
from ..maskutils import mask_area, mask_to_box, rle_encode
from ..saliency import BACKENDS
from .options import add_runtime_options, provider_settings


def _floats(text: str, count: tuple[int, ...], what: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        values = []
    # float() also reads "nan" and "inf" (and "1e999" as inf): no pixel is there.
    if len(values) not in count or not all(math.isfinite(v) for v in values):
        # repr: a value with a newline or other control character stays on one line.
        raise argparse.ArgumentTypeError(f"invalid {what} {text!r}")
    return values


def _point(text: str) -> list[float]:
    values = _floats(text, (2, 3), "point (use X,Y or X,Y,LABEL)")
    if len(values) == 3 and values[2] not in (0.0, 1.0):
        raise argparse.ArgumentTypeError(f"point label must be 1 or 0 in '{text}'")
    return values if len(values) == 3 else [*values, 1.0]


def _box(text: str) -> list[float]:
    return _floats(text, (4,), "box (use X0,Y0,X1,Y1)")


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "segment",
        help="segment an object in an image from points and/or a box",
        description="Encode IMAGE once and predict the mask of the object the prompts point "
        "at. Writes the best mask as a PNG (255 = object), optionally an overlay and JSON.",
    )
    parser.add_argument("image", type=Path, help="image file")
    parser.add_argument("--model", required=True, help="registered name or exported folder")
    parser.add_argument(
        "--point",
        type=_point,
        action="append",
        default=[],
        metavar="X,Y[,LABEL]",
        help="a point in pixels; LABEL 1 = object (default), 0 = background; repeatable",
    )
    parser.add_argument(
        "--box",
        type=_box,
        action="append",
        default=[],
        metavar="X0,Y0,X1,Y1",
        help="a box in pixels; several boxes segment several objects (one mask each)",
    )
    parser.add_argument(
        "--auto",
        action="store_true",
        help="no prompt needed: five positive clicks on the most salient object (SqueezeSAM's "
        "rule, see docs/evaluation.md); the JSON and overlay show them",
    )
    parser.add_argument(
        "--saliency",
        choices=BACKENDS,
        default="classic",
        help="saliency for --auto: classic (spectral residual, no weights; default) or "
        "u2netp (U²-Net-p, 4.6 MB downloaded once)",
    )
    parser.add_argument(
        "--saliency-model",
        type=Path,
        metavar="PATH",
        help="a local u2netp.onnx for --saliency u2netp (no download)",
    )
    parser.add_argument("--out", type=Path, required=True, help="mask PNG to write")
    parser.add_argument("--overlay", type=Path, help="also write the image with the mask drawn")
    parser.add_argument("--json", type=Path, help="also write scores, boxes, areas and COCO RLE")
    parser.add_argument(
        "--multimask",
        action="store_true",
        help="write all three candidate masks (OUT_0.png, OUT_1.png, OUT_2.png)",
    )
    add_runtime_options(parser)
    parser.set_defaults(func=run)


def _numbered(path: Path, index: int) -> Path:
    return path.with_name(f"{path.stem}_{index}{path.suffix}")


def run(args: argparse.Namespace) -> int:
    from ..artifacts import export_name, resolve_model
    from ..imageio import load_image
    from ..outputs import OutputSet
    from ..runtime.predictor import Predictor
    from ..runtime.preprocess import resized_size
    from ..runtime.prompts import normalize_prompts
    from ..visualize import overlay

    if args.auto and (args.point or args.box):
        raise PromptError("--auto makes its own clicks: drop --point/--box, or drop --auto")
    if args.saliency_model is not None and not args.auto:
        raise PromptError("--saliency-model is for --auto")
    if not args.point and not args.box and not args.auto:
        raise PromptError(
            "no prompt: give at least one --point X,Y or --box X0,Y0,X1,Y1, or --auto"
        )
    if args.point and len(args.box) > 1:
        raise PromptError("points can be combined with one box only (one object)")
    if args.out.suffix.lower() != ".png":
        raise SamedgeError(f"--out must be a .png file, got {args.out}")
    if args.overlay is not None and args.overlay.suffix.lower() != ".png":
        raise SamedgeError(f"--overlay must be a .png file, got {args.overlay}")
    artifact = resolve_model(args.model)
    image = load_image(args.image)
    height, width = image.shape[:2]
    points = np.array([p[:2] for p in args.point]) if args.point else None
    labels = np.array([p[2] for p in args.point]) if args.point else None
    auto = None
    if args.auto:
        from ..saliency import auto_prompt, make_backend

        backend = make_backend(args.saliency, args.saliency_model, args.provider, args.threads)
        auto = auto_prompt(image, backend)  # no salient blob: one line, nothing written
        points, labels = auto.points, auto.labels
    boxes = np.array(args.box) if args.box else None
    # Validate the prompts against the image before spending seconds on the encoder.
    normalize_prompts(
        artifact.spec,
        (height, width),
        resized_size(height, width, artifact.spec),
        points=points,
        labels=labels,
        boxes=boxes,
    )
    if points is not None and boxes is not None:
        assert labels is not None  # given with the points (normalize_prompts checked them)
        points, labels = points[None], labels[None]
    predictor = Predictor(
        artifact, args.provider, args.threads, provider_settings=provider_settings(args)
    )
    start = time.perf_counter()
    embedding = predictor.encode(image)
    encoded = time.perf_counter()
    result = predictor.predict(
        embedding,
        points=points,
        labels=labels,
        boxes=boxes,
        # Five clicks on one object leave no ambiguity for three candidates to resolve.
        multimask_output=auto is None or args.multimask,
        best_only=not args.multimask,
    )
    decoded = time.perf_counter()

    selected: list[tuple[int, int]] = []  # (prompt set, mask index)
    for b in range(result.scores.shape[0]):
        selected.extend((b, k) for k in range(result.scores.shape[1]))
    paths = (
        [args.out] if len(selected) == 1 else [_numbered(args.out, i) for i in range(len(selected))]
    )
    records = []
    with OutputSet() as out:
        for path, (b, k) in zip(paths, selected, strict=True):
            mask = result.masks[b, k]
            out.add_png(path, mask)
            records.append(
                {
                    "file": str(path),
                    "prompt_set": b,
                    "mask_index": k,
                    "score": round(float(result.scores[b, k]), 6),
                    "area": mask_area(mask),
                    "bbox": list(mask_to_box(mask)),
                    "segmentation": rle_encode(mask),
                }
            )
        if args.overlay:
            masks = [result.masks[b, k] for b, k in selected]
            out.add_png(
                args.overlay, overlay(image, masks, points=points, labels=labels, boxes=boxes)
            )
        if args.json:
            out.add_json(
                args.json,
                {
                    "model": export_name(predictor.spec),
                    "weights": artifact.manifest.weights.get("source"),
                    "image": {"path": str(args.image), "width": width, "height": height},
                    "prompts": {
                        "points": []
                        if points is None
                        else np.asarray(points).reshape(-1, 2).tolist(),
                        "labels": [] if labels is None else np.asarray(labels).reshape(-1).tolist(),
                        "boxes": [] if boxes is None else boxes.tolist(),
                    },
                    **({} if auto is None else {"auto": auto.to_json()}),
                    "provider": predictor.providers,
                    "timings_ms": {
                        "encode": round(1000 * (encoded - start), 1),
                        "decode": round(1000 * (decoded - encoded), 1),
                    },
                    "masks": records,
                },
            )
    for record in records:
        print(f"{record['file']}: score {record['score']:.3f}, area {record['area']} px")
    return 0
