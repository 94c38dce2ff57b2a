"""Per-stage latency of the gaze pipeline on this machine (not a test).

    PYTHONPATH=src python benchmarks/gaze_stages.py --shared ../shared --sam DIR \
        --threads 2 --repeat 20

Times each stage's network call with its pre/post-processing, on real photos, as the median
of ``--repeat`` runs after 3 warm-up runs; ONNX stages on ONNX Runtime and on OpenVINO, the
Open Model Zoo IR stages on OpenVINO (IR cannot run on ONNX Runtime). SAM latencies do not
depend on the weights, so a seed-0 test export times the same as the released checkpoint.
Prints a Markdown table of median (minimum) milliseconds; on a machine shared with other
work the minimum is the better estimate of the uncontended cost.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from pathlib import Path

import numpy as np

from samedge.runtime.providers import OPENVINO_PRECISIONS


def median_ms(fn, repeat: int) -> tuple[float, float]:
    """Median and minimum wall time in ms of ``repeat`` calls after 3 warm-up calls."""
    for _ in range(3):
        fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(1000 * (time.perf_counter() - start))
    return statistics.median(times), min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=Path("../shared"))
    parser.add_argument("--sam", help="SAM model name or exported folder (optional)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--provider", help="providers of the SAM model, e.g. openvino")
    parser.add_argument("--openvino-precision", choices=OPENVINO_PRECISIONS)
    args = parser.parse_args()

    from samedge.gaze.detect import YoloxDetector
    from samedge.gaze.face import UltraFaceDetector, YuNetDetector
    from samedge.gaze.gaze import OpenVINOGazeEstimator
    from samedge.imageio import load_image

    models = args.shared / "models"
    person = load_image(args.shared / "data/interactive/GrabCut/data_GT/person1.jpg")
    frame = load_image(args.shared / "data/images/truck.jpg")
    t, n = args.threads, args.repeat
    rows: list[tuple[str, str, str, str]] = []

    def add(stage: str, what: str, ort: tuple | None, ov: tuple | None) -> None:
        fmt = lambda v: "-" if v is None else f"{v[0]:.1f} ({v[1]:.1f})"  # noqa: E731
        rows.append((stage, what, fmt(ort), fmt(ov)))
        print(f"  {stage}: {what}: ort {fmt(ort)} ms, openvino {fmt(ov)} ms", flush=True)

    def both(make, image):
        out = []
        for backend in ("ort", "openvino"):
            stage = make(backend)
            out.append(median_ms(lambda s=stage: s.detect(image), n))
        return out

    yunet = models / "face/yunet_n_640_640.onnx"
    add("face", f"YuNet 640x640 ({person.shape[1]}x{person.shape[0]} photo)",
        *both(lambda b: YuNetDetector(yunet, b, t), person))  # fmt: skip
    ultra = models / "face/ultraface-RFB-320.onnx"
    add("face", "UltraFace RFB-320", *both(lambda b: UltraFaceDetector(ultra, b, t), person))
    face = YuNetDetector(yunet, "ort", t).detect(person)[0]
    bgr = np.ascontiguousarray(person[:, :, ::-1])
    for precision in ("FP16", "FP16-INT8"):
        names = (
            "landmarks-regression-retail-0009",
            "head-pose-estimation-adas-0001",
            "gaze-estimation-adas-0002",
        )
        est = OpenVINOGazeEstimator(
            *[models / "gaze" / m / precision / f"{m}.xml" for m in names], threads=t
        )
        add("gaze", f"landmarks-0009 {precision}", None,
            median_ms(lambda e=est: e.landmarks(bgr, face), n))  # fmt: skip
        add("gaze", f"head-pose-0001 {precision}", None,
            median_ms(lambda e=est: e.head_pose(bgr, face), n))  # fmt: skip
        add("gaze", f"whole chain (3 networks + crops) {precision}", None,
            median_ms(lambda e=est: e.estimate(person, face), n))  # fmt: skip
    yolox = models / "detection/yolox_nano.onnx"
    add("detect", f"YOLOX-Nano 416 ({frame.shape[1]}x{frame.shape[0]} photo)",
        *both(lambda b: YoloxDetector(yolox, b, t), frame))  # fmt: skip
    if args.sam:
        from samedge import Predictor
        from samedge.runtime.providers import ProviderSettings

        predictor = Predictor.from_pretrained(
            args.sam,
            providers=args.provider,
            threads=t,
            provider_settings=ProviderSettings(openvino_precision=args.openvino_precision),
        )
        small = np.ascontiguousarray(frame[::2, ::2])  # 900x600, the size of a video frame
        emb = predictor.encode(small)
        runs_on = predictor.providers["encoder"]
        add("encode", f"{predictor.spec.name} image encoder ({runs_on})", median_ms(
            lambda: predictor.encode(small), max(3, n // 5)), None)  # fmt: skip
        for b in (1, 3):
            boxes = np.tile(np.array([[100.0, 100.0, 500.0, 400.0]]), (b, 1))
            add("decode", f"{predictor.spec.name} decoder, {b} box(es), one call", median_ms(
                lambda bx=boxes: predictor.predict(emb, boxes=bx, multimask_output=False), n),
                None)  # fmt: skip

    print()
    print(f"{platform.processor() or platform.machine()}, {t} threads, median of {n} runs")
    print()
    print("| stage | network | ONNX Runtime ms, median (min) | OpenVINO ms, median (min) |")
    print("|---|---|---:|---:|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
