"""``samedge web`` command line: safe defaults and one-line errors before anything starts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from samedge.cli.main import build_parser, main

ROOT = Path(__file__).resolve().parents[2]


def test_defaults_bind_to_this_machine_only() -> None:
    args = build_parser().parse_args(["web"])
    assert (args.host, args.port, args.model) == ("127.0.0.1", 7860, [])
    assert args.max_upload_mb == 20.0 and args.cache_size == 8


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["web", "--port", "0"], "--port must be 1..65535, got 0"),
        (["web", "--cache-size", "0"], "must be > 0"),
        (
            ["web", "--video-max-frames", "0"],
            "--video-max-megapixels and --video-idle-minutes must be > 0",
        ),
        (["web", "--video-idle-minutes", "-1"], "must be > 0"),
        (["web", "--examples", "no/such/folder"], "--examples must be a folder of images"),
        (["web", "--model", "sam_vit_q"], "unknown model 'sam_vit_q'"),
        (["web", "--model", "sam_vit_h"], "model 'sam_vit_h' has not been exported yet"),
        (["web"], "no exported models found in"),
        (["web", "--detector", "no/such.onnx"], "yolox_nano: no/such.onnx is not a file"),
        (["web", "--gaze-models", "."], "gaze-estimation-adas-0002: gaze-estimation-adas-0002"),
        (["web", "--saliency-model", "u2netp.onnx"], "classic has no weights"),
        (["web", "--saliency", "u2netp", "--saliency-model", "no/such.onnx"], "is not a file"),
    ],
)
def test_bad_options_are_one_line_errors(
    argv: list[str],
    message: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    pytest.importorskip("gradio", reason="needs the [web] extra: pip install 'samedge[web]'")
    monkeypatch.setenv("SAMEDGE_HOME", str(tmp_path))  # an empty model cache
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("samedge: error: ") and message in err
    assert len(err.strip().splitlines()) == 1


def test_importing_the_web_package_loads_neither_gradio_nor_onnxruntime() -> None:
    code = (
        "import sys, samedge.web.engine, samedge.web.models, samedge.web.state, "
        "samedge.web.gaze, samedge.cli.web\n"
        "assert 'gradio' not in sys.modules and 'onnxruntime' not in sys.modules, "
        "sorted(m for m in sys.modules if m.startswith(('gradio', 'onnxruntime')))"
    )
    env = {"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin"}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=60)


def test_video_limits_reach_the_video_tab(
    export_test_model: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The --video-* options become the Video tab's limits and idle timeout, and Gradio's
    own upload limit lets the larger of the image and video limits through."""
    pytest.importorskip("gradio", reason="needs the [web] extra: pip install 'samedge[web]'")
    import samedge.web.app as app
    from samedge.web.video import VideoLimits

    seen: dict[str, Any] = {}

    def build_app(engine: Any, *args: Any, **kwargs: Any) -> str:
        seen["video"] = kwargs["video"]
        return "demo"

    def launch(demo: str, host: str, port: int, max_upload_mb: float, block: bool) -> None:
        seen["launch"] = (demo, host, port, max_upload_mb, block)
        assert seen["video"].root.parent.is_dir()  # the app's temporary folder, still there

    monkeypatch.setattr(app, "build_app", build_app)
    monkeypatch.setattr(app, "launch", launch)
    monkeypatch.setenv("SAMEDGE_HOME", str(tmp_path))
    folder = export_test_model("sam2.1_hiera_tiny")
    argv = ["web", "--model", str(folder), "--video-max-mb", "50", "--video-max-frames", "90"]
    argv += ["--video-max-megapixels", "0.5", "--video-idle-minutes", "2"]
    assert main(argv) == 0
    video = seen["video"]
    assert video.limits == VideoLimits(max_bytes=50 << 20, max_frames=90, max_pixels=500_000)
    assert video.idle_timeout_s == 120.0
    assert seen["launch"] == ("demo", "127.0.0.1", 7860, 50.0, True)
    assert not video.root.parent.exists()  # deleted when the server stops
