"""What the tracker's speed options cost in agreement with the default (official) policy.

Tracks DAVIS sequences from their first frame's ground-truth mask once with the default
tracker (ONNX Runtime, fp32, the official memory policy) and once per variant: the memory
options (``recent_memories``: fewer recent frames' memories; ``memory_stride``: every k-th
frame's) and the OpenVINO runs (``openvino``: the encoder on OpenVINO's runtime in fp32;
``openvino-bf16``: encoder, memory attention and memory encoder in bf16, CPUs with AMX or
AVX-512 BF16). Reports per sequence and variant the mask IoU with the default run (mean and
minimum over the frames after the prompt, frames where both masks are empty count as 1),
the frames where the two runs disagree on whether the object is present, and the time per
frame against the default's. Random-weight exports track meaningless masks, but the
agreement still says how far a variant moves the tracker from the official arithmetic.

Run from the repository root, e.g.:

    python benchmarks/video_options.py --model DIR --sequence car-shadow blackswan dog \
        --frames 40 --threads 2 --variants openvino openvino-bf16 --json video-options.json
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
#: variant -> (predictor: providers and OpenVINO precision, init_state options)
VARIANTS: dict[str, tuple[tuple[str | None, str | None], dict[str, int]]] = {
    "default": ((None, None), {}),
    "recent_memories=3": ((None, None), {"recent_memories": 3}),
    "recent_memories=1": ((None, None), {"recent_memories": 1}),
    "memory_stride=2": ((None, None), {"memory_stride": 2}),
    "openvino": (("openvino", None), {}),
    "openvino-bf16": (("openvino", "bf16"), {}),
}


def track(vp: Any, frames: Any, mask: np.ndarray, options: dict[str, int]) -> dict[str, Any]:
    state = vp.init_state(frames.size, num_frames=len(frames), **options)
    vp.add_prompt(state, 0, frames[0], 1, mask=mask)
    masks, scores, attention, total = [], [], [], []
    start = time.perf_counter()
    for result in vp.propagate(state, frames):
        now = time.perf_counter()
        masks.append(result.masks[0])
        scores.append(float(np.ravel(result.object_scores)[0]))
        attention.append(result.timings.get("memory_attention", 0.0))
        total.append(now - start)
        start = now
    return {"masks": masks, "scores": scores, "attention": attention, "total": total}


def compare(run: dict[str, Any], base: dict[str, Any]) -> dict[str, float]:
    """``run`` against the default ``base`` over the frames after the prompt."""
    from samedge.maskutils import mask_iou

    pairs = list(zip(run["masks"][1:], base["masks"][1:], strict=True))
    ious = [mask_iou(a, b) if a.any() or b.any() else 1.0 for a, b in pairs]
    presence = sum(
        (a > 0) != (b > 0) for a, b in zip(run["scores"][1:], base["scores"][1:], strict=True)
    )
    # Times once the default's memory is full (frame 7 on).
    return {
        "mean_iou": statistics.mean(ious),
        "min_iou": min(ious),
        "presence_disagreements": int(presence),
        "max_score_difference": max(
            abs(a - b) for a, b in zip(run["scores"][1:], base["scores"][1:], strict=True)
        ),
        "memory_attention_vs_default": statistics.mean(run["attention"][7:])
        / statistics.mean(base["attention"][7:]),
        "seconds_per_frame": statistics.mean(run["total"][7:]),
        "frame_vs_default": statistics.mean(run["total"][7:]) / statistics.mean(base["total"][7:]),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--sequence", nargs="+", default=["car-shadow"])
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--variants",
        nargs="+",
        choices=[v for v in VARIANTS if v != "default"],
        default=["recent_memories=3", "recent_memories=1", "memory_stride=2"],
    )
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)

    from samedge.runtime.providers import ProviderSettings
    from samedge.video import VideoPredictor
    from samedge.video.io import FrameFolder

    predictors: dict[tuple[str | None, str | None], Any] = {}
    rows = []
    for sequence in args.sequence:
        frames = FrameFolder(DAVIS / "JPEGImages" / sequence, fps=24.0, count=args.frames)
        mask = np.asarray(Image.open(DAVIS / "Annotations" / sequence / "00000.png")) > 0
        runs = {}
        for name in ["default", *args.variants]:
            (providers, precision), options = VARIANTS[name]
            if (providers, precision) not in predictors:
                predictors[providers, precision] = VideoPredictor.from_pretrained(
                    args.model,
                    providers=providers,
                    threads=args.threads,
                    provider_settings=ProviderSettings(openvino_precision=precision),
                )
            runs[name] = track(predictors[providers, precision], frames, mask, options)
            print(f"{sequence} {name}: done", file=sys.stderr, flush=True)
        for name in args.variants:
            rows.append(
                {"sequence": sequence, "variant": name, **compare(runs[name], runs["default"])}
            )
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    report = {
        "sequences": args.sequence,
        "frames": args.frames,
        "threads": args.threads,
        "providers": {f"{k[0]}/{k[1]}": vp.providers for k, vp in predictors.items()},
        "rows": rows,
    }
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(
        "| sequence | variant | mean IoU with default | min IoU | presence disagreements "
        "| object score max difference | memory attention vs default | frame vs default |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        print(
            f"| {row['sequence']} | {row['variant']} | {row['mean_iou']:.4f} | "
            f"{row['min_iou']:.4f} | {row['presence_disagreements']} | "
            f"{row['max_score_difference']:.1e} | {row['memory_attention_vs_default']:.2f}x | "
            f"{row['frame_vs_default']:.2f}x |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
