"""Presenting a benchmark result: a console/Markdown table, and a plot."""

from __future__ import annotations

from pathlib import Path

from ..errors import require_extra
from .results import BenchResult, Compute, GroupCheck, PrecisionRow, TargetCheck

#: Stage names as printed, in order.
STAGE_TITLES = {
    "load_preprocess": "image load + preprocess",
    "encoder": "encoder",
    "set_image": "set_image (preprocess + encoder)",
    "decoder": "decoder, per prompt",
    "postprocess": "postprocess (upscale + threshold), per prompt",
    "click": "one click: predict (decoder + postprocess)",
    "end_to_end": "end to end, per image (file to all masks)",
}


def _fmt(value: float | None, digits: int = 1) -> str:
    if value is None:
        return "–"
    return f"{value:,.{digits}f}"


#: Stages shown in the precision comparison (preprocessing does not depend on precision).
PRECISION_STAGES = ("encoder", "decoder", "click", "end_to_end")


def _fidelity_cells(row: PrecisionRow) -> tuple[str, str]:
    fid = row.fidelity
    if not fid:
        return "reference", "–"
    numbers = (
        f"{_fmt(fid.get('mean_iou'), 3)} / {_fmt(fid.get('p1_iou'), 3)} / "
        f"{_fmt(fid.get('min_iou'), 3)} ({fid.get('prompts')} prompts)"
    )
    verdict = "passed" if fid.get("passed") else ("forced" if fid.get("forced") else "failed")
    return numbers, f"{verdict} (≥ {fid.get('threshold')})"


def precision_markdown(result: BenchResult) -> list[str]:
    """The precision comparison as Markdown lines (empty with a single model)."""
    rows = result.precision
    if len(rows) < 2:
        return []
    head = "| precision | folder |"
    sep = "|---|---|"
    for stage in PRECISION_STAGES:
        head += f" {stage} ms | × |"
        sep += "---:|---:|"
    head += " peak RSS MiB | fidelity mean / p1 / min IoU | gate |"
    sep += "---:|---|---|"
    lines = [
        "",
        "Precisions: medians in ms and speed-up (×) over the first row, timed in the same "
        "run with alternating repeats; fidelity: mask IoU against the fp32 parent, as "
        "`samedge quantize` measured it and recorded it in each folder's manifest.",
        "",
        head,
        sep,
    ]
    for row in rows:
        line = f"| {row.label} | {Path(row.model_folder).name} |"
        for stage in PRECISION_STAGES:
            line += f" {_fmt(row.stages_ms[stage].median)} | {_fmt(row.speedup_median[stage], 2)} |"
        numbers, verdict = _fidelity_cells(row)
        line += f" {_fmt(row.peak_rss_mib, 0)} | {numbers} | {verdict} |"
        lines.append(line)
    return lines


def markdown(result: BenchResult) -> str:
    """The result as Markdown: setup, per-stage table, memory and load, the figures (with
    their limits and verdicts when a targets file was checked), precisions."""
    cfg, system, compute = result.config, result.system, result.compute
    ours, official, ratios = result.ours, result.official, result.ratios
    lines = [
        f"## samedge bench: {cfg.model} ("
        + (f"{cfg.image_size} px input, " if cfg.image_size else "")
        + f"{'/'.join(sorted(set(cfg.precision.values())))}, {cfg.threads} threads)",
        "",
        f"- machine: {system['cpu']} ({', '.join(system['cpu_flags']) or 'no SIMD flags read'}), "
        f"{system['usable_cores']} usable cores, {system['memory_gib']} GiB; "
        f"load average {system.get('load_average_start')} → {system.get('load_average_end')}",
        f"- samedge {result.samedge_version}, onnxruntime "
        f"{system['versions'].get('onnxruntime')}, numpy {system['versions'].get('numpy')}"
        + (f", torch {system['versions'].get('torch')}" if official else "")
        + f"; provider used: {ours.providers['encoder']}",
        f"- weights: {cfg.weights}; {len(cfg.images)} images × {cfg.runs} runs × "
        f"{cfg.prompts_per_image} prompts ({', '.join(cfg.prompt_kinds)}), "
        f"{cfg.repeats} repeats, seed {cfg.seed}; {cfg.order}",
    ]
    if compute.gemm_peak_gflops is not None:
        lines.append(
            f"- {peak_line(compute)}; encoder {_or_dash(compute.encoder_gflop)} GFLOP, decoder "
            f"{_or_dash(compute.decoder_gflop_per_prompt)} GFLOP per prompt"
            + _official_decoder_note(compute)
        )
    if result.command:
        lines.append(f"- command: `{result.command}`")
    lines.append("")
    head = "| stage | samedge median | mean | min | p90 |"
    sep = "|---|---:|---:|---:|---:|"
    if official:
        head += " official median | mean | ratio median | ratio mean |"
        sep += "---:|---:|---:|---:|"
    head += " floor | samedge / floor |"
    sep += "---:|---:|"
    lines += ["Times in ms (count = samples per side).", "", head, sep]
    for stage, title in STAGE_TITLES.items():
        s = ours.stages_ms[stage]
        row = (
            f"| {title} (n={s.count}) | {_fmt(s.median)} | {_fmt(s.mean)} | "
            f"{_fmt(s.min)} | {_fmt(s.p90)} |"
        )
        if official and ratios:
            o = official.stages_ms[stage]
            row += (
                f" {_fmt(o.median)} | {_fmt(o.mean)} | "
                f"{_fmt(ratios.stages_median[stage], 2)} | {_fmt(ratios.stages_mean[stage], 2)} |"
            )
        floor = compute.floor(stage)
        row += f" {_fmt(floor)} | {_fmt(s.median / floor if floor else None, 2)} |"
        lines.append(row)
    lines += [
        "",
        "| process | samedge | " + ("official | ratio |" if official else ""),
        "|---|---:|" + ("---:|---:|" if official else ""),
    ]

    def mib(value: int | None) -> float | None:
        return None if value is None else value / 2**20

    rows = [
        (
            "RSS after model load (MiB)",
            mib(ours.rss_after_load_bytes),
            mib(official.rss_after_load_bytes) if official else None,
            None,
        ),
        (
            "peak RSS (MiB)",
            ours.peak_rss_mib,
            official.peak_rss_mib if official else None,
            ratios.peak_rss if ratios else None,
        ),
        (
            "model load (s)",
            ours.load_s,
            official.load_s if official else None,
            ratios.load if ratios else None,
        ),
        ("imports in the worker (s)", ours.import_s, official.import_s if official else None, None),
        (
            "first (warm-up) image + click (s)",
            ours.warmup_s,
            official.warmup_s if official else None,
            None,
        ),
    ]
    for name, a, b, r in rows:
        lines.append(
            f"| {name} | {_fmt(a, 2)} |" + (f" {_fmt(b, 2)} | {_fmt(r, 2)} |" if official else "")
        )
    imp = result.imports
    lines += [
        "",
        f"Cold `import samedge`: {imp.cold_import_s * 1000:.0f} ms; `import samedge` + "
        f"`Predictor.from_pretrained`: {imp.import_and_load_s:.2f} s (fresh processes, best "
        f"of {len(imp.cold_import_samples_s)}).",
    ]
    lines += figures_markdown(result)
    lines += precision_markdown(result)
    return "\n".join(lines) + "\n"


_VERDICT = {True: "yes", False: "no", None: "–"}


def figures_markdown(result: BenchResult) -> list[str]:
    """The figures as a Markdown table; with the limit and verdict of each figure a targets
    file set, and a row per ``any_of`` group."""
    judged = bool(result.targets)
    lines = [
        "",
        "| figure | value |" + (" limit | met |" if judged else ""),
        "|---|---:|" + ("---:|---|" if judged else ""),
    ]
    for name, value in result.figures.items():
        check = result.targets.get(name)
        line = f"| {name} | {_fmt(value, 3)} |"
        if judged:
            line += (
                f" {check.limit} | {_VERDICT[check.met]} |"
                if isinstance(check, TargetCheck)
                else " – | not a target |"
            )
        lines.append(line)
    for name, check in result.targets.items():
        if isinstance(check, GroupCheck):
            lines.append(f"| {name}: {check.rule} | | | {_VERDICT[check.met]} |")
    return lines


def plot_png(result: BenchResult) -> bytes:
    """A bar chart of per-stage medians (log scale), both sides and floors, as PNG bytes."""
    require_extra("matplotlib", "bench", "--plot")
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    stages = [s for s in STAGE_TITLES if s != "set_image"]
    sides = result.sides
    names = list(sides)
    fig, ax = plt.subplots(figsize=(9, 4.5), dpi=110)
    width = 0.8 / (len(names) + 1)
    x = np.arange(len(stages))
    for i, side in enumerate(names):
        summaries = [sides[side].stages_ms[s] for s in stages]
        med = [s.median for s in summaries]
        lo = [s.median - s.min for s in summaries]
        hi = [s.p90 - s.median for s in summaries]
        ax.bar(x + i * width, med, width, yerr=[lo, hi], capsize=2, label=side)
    floors = [result.compute.floor(s) or 0 for s in stages]
    if any(floors):
        ax.bar(x + len(names) * width, floors, width, label="compute floor", color="0.7")
    ax.set_yscale("log")
    ax.set_xticks(x + width * len(names) / 2)
    ax.set_xticklabels([s.replace("_", "\n") for s in stages], fontsize=8)
    ax.set_ylabel("ms (median; bars: min to p90)")
    cfg = result.config
    ax.set_title(f"{cfg.model}, {cfg.threads} threads, {result.system['cpu']}", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def _or_dash(value: float | None) -> str:
    return "–" if value is None else str(value)


def _official_decoder_note(compute: Compute) -> str:
    """The official decoder's FLOPs and floor, when they were counted."""
    official = compute.official_decoder
    floor = compute.floor("official_decoder")
    if official is None or floor is None:
        return ""
    return (
        f" (the official decoder: {official.decoder_gflop_per_prompt} GFLOP, floor {floor:.1f} ms)"
    )


def peak_line(compute: Compute) -> str:
    """The GEMM peak the floors divide by, with the spread of its samples (the rate a
    machine gives moves between measurements; the best is used)."""
    samples = compute.gemm_peak_samples_gflops
    spread = (
        f"; best of {len(samples)} samples, {min(samples)}-{max(samples)}"
        if len(samples) > 1
        else ""
    )
    threads = f"{compute.gemm_threads} thread{'' if compute.gemm_threads == 1 else 's'}{spread}"
    return f"fp32 GEMM peak {compute.gemm_peak_gflops} GFLOP/s ({threads})"


def console_summary(result: BenchResult) -> str:
    """A short plain-text summary for the terminal (targets only when a file was checked)."""
    ours, official, ratios = result.ours, result.official, result.ratios
    lines = [
        f"{'stage':<18}{'samedge ms':>12}"
        + (f"{'official ms':>13}{'ratio':>8}" if official else "")
        + f"{'floor ms':>10}{'x floor':>9}"
    ]
    for stage in STAGE_TITLES:
        line = f"{stage:<18}{ours.stages_ms[stage].median:>12.1f}"
        if official and ratios:
            line += f"{official.stages_ms[stage].median:>13.1f}"
            line += f"{_fmt(ratios.stages_median[stage], 2):>8}"
        floor = result.compute.floor(stage)
        median = ours.stages_ms[stage].median
        line += f"{floor:>10.1f}{median / floor:>9.2f}" if floor else f"{'–':>10}{'–':>9}"
        lines.append(line)
    note = _official_decoder_note(result.compute)
    if note:
        lines.append(f"click floor{note}")
    if result.compute.gemm_peak_gflops is not None:
        lines.append(f"floors: {peak_line(result.compute)}")
    lines.append(f"samedge providers: {ours.providers}")
    rss = f"peak RSS: samedge {ours.peak_rss_mib:.0f} MiB"
    if official and ratios:
        rss += f", official {official.peak_rss_mib:.0f} MiB, ratio {_fmt(ratios.peak_rss, 2)}"
    lines.append(rss)
    lines.append(
        f"import samedge {result.imports.cold_import_s * 1000:.0f} ms; import + "
        f"from_pretrained {result.imports.import_and_load_s:.2f} s"
    )
    for name, check in result.targets.items():
        verdict = {True: "met", False: "MISSED", None: "not measured"}[check.met]
        what = (
            f"{_fmt(check.value, 3)} <= {check.limit}"
            if isinstance(check, TargetCheck)
            else check.rule
        )
        lines.append(f"target {name}: {what}: {verdict}")
    rows = result.precision
    if len(rows) > 1:
        lines.append(
            f"{'precision':<42}"
            + "".join(f"{stage + ' ms':>15}{'x':>6}" for stage in PRECISION_STAGES)
            + "  fidelity mean/p1/min IoU"
        )
        for row in rows:
            line = f"{row.label[:41]:<42}"
            for stage in PRECISION_STAGES:
                line += f"{row.stages_ms[stage].median:>15.1f}"
                line += f"{_fmt(row.speedup_median[stage], 2):>6}"
            line += "  " + " ".join(_fidelity_cells(row))
            lines.append(line)
    return "\n".join(lines)
