"""Load test of ``samedge web`` over loopback: many browser sessions uploading and clicking.

Starts ``samedge web`` as a child process on 127.0.0.1 (a free port, its own
``SAMEDGE_HOME`` and Gradio temp folder), then drives it with plain HTTP, as the browser
does (``/gradio_api/upload``, ``/gradio_api/queue/join`` and the server-sent events of
``/gradio_api/queue/data``):

1. **churn**: one session uploads ``--churn`` different images one after another, so the
   embedding cache (``--cache-size``) fills and then evicts; the server's peak RSS
   (``VmHWM`` in ``/proc/PID/status``) is read after the first and after the last;
2. **load**: ``--clients`` sessions, one thread each, upload one of the last
   ``--cache-size`` images (the working set the cache holds) and click random points
   until ``--duration`` seconds have passed or ``--max-clicks`` clicks were made in all,
   clearing the prompts every ``--clear-every`` clicks.

Every request must succeed. The report gives click latency as a browser sees it (queue
wait + decode + drawing; the app runs one event at a time), the decoder time the server
states, the encodes, and the server's peak RSS against the bound the cache size allows.
It stops by itself: every loop is bounded by the deadline or a count, every request by a
timeout, and the server is stopped at the end.

Run from the repository root, e.g.:

    python benchmarks/web_load.py --model DIR_OR_NAME --cache-size 2 --clients 16 \
        --duration 30 --threads 2 --json web-load.json

This is a measurement script; ``tests/web/test_web_load.py`` runs it with assertions.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_PHOTOS = ROOT.parent / "shared" / "data" / "images"
MIB = 1 << 20
#: Longest side of the uploaded variants: under the UI's display size (1600), so a click's
#: pixel is the image's pixel, and small enough that uploads cost little next to decoding.
VARIANT_SIDE = 640
#: What the server process may hold beyond the model, the cached embeddings and the
#: sessions' images: freed encoder and decoder buffers that glibc keeps in the arenas of
#: Gradio's worker threads, Gradio's and uvicorn's per-request buffers. Measured 150-170
#: MiB with 16 clients on SAM 2.1 Hiera-T (docs/benchmarks.md); it stops growing after the
#: first rounds of clicks.
DEFAULT_SLACK_MB = 220.0
REQUEST_TIMEOUT_S = 180.0
START_TIMEOUT_S = 180.0
_DECODE_MS = re.compile(r"decode \*\*([0-9.]+) (ms|s)\*\*")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def memory(pid: int) -> tuple[int, int]:
    """``(VmRSS, VmHWM)`` of process ``pid`` in bytes (Linux)."""
    values: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) * 1024
    return values["VmRSS"], values["VmHWM"]


def embedding_bytes(model_folder: Path) -> int:
    """Bytes of one cached :class:`~samedge.runtime.types.ImageEmbedding` of the model in
    ``model_folder``: float32 image embedding, high-resolution features and decoder
    context, shapes from the model's spec."""
    from samedge.manifest import Manifest
    from samedge.registry import get_spec

    spec = get_spec(Manifest.read(model_folder).model)
    shapes = [spec.embedding_shape, *spec.high_res_shapes, *spec.context_shapes]
    return 4 * sum(math.prod(shape) for shape in shapes)


def make_variants(photos: Sequence[Path], count: int, out_dir: Path) -> list[Path]:
    """``count`` different JPEG images (distinct content, hence distinct cache keys) cut
    from ``photos``, longest side :data:`VARIANT_SIDE`."""
    from PIL import Image, ImageOps

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        with Image.open(photos[i % len(photos)]) as im:
            image = ImageOps.exif_transpose(im).convert("RGB")
        image.thumbnail((VARIANT_SIDE, VARIANT_SIDE))
        turn = i // len(photos)
        if turn % 2:
            image = ImageOps.mirror(image)
        if turn >= 2:  # more variants than 2 per photo: crop a little more each time
            w, h = image.size
            image = image.crop((turn, turn, w - turn, h - turn))
        path = out_dir / f"variant-{i:02d}.jpg"
        image.save(path, quality=90)
        paths.append(path)
    return paths


class Server:
    """``samedge web`` in a child process on 127.0.0.1; stop it with :meth:`stop`."""

    def __init__(self, model: str, cache_size: int, threads: int | None, work_dir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = work_dir / "server.log"
        home = work_dir / "home"
        home.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            "SAMEDGE_HOME": str(home),  # no other cached models are offered
            "GRADIO_TEMP_DIR": str(work_dir / "gradio"),
            "GRADIO_ANALYTICS_ENABLED": "False",
            "PYTHONUNBUFFERED": "1",
        }
        argv = [sys.executable, "-m", "samedge", "web", "--model", model]
        argv += ["--host", "127.0.0.1", "--port", str(self.port)]
        argv += ["--cache-size", str(cache_size)]
        if threads:
            argv += ["--threads", str(threads)]
        self._log = open(self.log_path, "wb")  # noqa: SIM115 (closed in stop)
        self.process = subprocess.Popen(
            argv, stdout=self._log, stderr=subprocess.STDOUT, env=env, cwd=work_dir
        )

    def wait_ready(self, timeout: float = START_TIMEOUT_S) -> dict[str, Any]:
        """The app's Gradio config once it answers (raises if it exits or times out)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"samedge web exited ({self.process.returncode}):\n{self.log()}")
            with contextlib.suppress(httpx.HTTPError):
                response = httpx.get(f"{self.url}/config", timeout=5)
                if response.status_code == 200:
                    return dict(response.json())
            time.sleep(0.5)
        raise RuntimeError(f"samedge web did not answer within {timeout:.0f} s:\n{self.log()}")

    def memory(self) -> tuple[int, int]:
        return memory(self.process.pid)

    def log(self, lines: int = 30) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=20)
        self._log.close()


@dataclass(frozen=True)
class Endpoints:
    """Where the browser sends an upload, a click on the Point tab and its Clear button,
    and the dropdown values it sends with them; read from the app's config."""

    prefix: str
    upload: tuple[int, int]  # (fn_index, trigger component id)
    click: tuple[int, int]
    clear: tuple[int, int]
    settings: tuple[str, str, str]  # model, precision, provider

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Endpoints:
        components = {c["id"]: c for c in config["components"]}
        by_elem = {c.get("props", {}).get("elem_id"): c for c in config["components"]}

        def find(api_name: str, trigger_elem: str) -> tuple[int, int]:
            for index, dep in enumerate(config["dependencies"]):
                for target, _event in dep.get("targets", []):
                    elem = components.get(target, {}).get("props", {}).get("elem_id")
                    if dep.get("api_name") == api_name and elem == trigger_elem:
                        return dep.get("id", index), target
            raise RuntimeError(f"the app has no {api_name} on #{trigger_elem}")

        values = tuple(by_elem[e]["props"]["value"] for e in ("model", "precision", "provider"))
        return cls(
            prefix=config.get("api_prefix", "/gradio_api"),
            upload=find("on_source", "source-image"),
            click=find("on_click", "canvas-point"),
            clear=find("on_clear", "clear-point"),
            settings=values,  # type: ignore[arg-type]
        )


class RequestFailed(RuntimeError):
    """A request that did not complete successfully (HTTP error, timeout, app error)."""


class Session:
    """One browser tab: its own Gradio session (and so its own image and prompts)."""

    def __init__(self, url: str, endpoints: Endpoints) -> None:
        self.api = url + endpoints.prefix
        self.endpoints = endpoints
        self.hash = uuid.uuid4().hex[:12]
        self.http = httpx.Client(timeout=REQUEST_TIMEOUT_S)

    def close(self) -> None:
        self.http.close()

    def _call(self, target: tuple[int, int], data: list[Any], event: Any = None) -> list[Any]:
        fn_index, trigger = target
        body = {
            "data": data,
            "event_data": event,
            "fn_index": fn_index,
            "trigger_id": trigger,
            "session_hash": self.hash,
        }
        try:
            joined = self.http.post(f"{self.api}/queue/join", json=body)
            joined.raise_for_status()
            event_id = joined.json()["event_id"]
            params = {"session_hash": self.hash}
            with self.http.stream("GET", f"{self.api}/queue/data", params=params) as stream:
                stream.raise_for_status()
                for line in stream.iter_lines():
                    if not line.startswith("data:"):
                        continue
                    message = json.loads(line[5:])
                    if message.get("event_id") != event_id:
                        continue
                    if message.get("msg") == "process_completed":
                        if not message.get("success"):
                            raise RequestFailed(f"app error: {message.get('output')}")
                        return list(message["output"]["data"])
        except httpx.HTTPError as exc:
            raise RequestFailed(f"{type(exc).__name__}: {exc}") from None
        raise RequestFailed("the event stream ended before the result")

    def upload(self, path: Path) -> str:
        """Upload ``path`` as the browser's image widget does; the status line."""
        with open(path, "rb") as fh:
            response = self.http.post(
                f"{self.api}/upload", files={"files": (path.name, fh, "image/jpeg")}
            )
        response.raise_for_status()
        stored = response.json()[0]
        payload = {"path": stored, "orig_name": path.name, "meta": {"_type": "gradio.FileData"}}
        status = self._call(self.endpoints.upload, [payload, *self.endpoints.settings])[1]
        if "encode" not in str(status):
            raise RequestFailed(f"upload of {path.name} did not encode: {status}")
        return str(status)

    def click(self, x: int, y: int) -> float | None:
        """A positive point at display pixel ``(x, y)``; the decode time the app reports."""
        data = [None, None, "positive", *self.endpoints.settings]
        event = {"index": [x, y], "value": None, "selected": True}
        message = str(self._call(self.endpoints.click, data, event)[2])
        found = _DECODE_MS.search(message)
        if found is None:
            raise RequestFailed(f"click answered without a decode time: {message}")
        return float(found.group(1)) * (1.0 if found.group(2) == "ms" else 1000.0)

    def clear(self) -> None:
        self._call(self.endpoints.clear, [None, None, *self.endpoints.settings])


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100) of ``values``; NaN when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


@dataclass
class LoadReport:
    """Figures of one run (memory in MiB, times in ms)."""

    model: str
    cache_size: int
    clients: int
    churn_images: int
    duration_s: float
    clicks: int = 0
    uploads: int = 0
    clears: int = 0
    failures: list[str] = field(default_factory=list)
    click_ms_p50: float = math.nan
    click_ms_p95: float = math.nan
    click_ms_max: float = math.nan
    decode_ms_p50: float = math.nan
    upload_ms_p50: float = math.nan
    encodes: int = 0
    embedding_mib: float = 0.0
    hwm_after_first_mib: float = 0.0
    hwm_after_churn_mib: float = 0.0
    peak_rss_mib: float = 0.0
    rss_end_mib: float = 0.0
    bound_mib: float = 0.0

    def summary(self) -> str:
        lines = [
            f"samedge web load test: {self.model}, --cache-size {self.cache_size}, "
            f"{self.clients} clients for {self.duration_s:.0f} s",
            f"  requests: {self.clicks} clicks, {self.uploads} uploads, {self.clears} clears, "
            f"{len(self.failures)} failed",
            f"  click latency (browser view): p50 {self.click_ms_p50:.0f} ms, "
            f"p95 {self.click_ms_p95:.0f} ms, max {self.click_ms_max:.0f} ms; "
            f"server decode p50 {self.decode_ms_p50:.0f} ms; upload p50 "
            f"{self.upload_ms_p50:.0f} ms",
            f"  encodes: {self.encodes} ({self.churn_images} churn images); embedding "
            f"{self.embedding_mib:.1f} MiB",
            f"  server peak RSS: {self.hwm_after_first_mib:.0f} MiB after the first image, "
            f"{self.hwm_after_churn_mib:.0f} after the churn, {self.peak_rss_mib:.0f} at the "
            f"end (bound {self.bound_mib:.0f}); RSS at the end {self.rss_end_mib:.0f} MiB",
        ]
        lines += [f"  failure: {f}" for f in self.failures[:10]]
        return "\n".join(lines)


def memory_bound(
    hwm_after_first: int, cache_size: int, embedding: int, session_images: int, slack: int
) -> int:
    """Peak RSS the server may reach: its peak with the model loaded and one image encoded
    (the encoder's working memory and one embedding included), plus ``cache_size`` more
    embeddings (a new embedding exists before the LRU evicts the oldest, so a full cache
    briefly holds ``cache_size + 1``), the images the sessions hold, and ``slack``. An
    unbounded cache passes this only for fewer than ``cache_size + slack / embedding``
    images."""
    return hwm_after_first + cache_size * embedding + session_images + slack


def run(
    model: str,
    photos: Sequence[Path],
    work_dir: Path,
    cache_size: int = 2,
    clients: int = 16,
    duration: float = 30.0,
    max_clicks: int = 400,
    churn: int = 7,
    clear_every: int = 5,
    threads: int | None = None,
    slack_mb: float = DEFAULT_SLACK_MB,
    seed: int = 0,
) -> LoadReport:
    """Start the server, run the churn and the load phases, stop the server."""
    from samedge.artifacts import resolve_model

    folder = resolve_model(model, verify=False).folder
    churn = max(churn, cache_size)
    images = make_variants(photos, churn, work_dir / "images")
    working_set = images[-cache_size:]
    report = LoadReport(model, cache_size, clients, churn, duration)
    report.embedding_mib = embedding_bytes(folder) / MIB
    server = Server(str(folder), cache_size, threads, work_dir)
    try:
        endpoints = Endpoints.from_config(server.wait_ready())
        lock = threading.Lock()
        upload_ms: list[float] = []

        def timed_upload(session: Session, path: Path) -> None:
            start = time.perf_counter()
            status = session.upload(path)
            with lock:
                upload_ms.append(1000 * (time.perf_counter() - start))
                report.uploads += 1
                report.encodes += "cached" not in status

        churner = Session(server.url, endpoints)
        try:
            timed_upload(churner, images[0])
            first_hwm = server.memory()[1]
            for path in images[1:]:
                timed_upload(churner, path)
            churn_hwm = server.memory()[1]
        finally:
            churner.close()

        click_ms: list[float] = []
        decode_ms: list[float] = []
        deadline = time.monotonic() + duration
        pixels = 0

        def client(index: int) -> None:
            nonlocal pixels
            rng = random.Random(seed * 1000 + index)
            session = Session(server.url, endpoints)
            path = working_set[index % len(working_set)]
            try:
                from PIL import Image

                with Image.open(path) as im:
                    width, height = im.size
                with lock:
                    pixels += width * height
                timed_upload(session, path)
                made = 0
                while time.monotonic() < deadline:
                    with lock:
                        if report.clicks >= max_clicks:
                            return
                        report.clicks += 1
                    start = time.perf_counter()
                    decoded = session.click(rng.randrange(width), rng.randrange(height))
                    elapsed = 1000 * (time.perf_counter() - start)
                    with lock:
                        click_ms.append(elapsed)
                        if decoded is not None:
                            decode_ms.append(decoded)
                    made += 1
                    if made % clear_every == 0:
                        session.clear()
                        with lock:
                            report.clears += 1
            except (RequestFailed, OSError) as exc:
                with lock:
                    report.failures.append(f"client {index}: {exc}")
            finally:
                session.close()

        workers = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
        for worker in workers:
            worker.start()
        for worker in workers:
            # Bounded: each request has its own timeout, and no click starts after the deadline.
            worker.join(timeout=duration + 2 * REQUEST_TIMEOUT_S)
            if worker.is_alive():
                report.failures.append(f"{worker.name} still running after the deadline")
        rss, peak = server.memory()
        if server.process.poll() is not None:
            report.failures.append(f"server exited ({server.process.returncode})")
    finally:
        server.stop()
    report.click_ms_p50 = percentile(click_ms, 50)
    report.click_ms_p95 = percentile(click_ms, 95)
    report.click_ms_max = max(click_ms, default=math.nan)
    report.decode_ms_p50 = percentile(decode_ms, 50)
    report.upload_ms_p50 = percentile(upload_ms, 50)
    report.hwm_after_first_mib = first_hwm / MIB
    report.hwm_after_churn_mib = churn_hwm / MIB
    report.peak_rss_mib = peak / MIB
    report.rss_end_mib = rss / MIB
    # Each session holds its image twice (pixels and the display copy, same size here).
    bound = memory_bound(
        first_hwm, cache_size, embedding_bytes(folder), 2 * 3 * pixels, int(slack_mb * MIB)
    )
    report.bound_mib = bound / MIB
    return report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="registered name (exported) or folder")
    parser.add_argument("--photos", type=Path, default=DEFAULT_PHOTOS, help="folder of photos")
    parser.add_argument("--cache-size", type=int, default=2)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of clicking")
    parser.add_argument("--max-clicks", type=int, default=400, help="clicks in all, at most")
    parser.add_argument("--churn", type=int, default=7, help="different images uploaded first")
    parser.add_argument("--threads", type=int, help="the server's intra-op threads")
    parser.add_argument("--slack-mb", type=float, default=DEFAULT_SLACK_MB)
    parser.add_argument("--json", type=Path, help="also write the report as JSON")
    args = parser.parse_args(argv)
    photos = sorted(p for p in args.photos.glob("*.jpg"))
    if not photos:
        parser.error(f"no .jpg photos in {args.photos}")
    work_dir = Path(tempfile.mkdtemp(prefix="samedge-web-load-"))
    try:
        report = run(
            args.model,
            photos,
            work_dir,
            cache_size=args.cache_size,
            clients=args.clients,
            duration=args.duration,
            max_clicks=args.max_clicks,
            churn=args.churn,
            threads=args.threads,
            slack_mb=args.slack_mb,
        )
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    print(report.summary())
    if args.json:
        args.json.write_text(json.dumps(asdict(report), indent=2) + "\n")
    return 1 if report.failures or report.peak_rss_mib > report.bound_mib else 0


if __name__ == "__main__":
    sys.exit(main())
