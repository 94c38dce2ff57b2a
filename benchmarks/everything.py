"""Benchmark "segment everything": samedge exact and fast modes vs the official generator.

Run from the repository root (needs the [export] extra for the official generator and for
the FLOP count), e.g.:

    PYTHONPATH=src python benchmarks/everything.py --model DIR_OR_NAME \
        --image ../shared/data/images/truck.jpg --threads 2 --out bench.json

It prints and stores (JSON):
* the measured fp32 GEMM peak (NumPy and ONNX Runtime MatMul loops, same thread count);
* the decoder's GFLOP per prompt: of the graph samedge runs (``decoder.onnx``, counted on
  the ONNX graph by ``samedge.bench.flops``) and of the official decoder (PyTorch's
  ``FlopCounterMode`` on the official modules);
* wall time of the official generator, samedge exact and samedge fast in the same process,
  same image and thread count, with samedge's encode / decode / post-processing split; the
  exact mode twice: as it runs by default (the split decoder draws masks only for points
  that have one above ``pred_iou_thresh``) and with ``split_decoder=False`` (every point's
  masks drawn by ``decoder.onnx``), with the number of points whose masks were drawn;
* the decoder compute floor (GFLOP/prompt x prompts / peak) and samedge's ratio to it, for
  both FLOP counts;
* how many official masks samedge's masks match at IoU >= 0.95 (exact) and >= 0.9 (fast).

This is a measurement script, not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path


def _set_threads(threads: int) -> None:
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)


def gemm_peak_numpy(n: int = 1024, seconds: float = 3.0) -> float:
    import numpy as np

    a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    b = np.random.default_rng(1).standard_normal((n, n), dtype=np.float32)
    a @ b
    best = 0.0
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        t = time.perf_counter()
        a @ b
        best = max(best, 2 * n**3 / (time.perf_counter() - t) / 1e9)
    return best


def gemm_peak_ort(threads: int, n: int = 1024, seconds: float = 3.0) -> float:
    import tempfile

    import numpy as np
    import onnx
    from onnx import TensorProto, helper

    from samedge.runtime.session import create_session

    graph = helper.make_graph(
        [helper.make_node("MatMul", ["a", "b"], ["c"])],
        "gemm",
        [
            helper.make_tensor_value_info("a", TensorProto.FLOAT, [n, n]),
            helper.make_tensor_value_info("b", TensorProto.FLOAT, [n, n]),
        ],
        [helper.make_tensor_value_info("c", TensorProto.FLOAT, [n, n])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "gemm.onnx"
        onnx.save(model, path)
        session = create_session(path, threads=threads)
    rng = np.random.default_rng(0)
    feeds = {
        "a": rng.standard_normal((n, n), dtype=np.float32),
        "b": rng.standard_normal((n, n), dtype=np.float32),
    }
    session.run(None, feeds)
    best = 0.0
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        t = time.perf_counter()
        session.run(None, feeds)
        best = max(best, 2 * n**3 / (time.perf_counter() - t) / 1e9)
    return best


def onnx_decoder_gflops(predictor) -> float:
    """GFLOP per prompt of ``decoder.onnx``, the graph that decodes the grid's points (one
    point per prompt set, as the generator sends them)."""
    from samedge.bench.flops import count_flops
    from samedge.bench.prompts import BenchPrompt
    from samedge.bench.runner import decoder_feeds

    spec = predictor.spec
    point = BenchPrompt("point", [[10.0, 20.0]], [1], None, multimask=True)
    feeds = decoder_feeds(spec, point, (spec.image_size, spec.image_size))
    return count_flops(predictor.artifact.decoder_path, feeds) / 1e9


def decoder_gflops(spec, batch: int = 4) -> float:
    """GFLOP of the official decoder per prompt (one point + padding).

    Counted with PyTorch's ``FlopCounterMode`` on samedge's reference wrapper of the official
    prompt encoder and mask decoder, with ``batch`` prompts, divided by ``batch``.
    """
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from samedge.export.build import build_model
    from samedge.export.wrappers import PromptDecoder

    model = build_model(spec, seed=0)
    decoder = PromptDecoder(model, spec).eval()
    emb = torch.zeros(1, *spec.embedding_shape)
    high = [torch.zeros(1, *s) for s in spec.high_res_shapes]
    coords = torch.rand(batch, 2, 2) * spec.image_size
    labels = torch.tensor([[1.0, -1.0]] * batch)
    mask = torch.zeros(batch, 1, 256, 256)
    has = torch.zeros(batch)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        decoder(emb, *high, coords, labels, mask, has)
    return counter.get_total_flops() / batch / 1e9


def _iou(a, b):
    import numpy as np

    union = np.count_nonzero(a | b)
    return 1.0 if union == 0 else np.count_nonzero(a & b) / union


def recovered(ref_masks, masks, thresh):
    """Fraction of ``ref_masks`` matched by some mask of ``masks`` at IoU >= thresh."""
    if len(ref_masks) == 0:
        return 1.0
    hits = 0
    for r in ref_masks:
        if any(_iou(r, m) >= thresh for m in masks):
            hits += 1
    return hits / len(ref_masks)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, help="registered name or exported folder")
    parser.add_argument("--image", default="../shared/data/images/truck.jpg")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--points-per-side", type=int, default=32)
    parser.add_argument("--points-per-batch", type=int, default=64)
    parser.add_argument(
        "--lowered",
        action="store_true",
        help="thresholds lowered so random-weight masks survive (pred IoU 0.5 / off, "
        "stability offset 0.1, stability 0.32)",
    )
    parser.add_argument(
        "--pred-iou-thresh",
        type=float,
        help="override pred_iou_thresh (e.g. between the random-weight scores, so that the "
        "split decoder skips part of the points)",
    )
    parser.add_argument("--skip-official", action="store_true")
    parser.add_argument("--out", type=Path, help="write the figures as JSON here")
    args = parser.parse_args()
    _set_threads(args.threads)

    import numpy as np

    from samedge.amg import AmgSettings, MaskGenerator
    from samedge.imageio import load_image
    from samedge.runtime.predictor import Predictor

    image = load_image(args.image)
    predictor = Predictor.from_pretrained(args.model, threads=args.threads)
    spec = predictor.spec
    settings: dict = {
        "points_per_side": args.points_per_side,
        "points_per_batch": args.points_per_batch,
    }
    if args.lowered:
        settings.update(
            pred_iou_thresh=0.5 if spec.family == "sam2" else 0.0,
            stability_score_offset=0.1,
            stability_score_thresh=0.32,
        )
    if args.pred_iou_thresh is not None:
        settings["pred_iou_thresh"] = args.pred_iou_thresh
    base = AmgSettings.for_spec(spec, **settings)  # the official defaults, then these
    out: dict = {
        "model": spec.name,
        "image": args.image,
        "image_size": list(image.shape[:2]),
        "threads": args.threads,
        "settings": settings,
        "cpu": _cpu_name(),
    }
    out["gemm_peak_numpy_gflops"] = round(gemm_peak_numpy(), 1)
    out["gemm_peak_ort_gflops"] = round(gemm_peak_ort(args.threads), 1)
    peak = max(out["gemm_peak_numpy_gflops"], out["gemm_peak_ort_gflops"])
    out["decoder_gflop_per_prompt"] = round(onnx_decoder_gflops(predictor), 3)
    out["official_decoder_gflop_per_prompt"] = round(decoder_gflops(spec), 3)
    print(json.dumps(out, indent=1), flush=True)

    runs = {}
    for mode in ("exact", "exact_whole_decoder", "fast"):
        split = False if mode == "exact_whole_decoder" else None
        gen = MaskGenerator(predictor, base, fast=mode == "fast", split_decoder=split)
        t = time.perf_counter()
        result = gen.generate_masks(image)
        wall = time.perf_counter() - t
        st = result.stats
        floor = out["decoder_gflop_per_prompt"] * st["prompts"] / peak
        official_floor = out["official_decoder_gflop_per_prompt"] * st["prompts"] / peak
        runs[mode] = result
        out[mode] = {
            "wall_s": round(wall, 2),
            "encode_s": round(st["encode_s"], 2),
            "decode_s": round(st["decode_s"], 2),
            "post_s": round(st["post_s"], 3),
            "prompts": st["prompts"],
            "masks": len(result),
            "upscaled": st["upscaled"],
            "split_prompts": st["split_prompts"],
            "masks_drawn_for": st["drawn"],
            "decoder_floor_s": round(floor, 2),
            "decode_over_floor": round(st["decode_s"] / floor, 2),
            "decode_plus_post_over_floor": round((st["decode_s"] + st["post_s"]) / floor, 2),
            "official_flop_floor_s": round(official_floor, 2),
            "decode_over_official_flop_floor": round(st["decode_s"] / official_floor, 2),
        }
        print(mode, json.dumps(out[mode]), flush=True)

    if not args.skip_official:
        import torch

        torch.set_num_threads(args.threads)
        from samedge.export.build import build_model, official_mask_generator_class
        from samedge.export.torch_compat import ensure_torchvision

        ensure_torchvision()  # torchvision's compiled NMS cannot load: pure-PyTorch NMS
        model = build_model(spec, seed=0) if predictor.artifact.random_weights else None
        if model is None:
            raise SystemExit("the official run needs a seed-0 random-weight export")
        gen = official_mask_generator_class(spec)(model, **settings)
        t = time.perf_counter()
        ref = gen.generate(image)
        wall = time.perf_counter() - t
        ref_masks = [r["segmentation"] for r in ref]
        out["official"] = {"wall_s": round(wall, 2), "masks": len(ref)}
        for mode, thresh in (("exact", 0.95), ("fast", 0.9)):
            out[mode]["speedup_vs_official"] = round(wall / out[mode]["wall_s"], 2)
            out[mode][f"official_recovered_iou{thresh}"] = round(
                recovered(ref_masks, runs[mode].masks, thresh), 3
            )
            out[mode]["matched_by_official"] = round(
                recovered(list(runs[mode].masks), ref_masks, thresh), 3
            )
        print("official", json.dumps(out["official"]), flush=True)
    else:
        out["fast"]["exact_recovered_iou0.9"] = round(
            recovered(list(runs["exact"].masks), runs["fast"].masks, 0.9), 3
        )
    print(json.dumps(out, indent=1))
    if args.out:
        args.out.write_text(json.dumps(out, indent=1) + "\n")
    del np
    return 0


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()} ({os.cpu_count()} cores visible)"
    except OSError:
        pass
    return "unknown"


if __name__ == "__main__":
    sys.exit(main())
