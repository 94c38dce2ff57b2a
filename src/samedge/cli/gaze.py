"""``samedge gaze (--video PATH | --webcam [INDEX] | --image PATH) --model NAME_or_DIR``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .options import add_progress_option, add_provider_options, positive_int, provider_settings

#: What ``--out`` may be: an annotated video, or for ``--image`` also a picture.
VIDEO_SUFFIXES = (".mp4", ".avi")
IMAGE_SUFFIXES = (".png",)


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "gaze",
        help="segment the object a person looks at (webcam, video or image)",
        description="Find the face, estimate the gaze, detect objects, keep those on the gaze "
        "ray and segment them with SAM; writes an annotated video (or, for an image, a PNG) "
        "and per-frame JSONL and prints each stage's share of the time.",
    )
    src = parser.add_mutually_exclusive_group()
    src.add_argument("--video", type=Path, help="video file")
    src.add_argument(
        "--webcam",
        type=int,
        nargs="?",
        const=0,
        metavar="INDEX",
        help="camera (default 0); Ctrl-C ends the run and keeps the files",
    )
    src.add_argument("--image", type=Path, help="one image")
    parser.add_argument(
        "--model",
        help="SAM model: registered name or exported folder (default: efficientvit_sam_l0 "
        "if exported, else sam2.1_hiera_tiny)",
    )
    parser.add_argument("--face", choices=("yunet", "ultraface"), default="yunet")
    parser.add_argument("--face-model", type=Path, help="face detector ONNX file")
    parser.add_argument("--gaze", choices=("openvino", "l2cs"), default="openvino")
    parser.add_argument(
        "--gaze-models",
        type=Path,
        help="folder with the Open Model Zoo gaze, head-pose and landmarks IR files",
    )
    parser.add_argument("--l2cs-model", type=Path, help="L2CS-Net ONNX file (--gaze l2cs)")
    parser.add_argument("--detector", type=Path, help="YOLOX-style ONNX (default yolox_nano)")
    parser.add_argument("--depth", type=Path, help="Depth-Anything-style ONNX (optional)")
    parser.add_argument(
        "--mode",
        choices=("boxes", "points"),
        default="boxes",
        help="boxes: detector boxes as prompts; points: detector-free, points on the gaze ray",
    )
    parser.add_argument(
        "--points", type=positive_int, default=8, help="points on the ray (points mode)"
    )
    parser.add_argument("--min-iou", type=float, default=0.5, help="minimum predicted IoU")
    parser.add_argument("--depth-margin", type=float, default=0.05)
    parser.add_argument("--min-cutoff", type=float, default=1.0, help="One-Euro min cutoff (Hz)")
    parser.add_argument("--beta", type=float, default=0.05, help="One-Euro speed coefficient")
    parser.add_argument("--d-cutoff", type=float, default=1.0, help="One-Euro speed cutoff (Hz)")
    parser.add_argument("--no-smoothing", action="store_true", help="turn the One-Euro filter off")
    parser.add_argument(
        "--backend",
        choices=("ort", "openvino"),
        help="runtime of the ONNX stages (face, detector, depth, L2CS; default openvino when "
        "installed, else ort); SAM's is --provider",
    )
    parser.add_argument(
        "--out", type=Path, help="annotated video (.mp4 or .avi); with --image also .png"
    )
    parser.add_argument("--jsonl", type=Path, help="per-frame records")
    parser.add_argument("--max-frames", type=int, help="stop after this many frames")
    parser.add_argument("--provider", help="execution providers of the SAM model (default cpu)")
    parser.add_argument(
        "--threads", type=positive_int, help="threads per network (default: all cores)"
    )
    add_provider_options(parser)
    parser.add_argument(
        "--fetch-models",
        action="store_true",
        help="download the default auxiliary models into $SAMEDGE_HOME/gaze and exit",
    )
    add_progress_option(parser)
    parser.set_defaults(func=run)


def _fetch(progress: bool) -> int:
    from ..gaze.models import AUX_MODELS, fetch_aux_model

    for name in AUX_MODELS:
        print(f"{name}: {fetch_aux_model(name, progress=progress)}")
    return 0


def run(args: argparse.Namespace) -> int:
    from ..errors import SamedgeError
    from .options import quiet_decoder_logs

    quiet_decoder_logs()  # an undecodable --video is one samedge line, as in samedge track
    if args.fetch_models:
        return _fetch(progress=not args.no_progress)
    if args.video is None and args.webcam is None and args.image is None:
        raise SamedgeError("give a source: --video PATH, --webcam [INDEX] or --image PATH")
    if args.max_frames is not None and args.max_frames < 1:
        raise SamedgeError("--max-frames must be at least 1")
    if args.webcam is not None and args.out is None and args.jsonl is None:
        raise SamedgeError("webcam mode needs --out and/or --jsonl (there is no window)")

    from ..gaze.factory import build_pipeline, default_model, describe_runtimes
    from ..gaze.io.video import (
        WEBCAM_WRITE_SIZE,
        ImageSink,
        JsonlSink,
        VideoSink,
        open_image,
        open_video,
        open_webcam,
    )
    from ..gaze.pipeline import GazeConfig, annotate, result_record
    from ..gaze.select import SelectionConfig
    from ..gaze.stats import format_summary

    config = GazeConfig(
        mode=args.mode,
        num_points=args.points,
        one_euro=None if args.no_smoothing else (args.min_cutoff, args.beta, args.d_cutoff),
        selection=SelectionConfig(min_iou=args.min_iou, depth_margin=args.depth_margin),
    )
    # Check every output path before the models load.
    if args.out is not None:
        suffix = args.out.suffix.lower()
        picture = args.image is not None and suffix in IMAGE_SUFFIXES
        if suffix not in VIDEO_SUFFIXES and not picture:
            allowed = "(or .png with --image)" if args.image is None else "or .png"
            raise SamedgeError(f"--out must end in .mp4 or .avi {allowed}, got {args.out}")
    # The source before the models (a bad video is an error without a 2-second load).
    if args.video is not None:
        source = open_video(args.video)
    elif args.image is not None:
        source = open_image(args.image)
    else:
        source = open_webcam(args.webcam)
    model = args.model
    if not model:
        model, note = default_model()
        print(f"SAM model: {model}" + (f" ({note})" if note else ""), file=sys.stderr)
    pipeline = build_pipeline(
        model,
        face=args.face,
        face_model=args.face_model,
        gaze=args.gaze,
        gaze_models=args.gaze_models,
        l2cs_model=args.l2cs_model,
        detector_model=args.detector,
        depth_model=args.depth,
        backend=args.backend,
        threads=args.threads,
        providers=args.provider,
        config=config,
        provider_settings=provider_settings(args),
    )
    print(f"runtimes: {describe_runtimes(pipeline)}", file=sys.stderr)
    if args.depth is None:
        print("depth filter: off (no --depth model)", file=sys.stderr)
    sinks: list = []
    annotated: VideoSink | ImageSink | None = None
    jsonl = None
    try:
        if args.out is not None and args.out.suffix.lower() in IMAGE_SUFFIXES:
            annotated = ImageSink(args.out)
            sinks.append(annotated)
        elif args.out is not None:
            size = WEBCAM_WRITE_SIZE if source.kind == "webcam" else None
            annotated = VideoSink(args.out, source.fps if source.kind != "image" else 1.0, size)
            sinks.append(annotated)
        if args.jsonl is not None:
            jsonl = JsonlSink(args.jsonl)
            sinks.append(jsonl)
        frames = iter(source)
        while True:
            try:
                index, timestamp, frame = next(frames)
            except StopIteration:
                break
            except KeyboardInterrupt:
                if source.kind != "webcam":
                    raise
                break  # Ctrl-C ends a webcam run normally: the files are kept
            try:
                result = pipeline.process(frame, timestamp=timestamp)
            except KeyboardInterrupt:
                if source.kind != "webcam":
                    raise
                break
            if jsonl is not None:
                jsonl.write(result_record(result, index, timestamp))
            if annotated is not None:
                annotated.write(annotate(frame, result))
            chosen = (result.target.name or "object") if result.target else f"- ({result.reason})"
            if not args.no_progress:
                total_ms = result.latency_ms["total"]
                print(f"frame {index}: {chosen}  {total_ms:.0f} ms", file=sys.stderr)
            if args.max_frames is not None and index + 1 >= args.max_frames:
                break
        summary = pipeline.stats.summary()
        if summary["frames"] == 0:
            raise SamedgeError("the source gave no frames")
        if jsonl is not None:
            jsonl.write({"type": "summary", **summary, "depth": args.depth is not None})
    except BaseException:
        for sink in sinks:
            sink.discard()
        raise
    finally:
        source.close()
    for sink in sinks:
        print(f"wrote {sink.commit()}", file=sys.stderr)
    print(format_summary(summary))
    return 0
