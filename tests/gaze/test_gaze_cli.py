"""``samedge gaze`` end to end on a real clip and a real photo, with the real models."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from samedge.cli.main import main
from samedge.maskutils import rle_decode

from ..conftest import shared_path

STAGE_KEYS = {"face", "total"}


def model_args(sam_folder) -> list[str]:
    models = shared_path("models")
    return [
        "--model",
        str(sam_folder),
        "--face-model",
        str(models / "face"),
        "--gaze-models",
        str(models / "gaze"),
        "--detector",
        str(models / "detection" / "yolox_nano.onnx"),
        "--threads",
        "2",
        "--min-iou",
        "0",  # the test SAM has random weights
    ]


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def sam_folder(export_test_model):
    return export_test_model("sam2.1_hiera_tiny")


@pytest.mark.slow
def test_video_end_to_end_writes_annotated_video_and_complete_jsonl(sam_folder, tmp_path, capsys):
    pytest.importorskip("openvino", reason="needs the [gaze] extra: pip install 'samedge[gaze]'")
    video = shared_path("data", "video", "bedroom.mp4")
    out, jsonl = tmp_path / "annotated.mp4", tmp_path / "frames.jsonl"
    argv = ["gaze", "--video", str(video), *model_args(sam_folder)]
    code = main([*argv, "--out", str(out), "--jsonl", str(jsonl), "--max-frames", "5"])
    assert code == 0
    captured = capsys.readouterr()
    assert "5 frames" in captured.out and "FPS" in captured.out
    assert "depth filter: off" in captured.err
    # the [gaze] extra has OpenVINO: the face and object detectors run on it by default
    assert "runtimes: face OpenVINO; objects OpenVINO; SAM encoder CPU" in captured.err

    cap = cv2.VideoCapture(str(out))
    count = 0
    while True:
        ok, image = cap.read()
        if not ok:
            break
        assert image.shape == (540, 960, 3)
        count += 1
    assert count == 5

    records = read_jsonl(jsonl)
    frames, summary = records[:-1], records[-1]
    assert [r["frame"] for r in frames] == [0, 1, 2, 3, 4]
    for r in frames:
        assert r["type"] == "frame" and r["size"] == [540, 960]
        assert set(r["latency_ms"]) >= STAGE_KEYS and all(v >= 0 for v in r["latency_ms"].values())
        assert r["depth"] == "off (no depth model)"
        if r["chosen"] is None:
            assert r["reason"]
        else:
            mask = rle_decode(r["chosen"]["mask_rle"])
            assert mask.shape == (540, 960) and mask.any()
        if r["face"] is not None:
            assert {"gaze", "detect"} <= set(r["latency_ms"])
            assert np.isclose(np.linalg.norm(r["gaze"]["vector"]), 1, atol=1e-3)
    assert any(r["face"] is not None for r in frames)  # the girl's face is found
    assert summary["type"] == "summary" and summary["frames"] == 5 and summary["fps"] > 0
    assert summary["depth"] is False


@pytest.mark.slow
def test_points_mode_on_a_photo_runs_sam(sam_folder, tmp_path, capsys):
    pytest.importorskip("openvino", reason="needs the [gaze] extra: pip install 'samedge[gaze]'")
    image = shared_path("data", "interactive", "GrabCut", "data_GT", "person1.jpg")
    jsonl = tmp_path / "p.jsonl"
    argv = ["gaze", "--image", str(image), *model_args(sam_folder), "--mode", "points"]
    out = tmp_path / "a.avi"
    argv += ["--points", "4", "--jsonl", str(jsonl), "--out", str(out), "--backend", "ort"]
    assert main(argv) == 0
    assert "runtimes: face ONNX Runtime; SAM encoder" in capsys.readouterr().err  # no detector
    frame = read_jsonl(jsonl)[0]
    assert frame["face"] is not None and frame["detections"] == 0
    assert 1 <= len(frame["prompt_points"]) <= 4
    assert {"encode", "decode"} <= set(frame["latency_ms"])
    assert out.stat().st_size > 0


@pytest.mark.slow
def test_a_photo_to_png_writes_the_annotated_picture(sam_folder, tmp_path, capsys):
    pytest.importorskip("openvino", reason="needs the [gaze] extra: pip install 'samedge[gaze]'")
    photo = shared_path("data", "interactive", "GrabCut", "data_GT", "person1.jpg")
    out = tmp_path / "result.png"
    argv = ["gaze", "--image", str(photo), *model_args(sam_folder), "--out", str(out)]
    assert main([*argv, "--no-progress"]) == 0
    captured = capsys.readouterr()
    assert "frame 0" not in captured.err and "frame 0" not in captured.out  # --no-progress
    assert f"wrote {out}" in captured.err and "1 frames" in captured.out
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    written = cv2.imread(str(out), cv2.IMREAD_UNCHANGED)
    original = cv2.imread(str(photo))
    assert written.shape == original.shape  # full size, three channels
    assert not np.array_equal(written, original)  # annotated: face box, gaze ray
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.png"]


def test_errors_are_one_line_and_write_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("SAMEDGE_HOME", str(tmp_path / "home"))
    assert main(["gaze", "--model", "x"]) == 2
    assert "give a source" in capsys.readouterr().err
    image = shared_path("data", "interactive", "GrabCut", "data_GT", "person1.jpg")
    argv = ["gaze", "--image", str(image), "--model", "x", "--jsonl", str(tmp_path / "f.jsonl")]
    assert main([*argv, "--out", str(tmp_path / "a.gif")]) == 2
    assert "--out must end in .mp4 or .avi or .png, got" in capsys.readouterr().err
    video = shared_path("data", "video", "bedroom.mp4")
    assert main(["gaze", "--video", str(video), "--model", "x", "--out", "a.png"]) == 2
    assert "--out must end in .mp4 or .avi (or .png with --image)" in capsys.readouterr().err
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "yunet is not in" in err and "--fetch-models" in err
    assert "or pass its file with --face-model PATH" in err  # as the web UI names it
    assert sorted(p.name for p in tmp_path.iterdir()) == []


@pytest.mark.parametrize("points", ["0", "-3"])
def test_points_mode_needs_a_positive_number_of_points(points, capsys):
    """--points 0 was accepted: every frame then said the gaze ray left the image."""
    image = shared_path("data", "interactive", "GrabCut", "data_GT", "person1.jpg")
    argv = ["gaze", "--image", str(image), "--model", "x", "--mode", "points"]
    with pytest.raises(SystemExit) as exc:
        main([*argv, "--points", points])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert f"argument --points: expected a positive integer, got '{points}'" in err


def test_an_undecodable_video_is_one_quiet_line(sam_folder, tmp_path):
    """A truncated MP4 (its moov atom cut off) said 'check the path', after FFmpeg's own
    'moov atom not found' line."""
    import subprocess
    import sys

    pytest.importorskip("openvino", reason="needs the [gaze] extra: pip install 'samedge[gaze]'")
    half = tmp_path / "half.mp4"
    half.write_bytes(shared_path("data", "video", "bedroom.mp4").read_bytes()[:300_000])
    jsonl = tmp_path / "frames.jsonl"
    argv = ["gaze", "--video", str(half), *model_args(sam_folder), "--jsonl", str(jsonl)]
    run = subprocess.run(
        [sys.executable, "-m", "samedge", *argv], capture_output=True, text=True, check=False
    )
    assert run.returncode == 2
    lines = run.stderr.splitlines()
    assert lines[-1] == (
        f"samedge: error: cannot open video {half}: the file exists but OpenCV cannot decode "
        "it (truncated, damaged or not a video)"
    )
    assert not any("moov" in line or "[ WARN" in line for line in lines), run.stderr
    assert not any(line.startswith("runtimes:") for line in lines)  # before the models load
    assert sorted(p.name for p in tmp_path.iterdir()) == ["half.mp4"]


@pytest.mark.slow
def test_ctrl_c_after_the_openvino_networks_is_an_interrupt(sam_folder, tmp_path) -> None:
    """Ctrl-C in a process that had run the pipeline was a segmentation fault (OpenVINO
    left an unusable alternate signal stack, on which Python runs its handlers)."""
    import subprocess
    import sys
    import textwrap

    pytest.importorskip("openvino", reason="needs the [gaze] extra: pip install 'samedge[gaze]'")
    photo = shared_path("data", "interactive", "GrabCut", "data_GT", "person1.jpg")
    argv = ["gaze", "--image", str(photo), *model_args(sam_folder), "--no-progress"]
    script = textwrap.dedent(
        f"""
        import os, signal, time
        from samedge.cli.main import main
        assert main({argv!r}) == 0
        # Python's own Ctrl-C handler, also where SIGINT came in ignored (a background job)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(2)
        except KeyboardInterrupt:
            print("interrupted")
        """
    )
    command = [sys.executable, "-c", script]
    run = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, check=False)
    assert run.returncode == 0 and run.stdout.strip().endswith("interrupted"), run.stderr[-2000:]
