"""Where an encoder graph's time goes on ONNX Runtime's CPU provider or OpenVINO (not a test).

    python benchmarks/encoder_profile.py DIR/encoder.onnx --threads 2 --runs 3
    python benchmarks/encoder_profile.py OLD/encoder.onnx NEW/encoder.onnx --alternate 3
    python benchmarks/encoder_profile.py DIR/encoder.onnx --runtime openvino [--nodes 20]

One graph: ONNX Runtime's per-node profile (samedge's session settings plus profiling) of
``--runs`` runs on a random input after one warm-up run, summed per operator type, and the
convolutions split into dense, pointwise (1 x 1) and depthwise, each with its FLOPs (from the
graph's inferred shapes) and the rate it ran at. Two or more graphs with ``--alternate N``:
an A/B of the whole graph in fresh processes, alternating, N rounds; prints the best wall
and process CPU time (both threads) of each. On a machine shared with other work the CPU
time is the steadier figure: contention stretches the wall time, not the work done.

``--runtime openvino``: the graph compiled by OpenVINO for the CPU in fp32 (as samedge's
``--provider openvino`` compiles it, ``INFERENCE_PRECISION_HINT=f32``), its per-node
counters (``PERF_COUNT``) of the fastest run summed per executed layer type and kernel,
``--nodes N`` slowest nodes listed; ``--alternate`` A/Bs on OpenVINO the same way.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np


def _session(path: str, threads: int, profile: str | None = None):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.enable_mem_pattern = False  # as samedge's encoder sessions
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if profile is not None:
        options.enable_profiling = True
        options.profile_file_prefix = profile
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def _feeds(session) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        i.name: rng.random([d if isinstance(d, int) else 1 for d in i.shape], np.float32)
        for i in session.get_inputs()
    }


def _conv_classes(path: str, feeds: dict[str, np.ndarray]) -> dict[str, tuple[str, float]]:
    """Conv output name -> (dense | pointwise | depthwise, FLOPs), with the output shapes of
    one unoptimised run that returns every convolution's output."""
    import onnx
    import onnxruntime as ort

    model = onnx.load(path)
    weights = {t.name: list(t.dims) for t in model.graph.initializer}
    convs = [n for n in model.graph.node if n.op_type == "Conv" and n.input[1] in weights]
    known = {o.name for o in model.graph.output}
    for node in convs:
        if node.output[0] not in known:
            model.graph.output.append(onnx.ValueInfoProto(name=node.output[0]))
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(model.SerializeToString(), options, ["CPUExecutionProvider"])
    names = [n.output[0] for n in convs]
    shapes = dict(zip(names, (o.shape for o in session.run(names, feeds)), strict=True))
    out = {}
    for node in convs:
        w = weights[node.input[1]]  # (C_out, C_in / group, kh, kw)
        group = next((a.i for a in node.attribute if a.name == "group"), 1)
        flops = 2.0 * float(np.prod(shapes[node.output[0]])) * w[1] * w[2] * w[3]
        pointwise = "pointwise" if w[2:] == [1, 1] else "dense"
        out[node.output[0]] = ("depthwise" if group > 1 and w[1] == 1 else pointwise, flops)
    return out


def profile(path: str, threads: int, runs: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        session = _session(path, threads, os.path.join(tmp, "p"))
        feeds = _feeds(session)
        session.run(None, feeds)
        walls = []
        for _ in range(runs):
            start = time.perf_counter()
            session.run(None, feeds)
            walls.append(time.perf_counter() - start)
        events = json.loads(Path(session.end_profiling()).read_text())
    per_op: dict[str, float] = collections.defaultdict(float)
    per_node: dict[str, float] = collections.defaultdict(float)
    count: collections.Counter[str] = collections.Counter()
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            per_op[e["args"]["op_name"]] += e["dur"] / 1e3
            per_node[e["name"][: -len("_kernel_time")]] += e["dur"] / 1e3
            count[e["args"]["op_name"]] += 1
    runs_seen = runs + 1  # the warm-up run is profiled too
    total = sum(per_op.values())
    print(f"{Path(path)}: {threads} threads, wall {min(walls) * 1e3:.0f} ms (best of {runs})")
    print("| operator | ms per run | share | nodes |\n|---|---:|---:|---:|")
    for op, ms in sorted(per_op.items(), key=lambda kv: -kv[1]):
        if ms / total >= 0.002:
            share = 100 * ms / total
            print(f"| {op} | {ms / runs_seen:.1f} | {share:.1f} % | {count[op] // runs_seen} |")
    kinds: dict[str, list[float]] = collections.defaultdict(lambda: [0.0, 0.0, 0])
    for output, (kind, flops) in _conv_classes(path, feeds).items():
        ms = per_node.get(output + "_nchwc", 0.0) or per_node.get(output, 0.0)
        if not ms:  # the node was renamed by a fusion: find it by its output's name
            ms = sum(v for k, v in per_node.items() if k.startswith(output))
        kinds[kind][0] += ms / runs_seen
        kinds[kind][1] += flops
        kinds[kind][2] += 1
    if kinds:
        print(
            "\n| convolutions | ms per run | GFLOP | GFLOP/s | nodes |\n|---|---:|---:|---:|---:|"
        )
        for kind, (ms, flops, n) in sorted(kinds.items(), key=lambda kv: -kv[1][0]):
            rate = flops / ms / 1e6 if ms else float("nan")
            print(f"| {kind} | {ms:.1f} | {flops / 1e9:.2f} | {rate:.0f} | {n} |")


def _openvino(path: str, threads: int, counters: bool = False):
    """An OpenVINO infer request of ``path`` on the CPU in fp32, and its random inputs."""
    import openvino as ov

    config = {"INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": "f32"}
    if counters:
        config["PERF_COUNT"] = True
    compiled = ov.Core().compile_model(path, "CPU", config)
    rng = np.random.default_rng(0)
    feeds = {
        port.any_name: rng.random(
            [d.get_length() if d.is_static else 1 for d in port.get_partial_shape()], np.float32
        )
        for port in compiled.inputs
    }
    return compiled.create_infer_request(), feeds


def profile_openvino(path: str, threads: int, runs: int, nodes: int) -> None:
    request, feeds = _openvino(path, threads, counters=True)
    request.infer(feeds)
    best, rows = float("inf"), []
    for _ in range(runs):
        start = time.perf_counter()
        request.infer(feeds)
        wall = time.perf_counter() - start
        if wall < best:  # the counters of the fastest run
            best = wall
            rows = [
                (i.node_name, i.node_type, i.exec_type, i.real_time.total_seconds() * 1e3)
                for i in request.profiling_info
            ]
    per_kind: dict[tuple[str, str], float] = collections.defaultdict(float)
    count: collections.Counter[tuple[str, str]] = collections.Counter()
    for _, node_type, exec_type, ms in rows:
        per_kind[(node_type, exec_type)] += ms
        count[(node_type, exec_type)] += 1
    total = sum(per_kind.values())
    wall = f"wall {best * 1e3:.0f} ms (best of {runs})"
    print(f"{Path(path)}: OpenVINO fp32, {threads} threads, {wall}")
    print("| layer (kernel) | ms | share | nodes |\n|---|---:|---:|---:|")
    for (node_type, exec_type), ms in sorted(per_kind.items(), key=lambda kv: -kv[1]):
        if ms / total >= 0.002:
            share = 100 * ms / total
            n = count[(node_type, exec_type)]
            print(f"| {node_type} ({exec_type}) | {ms:.1f} | {share:.1f} % | {n} |")
    if nodes:
        print("\n| node | layer (kernel) | ms |\n|---|---|---:|")
        for name, node_type, exec_type, ms in sorted(rows, key=lambda r: -r[3])[:nodes]:
            print(f"| {name} | {node_type} ({exec_type}) | {ms:.2f} |")


def _one(path: str, threads: int, runs: int, runtime: str = "onnxruntime") -> dict[str, float]:
    if runtime == "openvino":
        request, feeds = _openvino(path, threads)
        call = request.infer
    else:
        session = _session(path, threads)
        feeds = _feeds(session)
        call = partial(session.run, None)
    call(feeds)
    walls, cpus = [], []
    for _ in range(runs):
        cpu, wall = time.process_time(), time.perf_counter()
        call(feeds)
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return {"wall_ms": 1e3 * min(walls), "cpu_ms": 1e3 * min(cpus)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("graphs", nargs="+")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--alternate", type=int, default=0, help="A/B rounds (fresh processes)")
    parser.add_argument("--runtime", choices=("onnxruntime", "openvino"), default="onnxruntime")
    parser.add_argument("--nodes", type=int, default=0, help="OpenVINO: list the N slowest")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_one(args.graphs[0], args.threads, args.runs, args.runtime)))
        return
    if not args.alternate:
        for path in args.graphs:
            if args.runtime == "openvino":
                profile_openvino(path, args.threads, args.runs, args.nodes)
            else:
                profile(path, args.threads, args.runs)
        return
    best: dict[str, list[dict[str, float]]] = collections.defaultdict(list)
    for _ in range(args.alternate):
        for path in args.graphs:
            cmd = [sys.executable, __file__, path, "--child", "--threads", str(args.threads)]
            cmd += ["--runtime", args.runtime]
            out = subprocess.run([*cmd, "--runs", str(args.runs)], capture_output=True, text=True)
            result = json.loads(out.stdout.strip().splitlines()[-1])
            best[path].append(result)
            print(path, {k: round(v) for k, v in result.items()}, flush=True)
    for path, results in best.items():
        wall = min(r["wall_ms"] for r in results)
        cpu = min(r["cpu_ms"] for r in results)
        print(f"{path}: best wall {wall:.0f} ms, best CPU {cpu:.0f} ms")


if __name__ == "__main__":
    main()
