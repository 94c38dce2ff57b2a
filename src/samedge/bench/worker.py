"""The child process that times one side of a benchmark.

``python -m samedge.bench.worker --side samedge|official --model DIR --threads N`` reads one
JSON command per line on stdin and answers one JSON object per line on stdout:

* ``{"cmd": "load", "plan": [...]}``: import the side's packages, load the model, run one
  warm-up pass on the first image; answers timings and the providers in use.
* ``{"cmd": "repeat"}``: one pass over every run, image and prompt of the plan; sends
  ``{"progress": 1}`` after each image, then ``{"samples": {stage: [seconds, ...]}}``.
* ``{"cmd": "exit"}``: answers the process's peak resident memory and exits.

The ``samedge`` side imports only the samedge runtime (no torch), so its peak RSS is what an
application using samedge would need. The ``official`` side builds the official PyTorch
predictor with the same weights and times it without changing its code: the official
preprocessing transform and mask upscaling are timed through thin wrappers around the
predictor's own ``transform`` / ``_transforms`` and ``postprocess_masks`` attributes.

Stages (seconds per sample):

* ``load_preprocess``: read the image file + resize/normalise (official: its transform).
* ``encoder``: the image encoder (official: ``set_image`` minus its transform).
* ``set_image``: preprocess + encoder as one call (official ``set_image``; samedge
  ``preprocess`` + ``encode_preprocessed``), without reading the file.
* ``decoder``: one prompt's decoder call including prompt normalisation (official:
  ``predict`` minus its mask upscaling).
* ``postprocess``: mask selection, upscaling to the original size and threshold
  (official: ``postprocess_masks``; its threshold stays in ``decoder``).
* ``click``: one public ``predict`` call (decoder + postprocess to full-resolution masks).
* ``end_to_end``: image file to the masks of all of its prompts (load, preprocess, encoder
  and one ``predict`` per prompt), per image.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any

import numpy as np

from .prompts import BenchPrompt

STAGES = (
    "load_preprocess",
    "encoder",
    "set_image",
    "decoder",
    "postprocess",
    "click",
    "end_to_end",
)

clock = time.perf_counter


def peak_rss_bytes() -> int:
    """Peak resident set size of this process (Linux: ``VmHWM``)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def current_rss_bytes() -> int | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _prompt_arrays(p: BenchPrompt) -> dict[str, Any]:
    return {
        "points": np.asarray(p.points, dtype=np.float64) if p.points else None,
        "labels": np.asarray(p.labels, dtype=np.float64) if p.points else None,
        "box": np.asarray(p.box, dtype=np.float64) if p.box is not None else None,
    }


class SamedgeSide:
    """Times samedge's torch-free runtime."""

    def __init__(
        self,
        model: str,
        threads: int,
        provider: str | None,
        provider_settings: dict[str, Any] | None = None,
    ) -> None:
        start = clock()
        from ..imageio import load_image
        from ..runtime.postprocess import select_masks, upscale_masks
        from ..runtime.predictor import Predictor
        from ..runtime.preprocess import preprocess
        from ..runtime.prompts import normalize_prompts
        from ..runtime.providers import ProviderSettings

        self.import_s = clock() - start
        self._load_image = load_image
        self._preprocess = preprocess
        self._normalize = normalize_prompts
        self._select = select_masks
        self._upscale = upscale_masks
        start = clock()
        self.predictor = Predictor.from_pretrained(
            model,
            providers=provider,
            threads=threads,
            provider_settings=ProviderSettings(**(provider_settings or {})),
        )
        self.load_s = clock() - start
        self.spec = self.predictor.spec

    def info(self) -> dict[str, Any]:
        return {"providers": self.predictor.providers, "package": "samedge"}

    def image(self, path: str, prompts: list[BenchPrompt], out: dict[str, list[float]]) -> None:
        predictor, spec = self.predictor, self.spec
        t0 = clock()
        rgb = self._load_image(path)
        t_read = clock()
        tensor, input_size = self._preprocess(rgb, spec)
        t1 = clock()
        emb = predictor.encode_preprocessed(tensor, input_size, rgb.shape[:2])
        t2 = clock()
        for p in prompts:
            c0 = clock()
            predictor.predict(emb, multimask_output=p.multimask, **_prompt_arrays(p))
            out["click"].append(clock() - c0)
        out["end_to_end"].append(clock() - t0)
        out["load_preprocess"].append(t1 - t0)
        out["encoder"].append(t2 - t1)
        out["set_image"].append(t2 - t_read)
        # The decoder / postprocess split, outside the end-to-end span.
        for p in prompts:
            d0 = clock()
            arrays = _prompt_arrays(p)
            prepared = self._normalize(
                spec,
                emb.original_size,
                emb.input_size,
                points=arrays["points"],
                labels=arrays["labels"],
                box=arrays["box"],
            )
            low_res, iou, _ = predictor.graphs.decode(emb, prepared)
            d1 = clock()
            logits, _ = self._select(low_res, iou, spec, p.multimask)
            self._upscale(logits, spec, emb.input_size, emb.original_size, spec.mask_threshold)
            d2 = clock()
            out["decoder"].append(d1 - d0)
            out["postprocess"].append(d2 - d1)


class _Timed:
    """Calls ``fn`` and adds its duration to ``self.total``."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn
        self.total = 0.0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        start = clock()
        try:
            return self.fn(*args, **kwargs)
        finally:
            self.total += clock() - start


class _TransformProxy:
    """Stands in for an official transform object; times the named methods (or the call)."""

    def __init__(self, inner: Any, timed: dict[str, _Timed]) -> None:
        object.__setattr__(self, "_inner", inner)
        object.__setattr__(self, "_timed", timed)

    def __getattr__(self, name: str) -> Any:
        timed = object.__getattribute__(self, "_timed")
        if name in timed:
            return timed[name]
        return getattr(object.__getattribute__(self, "_inner"), name)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._timed["__call__"](*args, **kwargs)


class OfficialSide:
    """Times the official PyTorch predictor of the model's family (``spec.reference_package``:
    segment-anything, sam2, mobile_sam) with the same weights."""

    def __init__(self, model: str, threads: int) -> None:
        start = clock()
        import torch

        from ..artifacts import resolve_model
        from ..errors import SamedgeError
        from ..export.build import (
            build_model,
            official_predictor,
            official_predictor_class,
            official_stages,
        )
        from ..export.torch_compat import ensure_torchvision
        from ..hub import checkpoint_path
        from ..imageio import load_image

        ensure_torchvision()
        artifact = resolve_model(model, verify=False)
        spec = artifact.spec
        official_predictor_class(spec)  # imports the official package: timed as the import
        self.import_s = clock() - start
        torch.set_num_threads(threads)
        self.torch = torch
        self._load_image = load_image
        weights = artifact.manifest.weights
        start = clock()
        if weights.get("source") == "random-init":
            net = build_model(spec, seed=int(weights.get("seed", 0)))
            self.weights = f"random-init seed {weights.get('seed', 0)} (rebuilt)"
        else:
            ckpt = checkpoint_path(spec)
            if not ckpt.is_file():
                raise SamedgeError(
                    f"--compare-torch needs the official checkpoint of {spec.name} at {ckpt}: "
                    f"run 'samedge models pull {spec.name}'"
                )
            net = build_model(spec, checkpoint=ckpt)
            self.weights = f"checkpoint {ckpt.name}"
        self.predictor = official_predictor(spec, net)
        self.load_s = clock() - start
        self.spec = spec
        # Time the official transform and mask upscaling without changing their code: the
        # predictor's attribute holding each stage is replaced by a proxy timing that method.
        stages = official_stages(spec)
        timers = {
            stage: _Timed(getattr(getattr(self.predictor, attr), method))
            for stage, (attr, method) in stages.items()
        }
        for owner in {attr for attr, _ in stages.values()}:
            methods = {m: timers[stage] for stage, (a, m) in stages.items() if a == owner}
            setattr(self.predictor, owner, _TransformProxy(getattr(self.predictor, owner), methods))
        self.t_pre, self.t_post = timers["pre"], timers["post"]

    def info(self) -> dict[str, Any]:
        return {
            "providers": {"encoder": "torch-cpu", "decoder": "torch-cpu"},
            "package": self.spec.reference_package,
            "torch_threads": self.torch.get_num_threads(),
            "weights": self.weights,
        }

    def _predict(self, p: BenchPrompt) -> None:
        arrays = _prompt_arrays(p)
        self.predictor.predict(
            point_coords=arrays["points"],
            point_labels=arrays["labels"],
            box=arrays["box"],
            multimask_output=p.multimask,
        )

    def decoder_flops(self, plan: list[tuple[str, list[list[BenchPrompt]]]]) -> dict[str, Any]:
        """FLOPs of the official ``predict`` of every prompt of the plan on the image set last,
        counted by PyTorch's ``FlopCounterMode`` (matrix products and convolutions, as the
        ONNX count): the arithmetic the official prompt encoder + mask decoder do per click."""
        from torch.utils.flop_counter import FlopCounterMode

        # The counter's module tracker hooks outputs that require grad: none should here.
        for param in self.predictor.model.parameters():
            param.requires_grad_(False)
        flops, by_kind = [], {}
        for _, runs in plan:
            for run in runs:
                for p in run:
                    with self.torch.no_grad(), FlopCounterMode(display=False) as counter:
                        self._predict(p)
                    flops.append(counter.get_total_flops())
                    by_kind[p.kind] = round(flops[-1] / 1e9, 4)
        return {
            "decoder_gflop_per_prompt": round(sum(flops) / len(flops) / 1e9, 4),
            "decoder_gflop_by_kind": dict(sorted(by_kind.items())),
        }

    def image(self, path: str, prompts: list[BenchPrompt], out: dict[str, list[float]]) -> None:
        t0 = clock()
        rgb = self._load_image(path)
        t_read = clock()
        self.t_pre.total = 0.0
        self.predictor.set_image(rgb)
        t2 = clock()
        pre = self.t_pre.total
        for p in prompts:
            self.t_post.total = 0.0
            c0 = clock()
            self._predict(p)
            click = clock() - c0
            out["click"].append(click)
            out["decoder"].append(click - self.t_post.total)
            out["postprocess"].append(self.t_post.total)
        out["end_to_end"].append(clock() - t0)
        out["load_preprocess"].append(t_read - t0 + pre)
        out["encoder"].append(t2 - t_read - pre)
        out["set_image"].append(t2 - t_read)


def _parse_plan(plan: list[dict[str, Any]]) -> list[tuple[str, list[list[BenchPrompt]]]]:
    """``[(image path, [prompts of run 0, prompts of run 1, ...]), ...]``."""
    return [
        (item["path"], [[BenchPrompt.from_dict(p) for p in run] for run in item["runs"]])
        for item in plan
    ]


def serve(args: argparse.Namespace, send: Callable[[dict[str, Any]], None]) -> None:
    side: SamedgeSide | OfficialSide | None = None
    plan: list[tuple[str, list[list[BenchPrompt]]]] = []
    for line in sys.stdin:
        msg = json.loads(line)
        cmd = msg["cmd"]
        if cmd == "load":
            plan = _parse_plan(msg["plan"])
            side = (
                SamedgeSide(
                    args.model,
                    args.threads,
                    args.provider,
                    json.loads(args.provider_settings) if args.provider_settings else None,
                )
                if args.side == "samedge"
                else OfficialSide(args.model, args.threads)
            )
            rss_loaded = current_rss_bytes()
            start = clock()
            path, runs = plan[0]
            side.image(path, runs[0][:1], {s: [] for s in STAGES})
            send(
                {
                    "import_s": side.import_s,
                    "load_s": side.load_s,
                    "warmup_s": clock() - start,
                    "rss_after_load_bytes": rss_loaded,
                    **side.info(),
                }
            )
        elif cmd == "repeat":
            assert side is not None, "load first"
            samples: dict[str, list[float]] = {s: [] for s in STAGES}
            num_runs = len(plan[0][1])
            for run in range(num_runs):
                for path, runs in plan:
                    side.image(path, runs[run], samples)
                    send({"progress": 1})
            send({"samples": samples})
        elif cmd == "exit":
            reply: dict[str, Any] = {"peak_rss_bytes": peak_rss_bytes()}
            if msg.get("count_flops") and isinstance(side, OfficialSide):
                reply["flops"] = side.decoder_flops(plan)  # after the peak was read
            send(reply)
            return


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m samedge.bench.worker")
    parser.add_argument("--side", choices=("samedge", "official"), required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--provider")
    parser.add_argument("--provider-settings", help="ProviderSettings fields as JSON")
    args = parser.parse_args(argv)
    # Answers go to the original stdout; anything the libraries print goes to stderr.
    channel = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)

    def send(obj: dict[str, Any]) -> None:
        channel.write(json.dumps(obj) + "\n")
        channel.flush()

    try:
        serve(args, send)
    except Exception as exc:
        from ..errors import SamedgeError

        traceback.print_exc()
        message = str(exc) if isinstance(exc, SamedgeError) else f"{type(exc).__name__}: {exc}"
        send({"error": message.splitlines()[0] if message else type(exc).__name__})
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
