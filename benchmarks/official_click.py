"""The official predictor's click after ``set_image``, by thread count (not a test).

    python benchmarks/official_click.py DIR --threads 1 2 --photo ../shared/data/images/truck.jpg

Builds the official PyTorch predictor of an exported model's family with the export's
random-init weights (as ``samedge bench --compare-torch`` does), then in a fresh process per
thread count times ``--images`` calls of ``set_image`` on the photo, each followed by
``--clicks`` one-point ``predict`` calls. Shows whether a slow official click is a warm-up
effect (only the first click after ``set_image`` slow) or contention (every click slow, and
slower with 2 threads than with 1 when the machine's cores are shared: the decoder's hundreds
of small operators each end in an OpenMP barrier).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time


def _child(model: str, threads: int, photo: str, images: int, clicks: int, flush: bool) -> None:
    import numpy as np
    import torch

    from samedge.artifacts import resolve_model
    from samedge.export.build import build_model, official_predictor_class
    from samedge.export.torch_compat import ensure_torchvision
    from samedge.imageio import load_image

    ensure_torchvision()
    torch.set_num_threads(threads)
    torch.set_flush_denormal(flush)
    artifact = resolve_model(model, verify=False)
    seed = int(artifact.manifest.weights.get("seed", 0))
    predictor = official_predictor_class(artifact.spec)(build_model(artifact.spec, seed=seed))
    rgb = load_image(photo)
    point = np.array([[rgb.shape[1] * 0.4, rgb.shape[0] * 0.5]])
    rows = []
    for _ in range(images):
        start = time.perf_counter()
        predictor.set_image(rgb)
        row = {"set_image_ms": round(1e3 * (time.perf_counter() - start)), "clicks_ms": []}
        for _ in range(clicks):
            start = time.perf_counter()
            with torch.no_grad():
                predictor.predict(point_coords=point, point_labels=np.array([1]))
            row["clicks_ms"].append(round(1e3 * (time.perf_counter() - start)))
        rows.append(row)
    print(json.dumps({"threads": threads, "flush_denormal": flush, "rows": rows}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="exported folder (random-init weights)")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--photo", default="../shared/data/images/truck.jpg")
    parser.add_argument("--images", type=int, default=3)
    parser.add_argument("--clicks", type=int, default=3)
    parser.add_argument("--flush-denormal", action="store_true")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        _child(args.model, args.child, args.photo, args.images, args.clicks, args.flush_denormal)
        return
    for threads in args.threads:
        cmd = [sys.executable, __file__, args.model, "--child", str(threads), "--photo"]
        cmd += [args.photo, "--images", str(args.images), "--clicks", str(args.clicks)]
        if args.flush_denormal:
            cmd.append("--flush-denormal")
        out = subprocess.run(cmd, capture_output=True, text=True, check=True)
        print(out.stdout.strip().splitlines()[-1], flush=True)


if __name__ == "__main__":
    main()
