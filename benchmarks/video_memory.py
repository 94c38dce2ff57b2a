"""Peak memory of a long tracking run: is it flat?

Loops the shared DAVIS sequences (``../shared/data/davis2016/JPEGImages/*``, 150 frames of
854 x 480) into one ``--frames``-long video read on demand, prompts frame 0 with its
ground-truth mask, and tracks to the end with :class:`samedge.video.VideoPredictor`,
recording every ``--every`` frames the process's resident memory (``VmRSS``), its peak so
far (``VmHWM``), the bytes the tracking state holds and the time per frame.

Run from the repository root, e.g.:

    python benchmarks/video_memory.py --model DIR_OR_NAME --frames 1000 --threads 2 \
        --json video-memory.json

It prints a Markdown table (frame -> RSS, peak, state) for docs/video.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
DAVIS = ROOT.parent / "shared" / "data" / "davis2016"
MIB = 1 << 20


def status(field: str) -> int:
    """A ``/proc/self/status`` field in bytes (``VmRSS``, ``VmHWM``)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(field)


class LoopedDavis:
    """The DAVIS sequences one after another, repeated to ``length`` frames (a
    FrameSource: nothing is decoded before it is asked for)."""

    def __init__(self, length: int) -> None:
        self.files = sorted(DAVIS.glob("JPEGImages/*/*.jpg"))
        if not self.files:
            raise SystemExit(f"no DAVIS frames under {DAVIS}")
        self.length = length
        with Image.open(self.files[0]) as im:
            self.size = (im.width, im.height)
        self.fps = 24.0

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> np.ndarray:
        if not 0 <= index < self.length:
            raise IndexError(index)
        with Image.open(self.files[index % len(self.files)]) as im:
            return np.asarray(im.convert("RGB"))

    def __iter__(self) -> Iterator[np.ndarray]:
        return (self[i] for i in range(self.length))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="sam2.1_hiera_tiny", help="name or exported folder")
    parser.add_argument("--frames", type=int, default=1000)
    parser.add_argument("--every", type=int, default=50, help="record every N frames")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)

    from samedge.video import VideoPredictor

    video = LoopedDavis(args.frames)
    first = video.files[0]
    mask = np.asarray(Image.open(DAVIS / "Annotations" / first.parent.name / (first.stem + ".png")))
    predictor = VideoPredictor.from_pretrained(args.model, threads=args.threads)
    state = predictor.init_state(video.size, num_frames=len(video))
    predictor.add_prompt(state, 0, video[0], 1, mask=mask > 0)
    rows = [
        {
            "frame": -1,
            "rss_mib": status("VmRSS") / MIB,
            "peak_mib": status("VmHWM") / MIB,
            "state_mib": state.nbytes() / MIB,
            "seconds_per_frame": 0.0,
        }
    ]
    print(f"loaded and prompted: RSS {rows[0]['rss_mib']:.0f} MiB", file=sys.stderr)
    last = time.perf_counter()
    done = 0
    for result in predictor.propagate(state, video):
        done += 1
        if result.frame_index % args.every == 0 or result.frame_index == len(video) - 1:
            now = time.perf_counter()
            row = {
                "frame": result.frame_index,
                "rss_mib": status("VmRSS") / MIB,
                "peak_mib": status("VmHWM") / MIB,
                "state_mib": state.nbytes() / MIB,
                "seconds_per_frame": (now - last) / max(done, 1),
            }
            last, done = now, 0
            rows.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
    report = {
        "model": str(args.model),
        "frames": args.frames,
        "threads": args.threads,
        "rows": rows,
    }
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    print("| frame | RSS (MiB) | peak RSS (MiB) | tracking state (MiB) | s / frame |")
    print("|---:|---:|---:|---:|---:|")
    for row in rows[1:]:
        print(
            f"| {row['frame']} | {row['rss_mib']:.0f} | {row['peak_mib']:.0f} | "
            f"{row['state_mib']:.1f} | {row['seconds_per_frame']:.2f} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
