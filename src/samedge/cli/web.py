"""``samedge web [--model NAME] [--host 127.0.0.1] [--port 7860]``: the browser UI."""

from __future__ import annotations

import argparse
import logging
import shutil
import tempfile
from pathlib import Path

from ..errors import SamedgeError
from ..imageio import IMAGE_SUFFIXES
from ..saliency import BACKENDS
from .options import positive_int

log = logging.getLogger(__name__)

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "web",
        help="browser UI: points, boxes, box + points, segment-everything and gaze",
        description="Start a local web UI (Gradio) to segment images by clicking, and to "
        "segment what a person looks at from the webcam (Gaze tab). Offers the exported "
        "models in the cache plus --model. Needs pip install 'samedge[web]' (and "
        "'samedge[gaze]' for the Gaze tab).",
    )
    parser.add_argument(
        "--model",
        action="append",
        default=[],
        metavar="NAME_OR_FOLDER",
        help="model selected at start: a registered name (exported) or an exported folder; "
        "repeatable (default: every exported model in the cache, first one selected)",
    )
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to bind (default 127.0.0.1: this machine only; 0.0.0.0 exposes the UI "
        "to the network, without authentication)",
    )
    parser.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    parser.add_argument("--provider", default="cpu", help="execution provider selected at start")
    parser.add_argument(
        "--threads", type=positive_int, help="intra-op threads (default: all cores)"
    )
    parser.add_argument(
        "--examples",
        type=Path,
        metavar="FOLDER",
        help="offer the images in FOLDER as examples",
    )
    parser.add_argument(
        "--max-upload-mb", type=float, default=20.0, help="largest accepted upload (default 20)"
    )
    parser.add_argument(
        "--max-upload-megapixels",
        type=float,
        default=50.0,
        help="largest accepted image in megapixels (default 50)",
    )
    parser.add_argument(
        "--cache-size",
        type=int,
        default=8,
        help="image embeddings kept in memory (LRU; about 16 MB each for SAM 2, 4 MB for SAM)",
    )
    video = parser.add_argument_group("Video tab (rotoscoping, SAM 2.1 models)")
    video.add_argument(
        "--video-max-mb", type=float, default=200.0, help="largest accepted clip (default 200)"
    )
    video.add_argument(
        "--video-max-frames",
        type=int,
        default=600,
        help="most frames a clip may have (default 600: 25 s at 24 fps)",
    )
    video.add_argument(
        "--video-max-megapixels",
        type=float,
        default=2.1,
        help="largest frame in megapixels (default 2.1: 1920 x 1080)",
    )
    video.add_argument(
        "--video-idle-minutes",
        type=float,
        default=30.0,
        help="a clip untouched this long is deleted with its tracking state (default 30)",
    )
    gaze = parser.add_argument_group(
        "Gaze tab",
        "auxiliary models (default: $SAMEDGE_HOME/gaze, see samedge gaze --fetch-models)",
    )
    gaze.add_argument("--face", choices=("yunet", "ultraface"), default="yunet")
    gaze.add_argument("--face-model", type=Path, help="face detector ONNX file or folder")
    gaze.add_argument(
        "--gaze-models",
        type=Path,
        help="folder with the Open Model Zoo gaze, head-pose and landmarks IR files",
    )
    gaze.add_argument("--detector", type=Path, help="YOLOX-style ONNX (default yolox_nano)")
    auto = parser.add_argument_group("Point tab's Auto button (see samedge segment --auto)")
    auto.add_argument(
        "--saliency",
        choices=BACKENDS,
        default="classic",
        help="saliency backend (default classic: no weights; u2netp is downloaded once)",
    )
    auto.add_argument(
        "--saliency-model", type=Path, metavar="PATH", help="a local u2netp.onnx (no download)"
    )
    parser.set_defaults(func=run)


def example_images(folder: Path | None, limit: int = 12) -> list[Path]:
    """Up to ``limit`` image files in ``folder`` (sorted by name)."""
    if folder is None:
        return []
    if not folder.is_dir():
        raise SamedgeError(f"--examples must be a folder of images, got {folder}")
    found = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not found:
        raise SamedgeError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in {folder}")
    return found[:limit]


def run(args: argparse.Namespace) -> int:
    from ..errors import require_extra

    require_extra("gradio", "web", "samedge web")
    if not 0 < args.port < 65536:
        raise SamedgeError(f"--port must be 1..65535, got {args.port}")
    if args.max_upload_mb <= 0 or args.max_upload_megapixels <= 0 or args.cache_size < 1:
        raise SamedgeError("--max-upload-mb, --max-upload-megapixels and --cache-size must be > 0")
    video_limits = (
        args.video_max_mb,
        args.video_max_frames,
        args.video_max_megapixels,
        args.video_idle_minutes,
    )
    if min(video_limits) <= 0:
        raise SamedgeError(
            "--video-max-mb, --video-max-frames, --video-max-megapixels and "
            "--video-idle-minutes must be > 0"
        )

    from ..runtime.session import available_providers, native_openvino
    from ..web.cache import EmbeddingCache
    from ..web.engine import Engine
    from ..web.gaze import GazeModels, GazeService
    from ..web.models import ModelCatalog, PredictorPool, discover_models, provider_choices

    examples = example_images(args.examples)
    gaze_models = GazeModels(args.face, args.face_model, args.gaze_models, args.detector)
    gaze_models.check()
    from ..saliency import make_backend

    saliency = make_backend(args.saliency, args.saliency_model, args.provider, args.threads)
    entries = discover_models(args.model)
    choices = provider_choices(available_providers(), native_openvino("openvino"))
    catalog = ModelCatalog(entries, choices)
    if args.provider not in catalog.providers:
        raise SamedgeError(
            f"--provider {args.provider} is not available; use one of "
            f"{', '.join(catalog.providers)}"
        )
    out_dir = Path(tempfile.mkdtemp(prefix="samedge-web-"))
    try:
        engine = Engine(
            catalog,
            out_dir=out_dir,
            cache=EmbeddingCache(args.cache_size),
            pool=PredictorPool(threads=args.threads),
            max_upload_mb=args.max_upload_mb,
            max_upload_pixels=int(args.max_upload_megapixels * 1e6),
            saliency=saliency,
        )
        from ..web.app import build_app, launch
        from ..web.uploads import MB
        from ..web.video import VideoLimits, VideoService

        video = VideoService(
            engine,
            VideoLimits(
                max_bytes=int(args.video_max_mb * MB),
                max_frames=args.video_max_frames,
                max_pixels=int(args.video_max_megapixels * 1e6),
            ),
            idle_timeout_s=args.video_idle_minutes * 60.0,
        )
        demo = build_app(
            engine,
            examples,
            model=entries[0].label,
            provider=args.provider,
            gaze=GazeService(engine, gaze_models),
            video=video,
        )
        if args.host not in LOCAL_HOSTS:
            log.warning(
                "samedge web listens on %s: anyone who can reach this address can use it "
                "(there is no authentication)",
                args.host,
            )
        print(f"samedge web: http://{args.host}:{args.port} (Ctrl+C stops it)", flush=True)
        # Gradio's own limit lets the larger of the two through; each tab checks its own.
        largest = max(args.max_upload_mb, args.video_max_mb)
        try:
            launch(demo, args.host, args.port, max_upload_mb=largest, block=True)
        finally:
            video.shutdown()
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)
    return 0
