"""Presenting a benchmark result: a console/Markdown table, and a plot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import require_extra

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


def _floor_for(stage: str, compute: dict[str, Any]) -> float | None:
    return compute.get("floor_ms", {}).get(stage)


#: Stages shown in the precision comparison (preprocessing does not depend on precision).
PRECISION_STAGES = ("encoder", "decoder", "click", "end_to_end")


def _fidelity_cells(row: dict[str, Any]) -> tuple[str, str]:
    fid = row.get("fidelity")
    if not fid:
        return "reference", "–"
    numbers = (
        f"{_fmt(fid.get('mean_iou'), 3)} / {_fmt(fid.get('p1_iou'), 3)} / "
        f"{_fmt(fid.get('min_iou'), 3)} ({fid.get('prompts')} prompts)"
    )
    verdict = "passed" if fid.get("passed") else ("forced" if fid.get("forced") else "failed")
    return numbers, f"{verdict} (≥ {fid.get('threshold')})"


def precision_markdown(result: dict[str, Any]) -> list[str]:
    """The precision comparison as Markdown lines (empty with a single model)."""
    rows = result.get("precision", [])
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
        line = f"| {row['label']} | {Path(row['model_folder']).name} |"
        for stage in PRECISION_STAGES:
            line += (
                f" {_fmt(row['stages_ms'][stage]['median'])} |"
                f" {_fmt(row['speedup_median'][stage], 2)} |"
            )
        numbers, verdict = _fidelity_cells(row)
        line += f" {_fmt(row['peak_rss_mib'], 0)} | {numbers} | {verdict} |"
        lines.append(line)
    return lines


def markdown(result: dict[str, Any]) -> str:
    """The result as Markdown: setup, per-stage table, memory and load, targets."""
    cfg, system, compute = result["config"], result["system"], result["compute"]
    sides = result["sides"]
    compare = "official" in sides
    ours = sides["samedge"]
    lines = [
        f"## samedge bench: {cfg['model']} ({'/'.join(sorted(set(cfg['precision'].values())))},"
        f" {cfg['threads']} threads)",
        "",
        f"- machine: {system['cpu']} ({', '.join(system['cpu_flags']) or 'no SIMD flags read'}), "
        f"{system['usable_cores']} usable cores, {system['memory_gib']} GiB; "
        f"load average {system.get('load_average_start')} → {system.get('load_average_end')}",
        f"- samedge {result['samedge_version']}, onnxruntime "
        f"{system['versions'].get('onnxruntime')}, numpy {system['versions'].get('numpy')}"
        + (f", torch {system['versions'].get('torch')}" if compare else "")
        + f"; provider used: {ours['providers']['encoder']}",
        f"- weights: {cfg['weights']}; {len(cfg['images'])} images × {cfg['runs']} runs × "
        f"{cfg['prompts_per_image']} prompts ({', '.join(cfg['prompt_kinds'])}), "
        f"{cfg['repeats']} repeats, seed {cfg['seed']}; {cfg['order']}",
    ]
    if "gemm_peak_gflops" in compute:
        lines.append(
            f"- fp32 GEMM peak {compute['gemm_peak_gflops']} GFLOP/s ({compute['gemm_threads']}"
            f" threads); encoder {compute.get('encoder_gflop', '–')} GFLOP, decoder "
            f"{compute.get('decoder_gflop_per_prompt', '–')} GFLOP per prompt"
            + _official_decoder_note(compute)
        )
    if result.get("command"):
        lines.append(f"- command: `{result['command']}`")
    lines.append("")
    head = "| stage | samedge median | mean | min | p90 |"
    sep = "|---|---:|---:|---:|---:|"
    if compare:
        head += " official median | mean | ratio median | ratio mean |"
        sep += "---:|---:|---:|---:|"
    head += " floor | samedge / floor |"
    sep += "---:|---:|"
    lines += ["Times in ms (count = samples per side).", "", head, sep]
    for stage, title in STAGE_TITLES.items():
        s = ours["stages_ms"][stage]
        row = (
            f"| {title} (n={s['count']}) | {_fmt(s['median'])} | {_fmt(s['mean'])} | "
            f"{_fmt(s['min'])} | {_fmt(s['p90'])} |"
        )
        if compare:
            o = sides["official"]["stages_ms"][stage]
            row += (
                f" {_fmt(o['median'])} | {_fmt(o['mean'])} | "
                f"{_fmt(result['ratios']['stages_median'][stage], 2)} | "
                f"{_fmt(result['ratios']['stages_mean'][stage], 2)} |"
            )
        floor = _floor_for(stage, compute)
        row += f" {_fmt(floor)} | {_fmt(s['median'] / floor if floor else None, 2)} |"
        lines.append(row)
    lines += [
        "",
        "| process | samedge | " + ("official | ratio |" if compare else ""),
        "|---|---:|" + ("---:|---:|" if compare else ""),
    ]

    def after_load(side: str) -> float | None:
        value = sides[side]["rss_after_load_bytes"] if side in sides else None
        return None if value is None else value / 2**20

    rows = [
        (
            "RSS after model load (MiB)",
            after_load("samedge"),
            after_load("official") if compare else None,
            None,
        ),
        (
            "peak RSS (MiB)",
            ours["peak_rss_mib"],
            sides["official"]["peak_rss_mib"] if compare else None,
            result["ratios"].get("peak_rss"),
        ),
        (
            "model load (s)",
            ours["load_s"],
            sides["official"]["load_s"] if compare else None,
            result["ratios"].get("load"),
        ),
        (
            "imports in the worker (s)",
            ours["import_s"],
            sides["official"]["import_s"] if compare else None,
            None,
        ),
        (
            "first (warm-up) image + click (s)",
            ours["warmup_s"],
            sides["official"]["warmup_s"] if compare else None,
            None,
        ),
    ]
    for name, a, b, r in rows:
        lines.append(
            f"| {name} | {_fmt(a, 2)} |" + (f" {_fmt(b, 2)} | {_fmt(r, 2)} |" if compare else "")
        )
    imp = result["import"]
    lines += [
        "",
        f"Cold `import samedge`: {imp['cold_import_s'] * 1000:.0f} ms; `import samedge` + "
        f"`Predictor.from_pretrained`: {imp['import_and_load_s']:.2f} s (fresh processes, best "
        f"of {len(imp['cold_import_samples_s'])}).",
        "",
        "| target | value | limit | met |",
        "|---|---:|---:|---|",
    ]
    for name, t in result["targets"].items():
        if "limit" in t:
            met = {True: "yes", False: "no", None: "–"}[t["met"]]
            lines.append(f"| {name} | {_fmt(t['value'], 3)} | {t['limit']} | {met} |")
    lines += precision_markdown(result)
    return "\n".join(lines) + "\n"


def plot_png(result: dict[str, Any]) -> bytes:
    """A bar chart of per-stage medians (log scale), both sides and floors, as PNG bytes."""
    require_extra("matplotlib", "bench", "--plot")
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    stages = [s for s in STAGE_TITLES if s != "set_image"]
    sides = result["sides"]
    names = list(sides)
    fig, ax = plt.subplots(figsize=(9, 4.5), dpi=110)
    width = 0.8 / (len(names) + 1)
    x = np.arange(len(stages))
    for i, side in enumerate(names):
        med = [sides[side]["stages_ms"][s]["median"] for s in stages]
        lo = [m - sides[side]["stages_ms"][s]["min"] for s, m in zip(stages, med, strict=True)]
        hi = [sides[side]["stages_ms"][s]["p90"] - m for s, m in zip(stages, med, strict=True)]
        ax.bar(x + i * width, med, width, yerr=[lo, hi], capsize=2, label=side)
    floors = [_floor_for(s, result["compute"]) or 0 for s in stages]
    if any(floors):
        ax.bar(x + len(names) * width, floors, width, label="compute floor", color="0.7")
    ax.set_yscale("log")
    ax.set_xticks(x + width * len(names) / 2)
    ax.set_xticklabels([s.replace("_", "\n") for s in stages], fontsize=8)
    ax.set_ylabel("ms (median; bars: min to p90)")
    cfg = result["config"]
    ax.set_title(f"{cfg['model']}, {cfg['threads']} threads, {result['system']['cpu']}", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def _official_decoder_note(compute: dict[str, Any]) -> str:
    """The official decoder's FLOPs and floor, when they were counted."""
    official = compute.get("official_decoder")
    floor = compute.get("floor_ms", {}).get("official_decoder")
    if not official or floor is None:
        return ""
    return (
        f" (the official decoder: {official['decoder_gflop_per_prompt']} GFLOP, floor "
        f"{floor:.1f} ms)"
    )


def console_summary(result: dict[str, Any]) -> str:
    """A short plain-text summary for the terminal."""
    sides = result["sides"]
    compare = "official" in sides
    floors = result["compute"].get("floor_ms", {})
    lines = [
        f"{'stage':<18}{'samedge ms':>12}"
        + (f"{'official ms':>13}{'ratio':>8}" if compare else "")
        + f"{'floor ms':>10}"
    ]
    for stage in STAGE_TITLES:
        ours = sides["samedge"]["stages_ms"][stage]["median"]
        line = f"{stage:<18}{ours:>12.1f}"
        if compare:
            theirs = sides["official"]["stages_ms"][stage]["median"]
            line += f"{theirs:>13.1f}{result['ratios']['stages_median'][stage]:>8.2f}"
        floor = floors.get(stage)
        line += f"{floor:>10.1f}" if floor else f"{'–':>10}"
        lines.append(line)
    note = _official_decoder_note(result["compute"])
    if note:
        lines.append(f"click floor{note}")
    lines.append(f"samedge providers: {sides['samedge']['providers']}")
    rss = f"peak RSS: samedge {sides['samedge']['peak_rss_mib']:.0f} MiB"
    if compare:
        rss += (
            f", official {sides['official']['peak_rss_mib']:.0f} MiB, ratio "
            f"{result['ratios']['peak_rss']:.2f}"
        )
    lines.append(rss)
    lines.append(
        f"import samedge {result['import']['cold_import_s'] * 1000:.0f} ms; import + "
        f"from_pretrained {result['import']['import_and_load_s']:.2f} s"
    )
    rows = result.get("precision", [])
    if len(rows) > 1:
        lines.append(
            f"{'precision':<42}"
            + "".join(f"{stage + ' ms':>15}{'x':>6}" for stage in PRECISION_STAGES)
            + "  fidelity mean/p1/min IoU"
        )
        for row in rows:
            line = f"{row['label'][:41]:<42}"
            for stage in PRECISION_STAGES:
                speedup = row["speedup_median"][stage]
                line += f"{row['stages_ms'][stage]['median']:>15.1f}"
                line += f"{speedup:>6.2f}" if speedup is not None else f"{'–':>6}"
            line += "  " + " ".join(_fidelity_cells(row))
            lines.append(line)
    return "\n".join(lines)


def suffix_ok(path: Path, suffixes: tuple[str, ...]) -> bool:
    return path.suffix.lower() in suffixes
