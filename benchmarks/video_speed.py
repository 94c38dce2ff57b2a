"""Video tracking speed: samedge's VideoPredictor against the official SAM2VideoPredictor.

Both track the same DAVIS sequence from its first frame's ground-truth mask with the same
weights (the export's: the seed of a ``--random-init`` export, or ``--checkpoint``), in the
same process, one frame of each in turn (so a change in the machine's load hits both), with
``--threads`` threads each. Per frame and per stage: image encoder, memory attention,
decoder (prompt encoder + mask decoder + object pointer), memory encoder. The official
stages are timed by wrapping its own methods (``forward_image``,
``memory_attention.forward``, ``_forward_sam_heads``, ``_encode_new_memory``) without
changing them; its up-front loading of every frame is reported apart.

Also the memory attention's FLOPs (:func:`samedge.bench.flops.count_flops`) with the full
memory (7 memories, 16 pointers) and the compute floor (FLOPs / this machine's fp32 GEMM
peak with the same threads), and with ``--padding`` the graph's time per memory and pointer
count (dynamic axes) against the full-size call a padded graph would make every frame.

Run from the repository root, e.g.:

    python benchmarks/video_speed.py --model DIR --frames 20 --threads 2 --json speed.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from samedge.runtime.providers import OPENVINO_PRECISIONS

ROOT = Path(__file__).resolve().parents[1]
DAVIS = ROOT.parent / "shared" / "data" / "davis2016"
STAGES = ("encoder", "memory_attention", "decoder", "memory_encoder")


def official_predictor(folder: Path, checkpoint: Path | None) -> Any:
    """The official video predictor with the export's weights."""
    from sam2.build_sam import build_sam2_video_predictor

    from samedge.artifacts import ModelArtifact
    from samedge.export.build import build_model

    art = ModelArtifact.open(folder, verify=False)
    if checkpoint is not None:
        model = build_model(art.spec, checkpoint=checkpoint)
    else:
        model = build_model(art.spec, seed=int(art.manifest.weights["seed"]))
    official = build_sam2_video_predictor(art.spec.official_builder, device="cpu")
    official.load_state_dict(model.state_dict())
    return official.eval()


def time_official_stages(official: Any, timings: dict[str, float]) -> None:
    """Wrap the official stages so each call adds its time to ``timings``."""

    def wrap(owner: Any, name: str, stage: str) -> None:
        method = getattr(owner, name)

        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                timings[stage] += time.perf_counter() - start

        setattr(owner, name, timed)

    wrap(official, "forward_image", "encoder")
    wrap(official.memory_attention, "forward", "memory_attention")
    wrap(official, "_forward_sam_heads", "decoder")
    wrap(official, "_encode_new_memory", "memory_encoder")


def run_both(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from samedge.runtime.providers import ProviderSettings
    from samedge.video import VideoPredictor
    from samedge.video.io import FrameFolder

    torch.set_num_threads(args.threads)
    frames = FrameFolder(DAVIS / "JPEGImages" / args.sequence, fps=24.0, count=args.frames)
    mask = np.asarray(Image.open(DAVIS / "Annotations" / args.sequence / "00000.png")) > 0
    settings = ProviderSettings(openvino_precision=args.openvino_precision)
    ours = VideoPredictor.from_pretrained(
        args.model, providers=args.provider, threads=args.threads, provider_settings=settings
    )
    official = official_predictor(Path(args.model), args.checkpoint)
    official_times: dict[str, float] = defaultdict(float)
    time_official_stages(official, official_times)

    state = ours.init_state(frames.size, num_frames=len(frames))
    ours.add_prompt(state, 0, frames[0], 1, mask=mask)
    folder = Path(args.workdir) / f"frames-{args.sequence}-{args.frames}"
    if not folder.is_dir():
        folder.mkdir(parents=True)
        for file in frames.files:
            (folder / file.name).symlink_to(file)
    start = time.perf_counter()
    with torch.inference_mode():
        ref_state = official.init_state(str(folder))
        load = time.perf_counter() - start
        official.add_new_mask(ref_state, 0, 1, mask)
    ref = official.propagate_in_video(ref_state)
    got = ours.propagate(state, frames)
    rows = []
    for index in range(len(frames)):
        official_times.clear()
        start = time.perf_counter()
        with torch.inference_mode():
            next(ref)
        official_total = time.perf_counter() - start
        start = time.perf_counter()
        result = next(got)
        ours_total = time.perf_counter() - start
        row = {
            "frame": index,
            "ours": {"total": ours_total, **{s: result.timings.get(s, 0.0) for s in STAGES}},
            "official": {"total": official_total, **{s: official_times[s] for s in STAGES}},
        }
        rows.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
    return {"official_load_s": load, "providers": ours.providers, "rows": rows}


def attention_feeds(memories: int, pointers: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "image_embeddings": rng.standard_normal((1, 256, 64, 64)).astype(np.float32),
        "memory_features": rng.standard_normal((memories, 4096, 64)).astype(np.float32),
        "memory_tpos": np.zeros(memories, np.int64),
        "obj_ptrs": rng.standard_normal((pointers, 256)).astype(np.float32),
        "obj_ptr_tpos": np.zeros(pointers, np.float32),
    }


def attention_floor(model: Path, threads: int) -> dict[str, float]:
    from samedge.bench.flops import count_flops, gemm_peak

    flops = count_flops(model / "memory_attention.onnx", attention_feeds(7, 16))
    peak = gemm_peak(threads)
    return {"gflops": flops / 1e9, "peak_gflops_per_s": peak / 1e9, "floor_s": flops / peak}


def padding_study(model: Path, threads: int, repeats: int) -> list[dict[str, float]]:
    """The memory attention's time per (memories, pointers), dynamic axes, against the
    7-memory, 16-pointer call a graph padded to the maximum makes on every frame."""
    from samedge.runtime.session import create_session

    session = create_session(model / "memory_attention.onnx", threads=threads, mem_pattern=False)
    sizes = [(m, min(m, 16)) for m in range(1, 8)] + [(7, 16)]
    out = []
    for memories, pointers in sizes:
        feeds = attention_feeds(memories, pointers)
        session.run(None, feeds)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            session.run(None, feeds)
            times.append(time.perf_counter() - start)
        out.append({"memories": memories, "pointers": pointers, "s": statistics.median(times)})
        print(json.dumps(out[-1]), file=sys.stderr, flush=True)
    # A new shape every call (as the first frames of a track): any per-shape cost shows.
    times = []
    for memories, pointers in sizes * repeats:
        feeds = attention_feeds(memories, pointers)
        start = time.perf_counter()
        session.run(None, feeds)
        times.append((memories, pointers, time.perf_counter() - start))
    steady = {(r["memories"], r["pointers"]): r["s"] for r in out}
    extra = statistics.median(t - steady[(m, p)] for m, p, t in times)
    out.append({"shape_change_extra_s": extra})
    return out


def table(report: dict[str, Any], skip: int) -> str:
    rows = report["rows"][skip:]
    lines = [
        "| stage | samedge (ms / frame) | official (ms / frame) | samedge / official |",
        "|---|---:|---:|---:|",
    ]
    for stage in (*STAGES, "total"):
        ours = statistics.mean(r["ours"][stage] for r in rows) * 1000
        theirs = statistics.mean(r["official"][stage] for r in rows) * 1000
        lines.append(f"| {stage} | {ours:.0f} | {theirs:.0f} | {ours / theirs:.2f}x |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="exported SAM 2.1 folder")
    parser.add_argument("--checkpoint", type=Path, default=None)
    parser.add_argument("--sequence", default="car-shadow")
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--provider", default=None, help="samedge's providers, e.g. openvino")
    parser.add_argument("--openvino-precision", choices=OPENVINO_PRECISIONS, default=None)
    parser.add_argument("--skip", type=int, default=8, help="frames left out of the means")
    parser.add_argument("--padding", action="store_true", help="also the padding study")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workdir", default="/tmp")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    report: dict[str, Any] = {"threads": args.threads, "sequence": args.sequence}
    report.update(run_both(args))
    report["memory_attention_floor"] = attention_floor(Path(args.model), args.threads)
    if args.padding:
        report["padding"] = padding_study(Path(args.model), args.threads, args.repeats)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(table(report, args.skip))
    floor = report["memory_attention_floor"]
    print(
        f"\nmemory attention (7 memories, 16 pointers): {floor['gflops']:.0f} GFLOP, floor "
        f"{floor['floor_s'] * 1000:.0f} ms at {floor['peak_gflops_per_s']:.0f} GFLOP/s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
