"""Driving a benchmark: the plan, both sides' worker processes, alternation and the result.

Both sides run in their own child process (:mod:`samedge.bench.worker`) that stays alive
for the whole benchmark, so the model is loaded once and each repeat is a fresh pass over
every image and prompt. Repeats alternate between the sides (samedge repeat 1, official
repeat 1, samedge repeat 2, ...) so that drift in the machine's load affects both.
Other precisions of the same model (``variants``, e.g. FP16 and INT8 folders made by
``samedge quantize``) get a samedge child each, in the same alternation, and a row of
:func:`precision_rows` with their speed-up over the first model and their fidelity.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any

import numpy as np

from .. import __version__
from ..errors import ImageError, SamedgeError
from ..imageio import IMAGE_SUFFIXES
from .flops import count_flops, gemm_peak
from .prompts import BenchPrompt, generate_prompts
from .results import (
    BenchResult,
    Compute,
    DecoderFlops,
    ImportTimes,
    PrecisionRow,
    Ratios,
    RunSetup,
    SideResult,
    measure_figures,
    ratio,
)
from .stats import summarize
from .sysinfo import load_average, system_info
from .worker import STAGES

#: Stages compared between the two sides.
COMPARED = STAGES


@dataclass
class BenchConfig:
    """What to benchmark and how."""

    model: str
    images: list[Path]
    threads: int
    provider: str | None = None
    #: :class:`samedge.runtime.providers.ProviderSettings` fields (``to_dict()``).
    provider_settings: dict[str, Any] = field(default_factory=dict)
    runs: int = 3
    repeats: int = 2
    prompts_per_image: int = 3
    seed: int = 0
    compare_torch: bool = False
    floors: bool = True
    import_tries: int = 3
    command: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    variants: list[str] = field(default_factory=list)


def find_images(sources: Sequence[str | os.PathLike[str]]) -> list[Path]:
    """Image files from folders (their images, sorted by name) and files, in order.

    Raises:
        ImageError: a path does not exist, or no image was found.
    """
    found: list[Path] = []
    for source in sources:
        path = Path(source)
        if path.is_dir():
            found.extend(sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES))
        elif path.is_file():
            found.append(path)
        else:
            raise ImageError(f"image or folder not found: {path}")
    if not found:
        raise ImageError(
            f"no images ({', '.join(IMAGE_SUFFIXES)}) in {', '.join(map(str, sources))}; "
            f"pass --images DIR or image files"
        )
    return found


def check_official_weights(artifact: Any) -> None:
    """Fail early when ``--compare-torch`` cannot rebuild the official model with the same
    weights as the exported folder.

    Raises:
        SamedgeError: the folder was exported from a checkpoint that is not in the cache.
    """
    from ..hub import checkpoint_path

    weights = artifact.manifest.weights
    if weights.get("source") == "random-init":
        return
    path = checkpoint_path(artifact.spec)
    if not path.is_file():
        raise SamedgeError(
            f"--compare-torch needs the official checkpoint of {artifact.spec.name} at {path}: "
            f"run 'samedge models pull {artifact.spec.name}'"
        )


def make_plan(config: BenchConfig) -> list[dict[str, Any]]:
    """Per image: its path, size and the prompts of every run (identical for both sides)."""
    from ..imageio import load_image

    plan = []
    for path in config.images:
        height, width = load_image(path).shape[:2]
        runs = [
            [
                p.to_dict()
                for p in generate_prompts(
                    config.seed, path.name, (height, width), run, config.prompts_per_image
                )
            ]
            for run in range(config.runs)
        ]
        plan.append(
            {"path": str(path), "name": path.name, "height": height, "width": width, "runs": runs}
        )
    return plan


def _child_env(threads: int) -> dict[str, str]:
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = str(threads)
    # the child imports this very samedge, wherever it is
    src = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
    return env


class Worker:
    """A :mod:`samedge.bench.worker` child process and its line protocol."""

    def __init__(
        self, side: str, config: BenchConfig, model_folder: Path, label: str | None = None
    ) -> None:
        self.side = label or side
        self._log: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 - closed in close()
        cmd = [
            sys.executable,
            "-m",
            "samedge.bench.worker",
            "--side",
            side,
            "--model",
            str(model_folder),
            "--threads",
            str(config.threads),
        ]
        if config.provider and side == "samedge":
            cmd += ["--provider", config.provider]
        if config.provider_settings and side == "samedge":
            cmd += ["--provider-settings", json.dumps(config.provider_settings)]
        self.proc = subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            env=_child_env(config.threads),
            text=True,
            bufsize=1,
        )

    def send(self, msg: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(json.dumps(msg) + "\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            self._fail("exited unexpectedly")

    def receive(self, on_progress: Callable[[], None] | None = None) -> dict[str, Any]:
        assert self.proc.stdout is not None
        while True:
            line = self.proc.stdout.readline()
            if not line:
                self._fail("exited unexpectedly")
            msg = json.loads(line)
            if "error" in msg:
                raise SamedgeError(f"the {self.side} benchmark process failed: {msg['error']}")
            if "progress" in msg:
                if on_progress:
                    on_progress()
                continue
            return msg

    def _fail(self, what: str) -> None:
        self.proc.wait(timeout=30)
        self._log.seek(0)
        lines = [ln for ln in self._log.read().decode(errors="replace").splitlines() if ln.strip()]
        last = lines[-1] if lines else f"exit code {self.proc.returncode}"
        raise SamedgeError(f"the {self.side} benchmark process {what}: {last}")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._log.close()


_IMPORT_SCRIPT = (
    "import time; t = time.perf_counter(); import samedge; print(time.perf_counter() - t)"
)
_LOAD_SCRIPT = """
import sys, time
t = time.perf_counter()
import samedge
from samedge.runtime.predictor import Predictor
Predictor.from_pretrained(sys.argv[1], threads=int(sys.argv[2]))
print(time.perf_counter() - t)
"""


def _best_of(script: list[str], tries: int, env: dict[str, str]) -> list[float]:
    values = []
    for _ in range(tries):
        out = subprocess.run(
            [sys.executable, "-c", *script], env=env, capture_output=True, text=True
        )
        if out.returncode != 0:
            tail = (out.stderr.strip().splitlines() or ["?"])[-1]
            raise SamedgeError(f"timing 'import samedge' failed: {tail}")
        values.append(float(out.stdout.strip().splitlines()[-1]))
    return values


def import_times(model_folder: Path, threads: int, tries: int) -> ImportTimes:
    """Cold ``import samedge`` and ``import samedge`` + ``Predictor.from_pretrained`` times,
    each in fresh processes (best of ``tries``)."""
    env = _child_env(threads)
    cold = _best_of([_IMPORT_SCRIPT], tries, env)
    load = _best_of([_LOAD_SCRIPT, str(model_folder), str(threads)], tries, env)
    return ImportTimes.best_of(cold, load)


def decoder_feeds(spec: Any, prompt: BenchPrompt, size: tuple[int, int]) -> dict[str, np.ndarray]:
    """Decoder inputs at batch 1 for ``prompt`` on an image of ``size`` (for FLOP counts)."""
    from ..runtime.preprocess import resized_size
    from ..runtime.prompts import normalize_prompts

    prepared = normalize_prompts(
        spec,
        size,
        resized_size(*size, spec),
        points=np.asarray(prompt.points) if prompt.points else None,
        labels=np.asarray(prompt.labels) if prompt.points else None,
        box=np.asarray(prompt.box) if prompt.box is not None else None,
    )
    arrays = [np.zeros(shape, np.float32) for shape in spec.context_shapes]
    arrays += [prepared.point_coords, prepared.point_labels]
    return dict(zip(spec.decoder_inputs, arrays, strict=True))


def count_graph_flops(artifact: Any, plan: list[dict[str, Any]]) -> Compute:
    """FLOPs of the encoder, and of the decoder for every prompt of the plan (batch 1).

    Returns a note instead when the ``onnx`` package (needed to walk the graphs) is missing.
    """
    import importlib.util

    if importlib.util.find_spec("onnx") is None:
        return Compute(note="FLOPs need the onnx package (pip install onnx): floors not computed")
    spec = artifact.spec
    side = spec.image_size
    enc = count_flops(
        artifact.encoder_path, {spec.encoder_inputs[0]: np.zeros((1, 3, side, side), np.float32)}
    )
    # The decoder's per-image context runs inside encode(): its FLOPs count there.
    shapes = [(1, *spec.embedding_shape), *((1, *s) for s in spec.high_res_shapes)]
    enc += count_flops(
        artifact.path("context"),
        {n: np.zeros(s, np.float32) for n, s in zip(spec.context_inputs, shapes, strict=True)},
    )
    per_kind: dict[str, float] = {}
    all_flops = []
    for item in plan:
        for run in item["runs"]:
            for p in run:
                prompt = BenchPrompt.from_dict(p)
                flops = count_flops(
                    artifact.decoder_path,
                    decoder_feeds(spec, prompt, (item["height"], item["width"])),
                )
                per_kind[prompt.kind] = flops / 1e9
                all_flops.append(flops)
    return Compute(
        encoder_gflop=round(enc / 1e9, 3),
        decoder_gflop_per_prompt=round(float(np.mean(all_flops)) / 1e9, 4),
        decoder_gflop_by_kind={k: round(v, 4) for k, v in sorted(per_kind.items())},
        counted="2 x multiply-adds of MatMul/Gemm/Conv/ConvTranspose/Einsum, batch 1",
    )


def add_floors(compute: Compute, peaks_flops: Sequence[float], threads: int) -> Compute:
    """``compute`` with the GEMM peak (best of the measurements) and the floors in ms."""
    peak = max(peaks_flops)
    floors: dict[str, float] = {}
    if compute.encoder_gflop is not None and compute.decoder_gflop_per_prompt is not None:
        dec_ms = round(1e12 * compute.decoder_gflop_per_prompt / peak, 2)
        floors = {
            "encoder": round(1e12 * compute.encoder_gflop / peak, 2),
            "decoder": dec_ms,
            "click": dec_ms,
        }
        if compute.official_decoder is not None:
            gflop = compute.official_decoder.decoder_gflop_per_prompt
            floors["official_decoder"] = round(1e12 * gflop / peak, 2)
    return replace(
        compute,
        gemm_peak_gflops=round(peak / 1e9, 1),
        gemm_peak_samples_gflops=[round(p / 1e9, 1) for p in peaks_flops],
        gemm_threads=threads,
        gemm="fp32 2048^3 NumPy matmul, best of 5, fresh process, before the timed passes "
        "and after each repeat of them; the best is used",
        floor_ms=floors,
    )


def side_result(
    info: dict[str, Any], samples: list[dict[str, list[float]]], peak: int
) -> SideResult:
    """One side's result from its worker's load reply, its repeats' samples (seconds by
    stage) and its peak RSS."""
    return SideResult(
        import_s=round(info["import_s"], 4),
        load_s=round(info["load_s"], 4),
        warmup_s=round(info["warmup_s"], 4),
        rss_after_load_bytes=info["rss_after_load_bytes"],
        providers=info["providers"],
        package=info["package"],
        peak_rss_bytes=peak,
        stages_ms={s: summarize([v for rep in samples for v in rep[s]]) for s in STAGES},
        per_repeat_median_ms={
            s: [round(1000 * float(np.median(rep[s])), 3) for rep in samples] for s in STAGES
        },
        details={k: v for k, v in info.items() if k not in SideResult.WORKER_FIELDS},
    )


def check_variants(artifact: Any, variants: Sequence[Any]) -> None:
    """Precisions are compared within one model.

    Raises:
        SamedgeError: a variant folder holds another model.
    """
    for variant in variants:
        if variant.spec.name != artifact.spec.name:
            raise SamedgeError(
                f"{variant.folder} is {variant.spec.name}, not {artifact.spec.name}: every "
                f"--model of one benchmark must be the same model (in other precisions)"
            )


def precision_label(precision: dict[str, str]) -> str:
    """``fp32``, ``int8-dynamic``... when every component has it, else e.g.
    ``encoder int8-static + decoder fp32``."""
    values = set(precision.values())
    if len(values) == 1:
        return values.pop()
    return " + ".join(f"{component} {value}" for component, value in precision.items())


def precision_row(artifact: Any, side: SideResult, baseline: SideResult) -> PrecisionRow:
    """One model folder's row of the precision comparison: ``side`` measured the folder of
    ``artifact``, ``baseline`` the first model; the fidelity is the report ``samedge
    quantize`` wrote into the folder's manifest."""
    manifest = artifact.manifest
    report = manifest.extra.get("fidelity")
    fidelity = None
    if report:
        overall = report.get("stats", {}).get("all", {})
        fidelity = {
            "against": report.get("against"),
            "dataset": report.get("dataset"),
            "threshold": report.get("threshold"),
            "passed": report.get("passed"),
            "forced": report.get("forced"),
            **{k: overall.get(k) for k in ("prompts", "mean_iou", "p1_iou", "min_iou")},
        }
    quantization = manifest.extra.get("quantization")
    if quantization:
        keys = ("precision", "components", "method", "num_calibration_images")
        quantization = {k: quantization.get(k) for k in keys}
    return PrecisionRow(
        label=precision_label(manifest.precision),
        model_folder=str(artifact.folder),
        precision=manifest.precision,
        quantization=quantization,
        fidelity=fidelity,
        providers=side.providers,
        load_s=side.load_s,
        peak_rss_mib=side.peak_rss_mib,
        stages_ms=side.stages_ms,
        speedup_median={
            s: ratio(baseline.stages_ms[s].median, side.stages_ms[s].median) for s in STAGES
        },
    )


def run_benchmark(
    config: BenchConfig,
    progress: Callable[[int], Callable[[], None]] | None = None,
) -> BenchResult:
    """Run the benchmark and return its result (see ``docs/benchmarks.md`` for the fields;
    no targets are checked here: see :mod:`samedge.bench.targets`).

    Args:
        config: what to run.
        progress: called once with the total number of image passes; returns the callback
            called after each pass.
    """
    from ..artifacts import resolve_model

    artifact = resolve_model(config.model, verify=False)
    variants = [resolve_model(v, verify=False) for v in config.variants]
    check_variants(artifact, variants)
    plan = make_plan(config)
    load_start = load_average()
    sides = ["samedge", "official"] if config.compare_torch else ["samedge"]
    # (key, worker side, folder): the compared sides, then the other precisions
    children = [(side, side, artifact.folder) for side in sides]
    children += [(f"variant {i}", "samedge", v.folder) for i, v in enumerate(variants, 1)]
    created = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    setup = RunSetup(
        model=artifact.spec.name,
        model_folder=str(artifact.folder),
        precision=artifact.manifest.precision,
        weights=artifact.manifest.weights,
        provider_requested=config.provider or "cpu",
        provider_settings=config.provider_settings,
        threads=config.threads,
        runs=config.runs,
        repeats=config.repeats,
        prompts_per_image=config.prompts_per_image,
        seed=config.seed,
        compare_torch=config.compare_torch,
        variants=[
            {"model_folder": str(v.folder), "precision": v.manifest.precision} for v in variants
        ],
        images=[{k: item[k] for k in ("name", "path", "height", "width")} for item in plan],
        prompt_kinds=sorted({p["kind"] for item in plan for run in item["runs"] for p in run}),
        order="alternating repeats: "
        + ", ".join(
            f"{key} {r + 1}" for r in range(min(config.repeats, 2)) for key, _, _ in children
        )
        + (", ..." if config.repeats > 2 else ""),
        image_size=artifact.spec.image_size,
    )
    system = system_info()
    peaks: list[float] = []
    if config.floors:
        compute = count_graph_flops(artifact, plan)
        peaks.append(gemm_peak(config.threads))
    else:
        compute = Compute(note="compute floors skipped (--no-floors)")
    imports = import_times(artifact.folder, config.threads, config.import_tries)
    total = config.repeats * config.runs * len(plan) * len(children)
    tick = progress(total) if progress else None
    workers: dict[str, Worker] = {}
    samples: dict[str, list[dict[str, list[float]]]] = {key: [] for key, _, _ in children}
    infos: dict[str, dict[str, Any]] = {}
    rss: dict[str, int] = {}
    try:
        for key, side, folder in children:
            label = side if key == side else f"samedge ({Path(folder).name})"
            workers[key] = Worker(side, config, folder, label)
            workers[key].send({"cmd": "load", "plan": plan})
            infos[key] = workers[key].receive()
        for _ in range(config.repeats):
            for key, _, _ in children:
                workers[key].send({"cmd": "repeat"})
                samples[key].append(workers[key].receive(tick)["samples"])
            if config.floors:  # the peak moves with the machine: sample it across the run
                peaks.append(gemm_peak(config.threads))
        for key, _, _ in children:
            workers[key].send({"cmd": "exit", "count_flops": config.floors})
            reply = workers[key].receive()
            rss[key] = int(reply["peak_rss_bytes"])
            if "flops" in reply and compute.encoder_gflop is not None:
                compute = replace(
                    compute,
                    official_decoder=DecoderFlops(
                        **reply["flops"],
                        counted="torch FlopCounterMode around the official predict, batch 1",
                    ),
                )
    finally:
        for worker in workers.values():
            worker.close()
    if config.floors:
        compute = add_floors(compute, peaks, config.threads)
    results = {s: side_result(infos[s], samples[s], rss[s]) for s in sides}
    ours, official = results["samedge"], results.get("official")
    system["load_average_start"] = load_start
    system["load_average_end"] = load_average()
    system["provider_used"] = ours.providers
    precision = [precision_row(artifact, ours, ours)] + [
        precision_row(v, side_result(infos[key], samples[key], rss[key]), ours)
        for v, (key, _, _) in zip(variants, children[len(sides) :], strict=True)
    ]
    return BenchResult(
        created=created,
        samedge_version=__version__,
        command=config.command,
        config=setup,
        system=system,
        compute=compute,
        imports=imports,
        sides=results,
        ratios=Ratios.between(ours, official, COMPARED) if official else None,
        precision=precision,
        figures=measure_figures(ours, official, compute, imports),
    )
