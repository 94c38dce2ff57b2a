"""Throughput of ``samedge batch``: images per second for 1 and 2 in-process workers and a
local Ray with 2 actors, with ``--boxes`` and ``--everything --fast``.

The shared photos (../shared/data/images) are looped to ``--images`` files (symbolic links
in a scratch folder) and given a COCO file of 8 boxes per image. Each configuration runs
``samedge batch`` as its own command, into a fresh output folder, and the table reports:

* wall: images / wall time of the whole command (model loading, Ray start-up and the merge
  included);
* run: the summary's images per second (processing only, model loading included);
* efficiency: run throughput / (workers x the throughput of 1 worker with 1 thread,
  ``local1t1``, when it is among the configurations; else of 1 worker with every core);
* peak RSS of one worker process (or Ray actor), sampled every 0.2 s from /proc.

    python benchmarks/batch_throughput.py --model DIR [--images 100] [--modes boxes,everything]
        [--configs local1,local1t1,local2,ray2] [--everything-args "--fast"] [--json results.json]
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PHOTOS = ROOT.parent / "shared" / "data" / "images"
CONFIGS = {
    "local1": (["--workers", "1"], "in-process, 1 worker x 2 threads"),
    "local1t1": (["--workers", "1", "--threads", "1"], "in-process, 1 worker x 1 thread"),
    "local2": (["--workers", "2"], "in-process, 2 workers x 1 thread"),
    "ray2": (["--ray", "--workers", "2", "--cpus-per-worker", "1"], "local Ray, 2 actors x 1 CPU"),
}


def looped_images(folder: Path, count: int) -> list[Path]:
    photos = sorted(PHOTOS.glob("*.jpg"))
    if not photos:
        sys.exit(f"no photos in {PHOTOS}: ../shared is not beside this checkout")
    folder.mkdir(parents=True, exist_ok=True)
    links = []
    for i in range(count):
        link = folder / f"{i:04d}-{photos[i % len(photos)].name}"
        link.symlink_to(photos[i % len(photos)])
        links.append(link)
    return links


def boxes_coco(images: list[Path], path: Path) -> None:
    """8 boxes per image: a 4 x 2 grid of overlapping boxes over the photo."""
    from PIL import Image

    doc = {"images": [], "annotations": [], "categories": [{"id": 1, "name": "box"}]}
    for i, image in enumerate(images, start=1):
        width, height = Image.open(image).size
        doc["images"].append({"id": i, "file_name": image.name, "width": width, "height": height})
        for j in range(8):
            col, row = j % 4, j // 4
            w, h = width / 3, height / 1.5
            box = [col * width / 6, row * height / 3, w, h]
            doc["annotations"].append(
                {"id": 8 * i + j, "image_id": i, "category_id": 1, "bbox": box}
            )
    path.write_text(json.dumps(doc))


class RssSampler(threading.Thread):
    """Peak VmRSS (MiB) of worker processes (spawned workers, Ray map actors, or the
    command itself with one worker), polled from /proc."""

    MARKERS = (b"spawn_main", b"MapWorker(MapBatches(RayWorker))")

    def __init__(self, command_pid: int, single: bool) -> None:
        super().__init__(daemon=True)
        self.pid, self.single, self.peak, self.stop = command_pid, single, 0.0, False

    def run(self) -> None:
        while not self.stop:
            for status in Path("/proc").glob("[0-9]*/status"):
                try:
                    pid = int(status.parent.name)
                    cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
                    if not (pid == self.pid and self.single) and not any(
                        m in cmd for m in self.MARKERS
                    ):
                        continue
                    rss = re.search(r"VmRSS:\s+(\d+)", status.read_text())
                except (OSError, ValueError):
                    continue
                if rss:
                    self.peak = max(self.peak, int(rss.group(1)) / 1024)
            time.sleep(0.2)


def run_one(command: list[str], single: bool) -> dict[str, float]:
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    sampler = RssSampler(process.pid, single)
    sampler.start()
    stdout, stderr = process.communicate()
    wall = time.perf_counter() - start
    sampler.stop = True
    if process.returncode != 0:
        sys.exit(f"failed: {shlex.join(command)}\n{stderr[-2000:]}")
    line = next(line for line in stdout.splitlines() if line.startswith("samedge batch:"))
    done = int(re.search(r"(\d+) done", line).group(1))
    seconds = float(re.search(r"images/s over ([\d.]+) s", line).group(1))
    rate = done / seconds
    stages = dict(
        (name, float(value))
        for name, value in re.findall(r"(read|encode|decode|write) ([\d.]+)", line)
    )
    return {
        "images": done,
        "wall_s": wall,
        "wall_ips": done / wall,
        "run_ips": rate,
        "rss_mib": sampler.peak,
        **{f"{k}_s": v for k, v in stages.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="exported model folder or name")
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--modes", default="boxes,everything")
    parser.add_argument("--configs", default="local1,local1t1,local2,ray2")
    parser.add_argument("--everything-args", default="--fast", help="extra flags of --everything")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix="batch-bench-") as tmp:
        work = Path(tmp)
        images = looped_images(work / "images", args.images)
        coco = work / "boxes.json"
        boxes_coco(images, coco)
        for mode in args.modes.split(","):
            kind = ["--boxes", str(coco)] if mode == "boxes" else ["--everything"]
            if mode == "everything":
                kind += shlex.split(args.everything_args)
            base = None  # the 1-worker, 1-thread rate (else 1 worker, all cores)
            for name in args.configs.split(","):
                flags, label = CONFIGS[name]
                command = [sys.executable, "-m", "samedge", "batch", str(work / "images")]
                command += ["--model", args.model, "--out", str(work / f"out-{mode}-{name}")]
                command += [*kind, *flags, "--no-progress"]
                print(f"$ {shlex.join(command)}", file=sys.stderr, flush=True)
                row = run_one(command, single=name.startswith("local1"))
                workers = 1 if name.startswith("local1") else 2
                if name == "local1t1" or (name == "local1" and base is None):
                    base = row["run_ips"]
                rows_now = [r for r in results if r["mode"] == mode]
                row["efficiency"] = row["run_ips"] / (workers * base) if base else None
                for r in rows_now:  # a later 1-thread run is the better base: recompute
                    r["efficiency"] = r["run_ips"] / (r["workers"] * base)
                row["workers"] = workers
                row.update(mode=mode, config=name, label=label)
                print(json.dumps(row), file=sys.stderr, flush=True)
                results.append(row)
    print("| work | executor | images | wall s | images/s (wall) | images/s (run) | "
          "scaling efficiency | encode s/img | decode s/img | peak RSS / worker |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        eff = f"{r['efficiency']:.0%}" if r["efficiency"] is not None else "-"
        print(
            f"| {r['mode']} | {r['label']} | {r['images']} | {r['wall_s']:.0f} | "
            f"{r['wall_ips']:.3f} | {r['run_ips']:.3f} | {eff} | {r.get('encode_s', 0):.2f} | "
            f"{r.get('decode_s', 0):.2f} | {r['rss_mib']:.0f} MiB |"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
