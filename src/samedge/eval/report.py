"""Writing an :class:`EvalResult`: JSONL records, summary JSON, Markdown table, click plot.

The plot is drawn with OpenCV (already a core dependency) rather than matplotlib, so the
whole report is available without an extra and looks the same everywhere.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import cv2
import numpy as np

from ..errors import SamedgeError
from ..outputs import OutputSet
from .runner import EvalResult

RECORDS = "records.jsonl"
FIDELITY = "fidelity.jsonl"
SUMMARY_JSON = "summary.json"
SUMMARY_MD = "summary.md"
PLOT = "miou_per_click.png"


def _finite(data: object) -> object:
    """``data`` with NaN replaced by ``None`` (JSON has no NaN)."""
    if isinstance(data, float) and math.isnan(data):
        return None
    if isinstance(data, dict):
        return {k: _finite(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [_finite(v) for v in data]
    return data


def _fmt(value: float | None, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}f}"


def markdown(result: EvalResult) -> str:
    """A Markdown report: accuracy per protocol, by size, NoC, fidelity, skipped samples."""
    lines = [
        f"# samedge eval: {result.model} on {Path(result.dataset).name}",
        "",
        f"{result.images} images, {len({r.sample_id for r in result.records})} samples, "
        f"{len(result.skipped)} skipped, {result.seconds:.1f} s.",
        "",
        "| protocol | samples | mIoU | small | medium | large | NoC@85 | NoC@90 | "
        "fail@85 | fail@90 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, s in result.summaries.items():
        sizes = [
            f"{_fmt(float(s.miou_by_size[b]['miou']))} ({s.miou_by_size[b]['count']})"
            if b in s.miou_by_size
            else "-"
            for b in ("small", "medium", "large")
        ]
        noc = s.noc or {}
        fails = s.failures or {}
        lines.append(
            f"| {name} | {s.samples} | {_fmt(s.miou)} | {' | '.join(sizes)} | "
            f"{_fmt(noc.get('85'), 2)} | {_fmt(noc.get('90'), 2)} | "
            f"{fails.get('85', '-')} | {fails.get('90', '-')} |"
        )
    for name, s in result.summaries.items():
        if s.miou_per_click:
            picks = [k for k in (1, 2, 3, 5, 10, 20) if k <= len(s.miou_per_click)]
            lines += [
                "",
                f"mIoU after k clicks ({name}): "
                + ", ".join(f"{k}: {s.miou_per_click[k - 1]:.3f}" for k in picks),
            ]
    for name, s in result.summaries.items():
        if s.saliency:
            lines += [
                "",
                f"Saliency alone ({name}, {result.config.saliency}): blob mIoU "
                f"{s.saliency['blob_miou']:.3f}, all clicks inside the object "
                f"{s.saliency['all_clicks_inside']:.1%}, images with no salient blob "
                f"{s.saliency['no_blob']}.",
            ]
    if result.fidelity is not None:
        lines += [
            "",
            f"## Fidelity: {result.model} vs {result.reference}",
            "",
            "| protocol | prompts | mean IoU | 1st pct | min | >0.9 | >0.95 | >0.99 |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for name, f in result.fidelity.items():
            if not f.get("prompts"):
                continue
            lines.append(
                f"| {name} | {f['prompts']} | {_fmt(f['mean_iou'], 4)} | "
                f"{_fmt(f['p1_iou'], 4)} | {_fmt(f['min_iou'], 4)} | "
                f"{f['share_above_0.9']:.1%} | {f['share_above_0.95']:.1%} | "
                f"{f['share_above_0.99']:.1%} |"
            )
        if result.embedding_error is not None:
            lines += ["", embedding_error_line(result.embedding_error) + "."]
    if result.skipped:
        lines += ["", "## Skipped samples", ""]
        lines += [f"- `{s.sample_id}`: {s.reason}" for s in result.skipped[:50]]
        if len(result.skipped) > 50:
            lines.append(f"- ... {len(result.skipped) - 50} more in {SUMMARY_JSON}")
    return "\n".join(lines) + "\n"


def plot_miou_per_click(
    curves: dict[str, list[float]], title: str, size: tuple[int, int] = (720, 480)
) -> np.ndarray:
    """uint8 ``(H, W, 3)`` RGB line plot of mIoU (y, 0..1) against clicks (x, 1..n)."""
    width, height = size
    img = np.full((height, width, 3), 255, np.uint8)
    left, right, top, bottom = 70, 30, 50, 60
    x0, x1, y0, y1 = left, width - right, height - bottom, top
    n = max((len(c) for c in curves.values()), default=1)
    font = cv2.FONT_HERSHEY_SIMPLEX

    def px(k: float, v: float) -> tuple[int, int]:
        x = x0 + (k - 1) / max(n - 1, 1) * (x1 - x0)
        return round(x), round(y0 - v * (y0 - y1))

    for tick in np.linspace(0, 1, 11):
        y = px(1, tick)[1]
        cv2.line(img, (x0, y), (x1, y), (225, 225, 225), 1)
        cv2.putText(img, f"{tick:.1f}", (x0 - 45, y + 5), font, 0.45, (60, 60, 60), 1, cv2.LINE_AA)
    step = 1 if n <= 20 else math.ceil(n / 20)
    for k in range(1, n + 1, step):
        x = px(k, 0)[0]
        cv2.line(img, (x, y0), (x, y0 + 5), (60, 60, 60), 1)
        cv2.putText(img, str(k), (x - 6, y0 + 22), font, 0.45, (60, 60, 60), 1, cv2.LINE_AA)
    cv2.rectangle(img, (x0, y1), (x1, y0), (60, 60, 60), 1)
    cv2.putText(img, "clicks", ((x0 + x1) // 2 - 25, height - 15), font, 0.55, (0, 0, 0), 1,
                cv2.LINE_AA)  # fmt: skip
    cv2.putText(img, "mIoU", (20, top - 10), font, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    (text_w, _), _ = cv2.getTextSize(title, font, 0.6, 1)
    cv2.putText(img, title, (max((width - text_w) // 2, 5), 25), font, 0.6, (0, 0, 0), 1,
                cv2.LINE_AA)  # fmt: skip
    colors = [(31, 119, 180), (214, 39, 40), (44, 160, 44), (148, 103, 189)]
    for i, (name, curve) in enumerate(curves.items()):
        color = colors[i % len(colors)]
        pts = np.array([px(k + 1, v) for k, v in enumerate(curve)], np.int32)
        cv2.polylines(img, [pts], False, color, 2, cv2.LINE_AA)
        for p in pts:
            cv2.circle(img, tuple(int(c) for c in p), 3, color, -1, cv2.LINE_AA)
        if len(curves) > 1:
            cv2.putText(img, name, (x1 - 200, y0 - 15 - 20 * i), font, 0.5, color, 1, cv2.LINE_AA)
    return img


def write_report(result: EvalResult, out_dir: str | os.PathLike[str]) -> list[Path]:
    """Write every output file into ``out_dir`` together (nothing is left half-written).

    Files: ``records.jsonl`` (one line per sample and protocol), ``summary.json``,
    ``summary.md``, ``miou_per_click.png`` (with the ``clicks`` protocol) and
    ``fidelity.jsonl`` (with a reference model). They replace an earlier run's as a set:
    an optional file this run does not write is removed once the others are in place (no
    other file in ``out_dir`` is touched).
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise SamedgeError(f"--out {out} is a file; give a folder")
    with OutputSet() as files:
        files.add(
            out / RECORDS,
            "".join(json.dumps(r.to_json()) + "\n" for r in result.records).encode(),
        )
        files.add_json(out / SUMMARY_JSON, _finite(result.summary_json()))
        files.add(out / SUMMARY_MD, markdown(result).encode())
        curves = {
            name: s.miou_per_click for name, s in result.summaries.items() if s.miou_per_click
        }
        if curves:
            title = f"{result.model.split(' (')[0]} on {Path(result.dataset).name}"
            files.add_png(out / PLOT, plot_miou_per_click(curves, title))
        if result.fidelity is not None:
            files.add(
                out / FIDELITY,
                "".join(
                    json.dumps(
                        {
                            "sample_id": f.sample_id,
                            "protocol": f.protocol,
                            "step": f.step,
                            "iou": f.iou,
                            "iou_gt": f.iou_gt,
                            "iou_gt_reference": f.iou_gt_reference,
                        }
                    )
                    + "\n"
                    for f in result.fidelity_records
                ).encode(),
            )
    for name, wrote in ((PLOT, bool(curves)), (FIDELITY, result.fidelity is not None)):
        stale = out / name
        if not wrote and (stale.is_file() or stale.is_symlink()):
            try:
                stale.unlink()
            except OSError as exc:
                raise SamedgeError(
                    f"cannot remove {stale} of an earlier run: {exc.strerror or exc}"
                ) from None
    return [out / name for name in (RECORDS, SUMMARY_JSON, SUMMARY_MD)]


def embedding_error_line(stats: dict[str, float | int]) -> str:
    """One line on how far apart two models' image embeddings were (relative L2)."""
    return (
        f"image embedding error (relative L2) over {stats['images']} images: mean "
        f"{stats['mean']:.4f}, max {stats['max']:.4f}"
    )
