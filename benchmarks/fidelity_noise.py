"""How much of a reduced-precision model's mask disagreement is the model's own sensitivity.

    PYTHONPATH=src python benchmarks/fidelity_noise.py FP32_DIR INT8_DIR \
        --data ../shared/data/interactive/GrabCut --limit 10 --threads 2 [--scales 1,0.33,0.1]

For each image the reduced model's encoder outputs are compared with the fp32 model's
(relative L2 error per tensor). Then the fp32 model is evaluated twice against itself: once
through the reduced folder (what ``samedge quantize`` reports), and once with its own
encoder outputs plus Gaussian noise of exactly that relative size on the same image (a
control). Equal mean IoUs mean the disagreement comes from how sensitive the model's
decoder is to any change of its embedding of that size, not from where the quantiser put
its error; a control far above the reduced model means the quantiser's error is worse than
random (outliers, a badly calibrated layer). A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
from pathlib import Path
from typing import Any

import numpy as np


def _key(image: np.ndarray) -> str:
    return hashlib.sha256(image.tobytes()).hexdigest() + str(image.shape)


class _Perturbed:
    """The fp32 predictor, its encoder outputs moved by Gaussian noise whose relative L2
    equals the reduced model's error on the same image (``errors`` per image, per tensor)."""

    def __init__(
        self, reference: Any, errors: dict[str, list[float]], seed: int, scale: float = 1.0
    ) -> None:
        self.reference = reference
        self.scale = scale
        self.spec = reference.spec
        self.errors = errors
        self.rng = np.random.default_rng(seed)

    def _noisy(self, x: np.ndarray, rel: float) -> np.ndarray:
        noise = self.rng.standard_normal(x.shape).astype(np.float32)
        return x + noise * np.float32(rel * np.linalg.norm(x) / np.linalg.norm(noise))

    def encode(self, image: np.ndarray) -> Any:
        emb = self.reference.encode(image)
        rel = self.errors[_key(image)]
        tensors = (emb.image_embeddings, *emb.high_res_features)
        noisy = [self._noisy(t, r * self.scale) for t, r in zip(tensors, rel, strict=True)]
        # No context: the predictor computes it from the perturbed embedding on each call.
        return dataclasses.replace(
            emb, image_embeddings=noisy[0], high_res_features=tuple(noisy[1:]), context=()
        )

    def predict(self, embedding: Any, **kwargs: Any) -> Any:
        return self.reference.predict(embedding, **kwargs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("reference", type=Path, help="the fp32 export")
    parser.add_argument("reduced", type=Path, help="its fp16/int8 folder (samedge quantize)")
    parser.add_argument("--data", default="../shared/data/interactive/GrabCut")
    parser.add_argument("--format", default="interactive")
    parser.add_argument("--limit", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--scales",
        default="1",
        help="comma-separated multiples of the measured error for the noise rows, e.g. "
        "1,0.33,0.1: how small the change must be for the masks to stay put",
    )
    args = parser.parse_args()

    from samedge import Predictor
    from samedge.eval import EvalConfig, evaluate, open_dataset
    from samedge.eval.metrics import relative_l2

    reference = Predictor.from_pretrained(args.reference, threads=args.threads)
    reduced = Predictor.from_pretrained(args.reduced, threads=args.threads)
    dataset = open_dataset(args.data, args.format)
    config = EvalConfig(protocols=("center", "box"), limit=args.limit)

    errors: dict[str, list[float]] = {}
    pending: dict[str, Any] = {}  # the reduced model's embedding, until fp32 encodes that image

    class _Measured:
        """The reduced predictor; keeps each embedding for :class:`_Reference` to measure."""

        spec = reduced.spec

        def encode(self, image: np.ndarray) -> Any:
            pending[_key(image)] = emb = reduced.encode(image)
            return emb

        def predict(self, embedding: Any, **kwargs: Any) -> Any:
            return reduced.predict(embedding, **kwargs)

    class _Reference:
        """The fp32 predictor, recording the reduced model's error on each image it encodes
        (evaluate encodes every image with both, so nothing is encoded twice)."""

        spec = reference.spec

        def encode(self, image: np.ndarray) -> Any:
            ref, ours = reference.encode(image), pending.pop(_key(image))
            pairs = zip(
                (ours.image_embeddings, *ours.high_res_features),
                (ref.image_embeddings, *ref.high_res_features),
                strict=True,
            )
            errors[_key(image)] = [relative_l2(a, b) for a, b in pairs]
            return ref

        def predict(self, embedding: Any, **kwargs: Any) -> Any:
            return reference.predict(embedding, **kwargs)

    rows = []
    measured = evaluate(_Measured(), dataset, config, reference=_Reference()).fidelity or {}
    rows.append((f"{args.reduced.name} (reduced)", measured))
    for scale in (float(v) for v in args.scales.split(",")):
        control = _Perturbed(reference, errors, args.seed, scale)
        noisy = evaluate(control, dataset, config, reference=reference).fidelity or {}
        size = "the same size" if scale == 1 else f"{scale:g} x that size"
        rows.append((f"fp32 + Gaussian noise of {size}", noisy))

    per_tensor = np.array(list(errors.values()))
    print(f"{len(errors)} images; encoder output relative L2 error of {args.reduced.name}:")
    for k, name in enumerate(["image_embeddings", *[f"high_res_{i}" for i in range(1, 9)]]):
        if k < per_tensor.shape[1]:
            col = per_tensor[:, k]
            print(f"  {name}: mean {col.mean():.4f}, min {col.min():.4f}, max {col.max():.4f}")
    print("| masks against fp32 | mean IoU (all) | centre click | box | p1 (all) |")
    print("|---|---:|---:|---:|---:|")
    for name, f in rows:
        print(
            f"| {name} | {float(f['all']['mean_iou']):.4f} | {float(f['center']['mean_iou']):.4f}"
            f" | {float(f['box']['mean_iou']):.4f} | {float(f['all']['p1_iou']):.4f} |"
        )


if __name__ == "__main__":
    main()
