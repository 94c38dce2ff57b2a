"""``samedge track SOURCE --model NAME --out DIR --point FRAME:X,Y[,LABEL][@OBJ] ...``:
follow objects through a video with SAM 2.1 (see docs/video.md)."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import SamedgeError
from .options import (
    add_progress_option,
    add_runtime_options,
    positive_int,
    provider_settings,
    quiet_decoder_logs,
)

if TYPE_CHECKING:
    from ..video import VideoPredictor
    from ..video.prompts import ObjectPrompt
    from ..video.state import TrackingState
    from ..video.types import FrameResult, FrameSource

#: The frame rates the video writers accept (OpenCV's MPEG-4 writer fails outside them).
MIN_FPS, MAX_FPS = 0.01, 1000.0

PROMPT_HELP = """\
prompts (FRAME is the 0-based frame index, OBJ the object id, default 1; repeat each option
as needed, e.g. --point 0:410,200 --point 0:600,300@2 --box 40:80,60,300,420@3):
  --point FRAME:X,Y[,LABEL][@OBJ]   a click in pixels; LABEL 1 = object (default), 0 = not
  --box FRAME:X0,Y0,X1,Y1[@OBJ]     a box in pixels (top-left, bottom-right corners)
  --mask FRAME:PNG[@OBJ]            a mask image of the frame's size (object = non-zero)
"""


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "track",
        help="track objects through a video (SAM 2.1)",
        description="Segment objects on the frames you prompt and follow them through the "
        "video (a video file or a folder of frames), streaming: frames are decoded as they "
        "are needed. Writes into --out, per object, a PNG mask per frame, an overlay video "
        "to watch, optionally alpha mattes, and track.json (COCO RLE, object scores, "
        "timings). Nothing is written if the run fails or is interrupted.",
        epilog=PROMPT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("source", type=Path, help="video file, or a folder of .jpg/.png frames")
    parser.add_argument("--model", required=True, help="registered SAM 2.1 name or exported folder")
    parser.add_argument("--out", type=Path, required=True, help="folder to write (see above)")
    # Parsed in run(), not by argparse, so a bad value is one line like every other error.
    parser.add_argument("--point", action="append", default=[], metavar="FRAME:X,Y[,LABEL][@OBJ]")
    parser.add_argument("--box", action="append", default=[], metavar="FRAME:X0,Y0,X1,Y1[@OBJ]")
    parser.add_argument("--mask", action="append", default=[], metavar="FRAME:PNG[@OBJ]")
    direction = parser.add_mutually_exclusive_group()
    direction.add_argument(
        "--reverse",
        action="store_true",
        help="track backward from the last prompted frame (default: forward from the first)",
    )
    direction.add_argument(
        "--both",
        action="store_true",
        help="track backward from the last prompted frame, then forward from the first",
    )
    parser.add_argument(
        "--max-frames",
        type=positive_int,
        metavar="N",
        help="track at most N frames in each direction from where it starts",
    )
    parser.add_argument(
        "--alpha",
        nargs="?",
        const="matte",
        choices=("matte", "rgba"),
        help="also write alpha for compositing: 'matte' (default) a lossless grey matte "
        "video per object (matte/obj<ID>.mov), 'rgba' per object the frames as RGBA PNGs",
    )
    parser.add_argument(
        "--no-overlay", action="store_true", help="do not write overlay.mp4 (faster)"
    )
    parser.add_argument(
        "--fps",
        type=float,
        help="frame rate of a frame folder, for the videos written (default 24; a video file "
        "keeps its own)",
    )
    add_runtime_options(parser)
    add_progress_option(parser)
    parser.set_defaults(func=run)


def add_prompt(
    predictor: VideoPredictor, state: TrackingState, source: FrameSource, p: ObjectPrompt
) -> FrameResult:
    return predictor.add_prompt(
        state,
        p.frame,
        source[p.frame],
        p.obj,
        points=p.points,
        labels=p.labels,
        box=p.box,
        mask=p.mask,
    )


def split_corrections(
    prompts: Sequence[ObjectPrompt], reverse: bool
) -> tuple[list[ObjectPrompt], list[ObjectPrompt]]:
    """``(initial, corrections)``: the prompts on each object's first frame in the tracking
    order (the latest when ``reverse``), which start it, and those on its later frames."""
    first: dict[int, int] = {}
    for p in prompts:
        frames = [first.get(p.obj, p.frame), p.frame]
        first[p.obj] = max(frames) if reverse else min(frames)
    initial = [p for p in prompts if p.frame == first[p.obj]]
    return initial, [p for p in prompts if p.frame != first[p.obj]]


def track_pass(
    predictor: VideoPredictor,
    state: TrackingState,
    source: FrameSource,
    start: int,
    reverse: bool,
    after: int | None,
    corrections: Sequence[ObjectPrompt],
) -> Iterator[FrameResult]:
    """One tracking pass from ``start`` (``after``: at most that many frames after it) that
    corrects the objects on the frames of ``corrections`` as it reaches them: it tracks up
    to such a frame, applies its prompts to the tracked masks (``add_prompt`` on a tracked
    frame: the official correction), yields the corrected frame and goes on from the next
    one with the corrected memory. Frames before a correction are tracked as without it."""
    step = -1 if reverse else 1
    if reverse and start == 0:
        return  # nothing before frame 0 (as officially)
    reach = len(source) if after is None else after
    end = max(start - reach, 0) if reverse else min(start + reach, len(source) - 1)
    stops = {p.frame for p in corrections if 0 < (p.frame - start) * step <= (end - start) * step}
    here = start
    for stop in [*sorted(stops, reverse=reverse), None]:
        last = end if stop is None else stop
        for result in predictor.propagate(
            state, source, start_frame=here, reverse=reverse, max_frames=(last - here) * step
        ):
            if result.frame_index != stop:
                yield result
        if stop is None:
            return
        given = [p for p in corrections if p.frame == stop]
        corrected = [add_prompt(predictor, state, source, p) for p in given]
        yield corrected[-1]  # the frame after its last prompt
        if stop == end:
            return
        here = stop + step


def _stage_line(ms_per_frame: dict[str, float]) -> str:
    parts = [f"{stage.replace('_', ' ')} {ms:.0f}" for stage, ms in ms_per_frame.items()]
    return f" ({', '.join(parts)})" if parts else ""


def run(args: argparse.Namespace) -> int:
    import numpy as np
    from tqdm import tqdm

    from ..video.io import open_video
    from ..video.prompts import group_prompts, parse_box, parse_mask, parse_point
    from ..video.writers import DEFAULT_FPS, TrackWriter, check_output_folder

    quiet_decoder_logs()
    points = [parse_point(p) for p in args.point]
    boxes = [parse_box(b) for b in args.box]
    masks = [parse_mask(m) for m in args.mask]
    if not (points or boxes or masks):
        raise SamedgeError(
            "no prompt: give at least one --point FRAME:X,Y, --box FRAME:X0,Y0,X1,Y1 or "
            "--mask FRAME:PNG (add @OBJ for objects other than 1); see samedge track --help"
        )
    if args.fps is not None and not MIN_FPS <= args.fps <= MAX_FPS:  # NaN fails too
        raise SamedgeError(
            f"--fps must be a frame rate from {MIN_FPS:g} to {MAX_FPS:g}, got {args.fps:g}"
        )
    args.out = Path(os.path.abspath(args.out))  # '.' cannot be replaced, its full path can
    check_output_folder(args.out)
    source = open_video(args.source, fps=args.fps or 0.0)
    if args.fps is not None and not args.source.is_dir():
        raise SamedgeError("--fps is for a frame folder; a video file has its own frame rate")
    prompts = group_prompts(points, boxes, masks, frames=len(source), size=source.size)
    if args.reverse and all(p.frame == 0 for p in prompts):
        raise SamedgeError(
            "every prompt is on frame 0, so there is nothing to track backward: drop --reverse"
        )

    from ..video import VideoPredictor

    predictor = VideoPredictor.from_pretrained(
        args.model,
        providers=args.provider,
        threads=args.threads,
        provider_settings=provider_settings(args),
    )
    width, height = source.size
    objects = sorted({p.obj for p in prompts})
    first, last = min(p.frame for p in prompts), max(p.frame for p in prompts)
    passes = [(last, True)] if args.reverse else [(first, False)]
    if args.both:
        passes = [(last, True), (first, False)]
    # Each object's prompts on its first frame in the tracking order start it; later ones
    # correct it when the pass gets there (--both: every prompt starts, as officially when
    # all prompts come before propagating).
    initial, corrections = (prompts, []) if args.both else split_corrections(prompts, args.reverse)
    expected = sum(
        min(
            args.max_frames or len(source),
            (start + 1 if start else 0) if reverse else len(source) - start,
        )
        for start, reverse in passes
    )
    say = (lambda _m: None) if args.no_progress else (lambda m: print(m, file=sys.stderr))
    say(
        f"samedge: tracking {len(objects)} object(s) in {args.source} ({len(source)} frames, "
        f"{width}x{height}) with {args.model}"
    )
    marks: dict[int, tuple] = {}
    for p in prompts:
        if p.points is not None:
            old = marks.get(p.frame)
            if old is None:
                marks[p.frame] = (p.points, p.labels)
            else:
                marks[p.frame] = (np.vstack([old[0], p.points]), np.concatenate([old[1], p.labels]))
    header = {
        "samedge_track": 1,
        "model": args.model,
        "source": {
            "path": str(args.source),
            "kind": "frames" if args.source.is_dir() else "video",
            "width": width,
            "height": height,
            "fps": source.fps or DEFAULT_FPS,  # the rate the videos are written at
            "frames": len(source),
        },
        "direction": "both" if args.both else "reverse" if args.reverse else "forward",
        "max_frames": args.max_frames,
        "prompts": [p.to_json() for p in prompts],
    }
    # --max-frames counts the start frame; the official max_frame_num_to_track does not.
    after = None if args.max_frames is None else args.max_frames - 1
    started = time.perf_counter()
    with TrackWriter(
        args.out,
        source,
        objects,
        header,
        alpha=args.alpha,
        overlay_video=not args.no_overlay,
        marks=marks,
    ) as writer:
        state = predictor.init_state(frame_size=source.size, num_frames=len(source))
        for p in initial:
            add_prompt(predictor, state, source, p)
        unused = list(corrections)
        with tqdm(
            total=expected, unit="frame", desc="track", disable=args.no_progress, file=sys.stderr
        ) as bar:
            for start, reverse in passes:
                for result in track_pass(
                    predictor, state, source, start, reverse, after, corrections
                ):
                    writer.add(result)
                    bar.update(1)
                    unused = [p for p in unused if p.frame != result.frame_index]
        if unused:
            print(
                "samedge: not reached, so not used: the prompts on frame(s) "
                + ", ".join(str(f) for f in sorted({p.frame for p in unused})),
                file=sys.stderr,
            )
        tracked = time.perf_counter() - started
        span = len(writer.frames)
        with tqdm(
            total=span, unit="frame", desc="write", disable=args.no_progress, file=sys.stderr
        ) as bar:
            summary = writer.finish(
                {"seconds": round(tracked, 2)}, progress=lambda n: bar.update(n)
            )
    frames = summary["frames"]
    print(
        f"tracked {len(objects)} object(s) over {frames} frames "
        f"({summary['first_frame']}..{summary['last_frame']}) in {tracked:.1f} s, "
        f"{1000 * tracked / max(frames, 1):.0f} ms/frame{_stage_line(summary['ms_per_frame'])}"
    )
    for obj in objects:
        present = summary["frames_present"][str(obj)]
        print(f"object {obj}: present on {present} of {frames} frames")
    written = ", ".join(
        ["track.json", "masks/"]
        + (["overlay.mp4"] if "overlay" in summary["files"] else [])
        + (["matte/"] if "matte" in summary["files"] else [])
        + (["rgba/"] if "rgba" in summary["files"] else [])
    )
    print(f"wrote {args.out} ({written})")
    return 0
