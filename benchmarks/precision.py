"""Encoder / decoder latency of model folders of different precision, side by side.

    SAMEDGE_ORT_SPIN=0 python benchmarks/precision.py FP32_DIR INT8_DIR ... \
        --image ../shared/data/images/truck.jpg --threads 2 --runs 5

The first folder is the baseline of the speed-up columns. Every folder is timed on the same
image with the same thread count: one warm-up, then the median of ``--runs`` encoder calls
and of ``--runs`` decoder calls (one positive point); ``--interleave`` times the folders in
turns instead of one after the other. Fidelity columns are read from each
folder's manifest (written by ``samedge quantize``). A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path


def _time_ms(fn) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--image", default="../shared/data/images/truck.jpg")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", type=Path, help="also write the rows here")
    parser.add_argument(
        "--provider",
        default=None,
        help="providers in order of preference, as for samedge segment (e.g. openvino: "
        "the encoder on OpenVINO's runtime, which turns a static INT8 graph's "
        "quantise/dequantise pairs into its own integer kernels)",
    )
    parser.add_argument(
        "--interleave",
        action="store_true",
        help="load every folder first, then time them in turns (round robin), so that load "
        "from other processes hits all rows alike",
    )
    args = parser.parse_args()
    os.environ.setdefault("SAMEDGE_ORT_SPIN", "0")

    from samedge.imageio import load_image
    from samedge.manifest import Manifest
    from samedge.runtime.predictor import Predictor

    image = load_image(args.image)
    h, w = image.shape[:2]
    predictors = {}
    embeddings = {}
    timings: dict[Path, dict[str, list[float]]] = {}
    used: dict[Path, str] = {}
    rounds = [[f] for f in args.folders] if not args.interleave else [args.folders]
    for group in rounds:
        for folder in group:
            predictors[folder] = Predictor.from_pretrained(
                folder, providers=args.provider, threads=args.threads
            )
            embeddings[folder] = predictors[folder].encode(image)  # warm-up
            timings[folder] = {"encoder": [], "decoder": []}
            used[folder] = predictors[folder].providers["encoder"]
        for _ in range(args.runs):
            for folder in group:
                p, e = predictors[folder], embeddings[folder]
                timings[folder]["encoder"].append(_time_ms(lambda p=p: p.encode(image)))
                timings[folder]["decoder"].append(
                    _time_ms(lambda p=p, e=e: p.predict(e, points=[[w / 2, h / 2]], labels=[1]))
                )
        for folder in group:
            del predictors[folder]
    rows = []
    for folder in args.folders:
        enc = statistics.median(timings[folder]["encoder"])
        dec = statistics.median(timings[folder]["decoder"])
        manifest = Manifest.read(folder)
        fid = manifest.extra.get("fidelity", {}).get("stats", {}).get("all", {})
        rows.append(
            {
                "folder": str(folder),
                "model": manifest.model,
                "precision": manifest.precision,
                "encoder_provider": used[folder],
                "encoder_ms": enc,
                "decoder_ms": dec,
                "encoder_runs_ms": timings[folder]["encoder"],
                "mean_iou": fid.get("mean_iou"),
                "p1_iou": fid.get("p1_iou"),
                "min_iou": fid.get("min_iou"),
            }
        )
    base = rows[0]
    print(
        f"threads={args.threads} runs={args.runs} interleave={args.interleave} image={args.image}"
        f" encoder provider={', '.join(sorted(set(used.values())))}"
    )
    print("| model | encoder | decoder | encoder ms | x | decoder ms | x | mean IoU | p1 | min |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:

        def f(v):
            return "-" if v is None else f"{v:.3f}"

        print(
            f"| {r['model']} | {r['precision']['encoder']} | {r['precision']['decoder']} | "
            f"{r['encoder_ms']:.0f} | {base['encoder_ms'] / r['encoder_ms']:.2f} | "
            f"{r['decoder_ms']:.1f} | {base['decoder_ms'] / r['decoder_ms']:.2f} | "
            f"{f(r['mean_iou'])} | {f(r['p1_iou'])} | {f(r['min_iou'])} |"
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
