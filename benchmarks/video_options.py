"""What the tracker's speed options cost in agreement with the default (official) policy.

Tracks a DAVIS sequence from its first frame's ground-truth mask once with the default
memory policy and once per option (``recent_memories``: fewer recent frames' memories;
``memory_stride``: every k-th frame's), and reports per option the mask IoU with the default
run (mean and minimum over the frames after the prompt) and the memory attention's time per
frame against the default's. Random-weight exports track meaningless masks, but the
agreement still says how far an option moves the tracker from the official policy.

Run from the repository root, e.g.:

    python benchmarks/video_options.py --model DIR --sequence car-shadow --frames 40 \
        --threads 2 --json video-options.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
DAVIS = ROOT.parent / "shared" / "data" / "davis2016"
OPTIONS: dict[str, dict[str, int]] = {
    "default": {},
    "recent_memories=3": {"recent_memories": 3},
    "recent_memories=1": {"recent_memories": 1},
    "memory_stride=2": {"memory_stride": 2},
}


def track(vp: Any, frames: Any, mask: np.ndarray, options: dict[str, int]) -> dict[str, Any]:
    state = vp.init_state(frames.size, num_frames=len(frames), **options)
    vp.add_prompt(state, 0, frames[0], 1, mask=mask)
    masks, attention, total = [], [], []
    start = time.perf_counter()
    for result in vp.propagate(state, frames):
        now = time.perf_counter()
        masks.append(result.masks[0])
        attention.append(result.timings.get("memory_attention", 0.0))
        total.append(now - start)
        start = now
    return {"masks": masks, "attention": attention, "total": total}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--sequence", default="car-shadow")
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)

    from samedge.maskutils import mask_iou
    from samedge.video import VideoPredictor
    from samedge.video.io import FrameFolder

    frames = FrameFolder(DAVIS / "JPEGImages" / args.sequence, fps=24.0, count=args.frames)
    mask = np.asarray(Image.open(DAVIS / "Annotations" / args.sequence / "00000.png")) > 0
    vp = VideoPredictor.from_pretrained(args.model, threads=args.threads)
    runs = {}
    for name, options in OPTIONS.items():
        runs[name] = track(vp, frames, mask, options)
        print(f"{name}: done", file=sys.stderr, flush=True)
    base = runs["default"]
    report = {"sequence": args.sequence, "frames": args.frames, "threads": args.threads}
    rows = []
    for name, run in runs.items():
        ious = [mask_iou(a, b) for a, b in zip(run["masks"][1:], base["masks"][1:], strict=True)]
        # Memory-attention time once the default's memory is full (frame 7 on).
        ratio = statistics.mean(run["attention"][7:]) / statistics.mean(base["attention"][7:])
        rows.append(
            {
                "option": name,
                "mean_iou": statistics.mean(ious),
                "min_iou": min(ious),
                "memory_attention_vs_default": ratio,
                "seconds_per_frame": statistics.mean(run["total"][1:]),
            }
        )
    report["rows"] = rows
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    print("| option | mean IoU with default | min IoU | memory attention vs default |")
    print("|---|---:|---:|---:|")
    for row in rows:
        print(
            f"| {row['option']} | {row['mean_iou']:.4f} | {row['min_iou']:.4f} | "
            f"{row['memory_attention_vs_default']:.2f}x |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
