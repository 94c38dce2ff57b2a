"""TrackWriter: the files of a tracking run, written into a temporary folder and moved into
place at the end, so a failed or interrupted run leaves nothing."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from samedge.errors import SamedgeError
from samedge.maskutils import rle_decode
from samedge.video import FrameResult
from samedge.video.io import open_video
from samedge.video.writers import TrackWriter, check_output_folder
from samedge.visualize import color_for

from ..conftest import shared_path

W, H = 854, 480


@pytest.fixture(scope="module")
def source():
    return open_video(shared_path("data", "davis2016", "JPEGImages", "blackswan"))


def result(frame: int, shift: int = 0, scores=(2.0, -1.0)) -> FrameResult:
    """Object 1 a square that moves right by ``shift``; object 2 absent (empty)."""
    masks = np.zeros((2, H, W), bool)
    masks[0, 100:200, 300 + shift : 400 + shift] = True
    return FrameResult(
        frame_index=frame,
        object_ids=(1, 2),
        masks=masks,
        low_res_logits=np.zeros((2, 256, 256), np.float32),
        object_scores=np.array(scores, np.float32),
        timings={"encoder": 0.5, "memory_attention": 0.25},
    )


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_layout_json_and_videos(tmp_path: Path, source) -> None:
    out = tmp_path / "run"
    header = {"model": "test", "prompts": [{"frame": 0, "object": 1}]}
    with TrackWriter(out, source, [2, 1], header, alpha="matte") as writer:
        for i in range(4):
            writer.add(result(i, shift=10 * i))
        summary = writer.finish({"seconds": 1.5})
    assert leftovers(tmp_path) == ["run"]  # no temporary folder left
    assert leftovers(out) == ["masks", "matte", "overlay.mp4", "track.json"]
    assert summary["frames"] == 4 and summary["frames_present"] == {"1": 4, "2": 0}
    assert summary["ms_per_frame"] == {"encoder": 500.0, "memory_attention": 250.0}

    data = json.loads((out / "track.json").read_text())
    assert data["model"] == "test" and data["objects"] == [1, 2]
    assert data["summary"]["seconds"] == 1.5
    assert [f["frame"] for f in data["frames"]] == [0, 1, 2, 3]
    first = data["frames"][2]["objects"][0]
    assert first["id"] == 1 and first["score"] == 2.0 and first["present"] is True
    assert np.array_equal(rle_decode(first["segmentation"]), result(2, 20).masks[0])
    assert first["area"] == 100 * 100 and first["bbox"] == [320, 100, 100, 100]
    assert data["frames"][0]["objects"][1]["present"] is False

    for i in range(4):
        png = cv2.imread(str(out / "masks" / "obj1" / f"{i:05d}.png"), cv2.IMREAD_UNCHANGED)
        assert png.shape == (H, W) and np.array_equal(png > 0, result(i, 10 * i).masks[0])
        assert set(np.unique(png).tolist()) == {0, 255}
    matte = cv2.VideoCapture(str(out / "matte" / "obj1.mov"))
    for i in range(4):  # lossless: the matte is exactly the mask
        ok, frame = matte.read()
        assert ok and np.array_equal(frame[:, :, 0] > 127, result(i, 10 * i).masks[0])
    assert not matte.read()[0]
    overlay = cv2.VideoCapture(str(out / "overlay.mp4"))
    assert overlay.get(cv2.CAP_PROP_FRAME_COUNT) == 4
    ok, frame = overlay.read()
    tint = frame[140:160, 340:360].astype(int).mean(axis=(0, 1))  # BGR inside object 1
    plain = source[0][140:160, 340:360, ::-1].astype(int).mean(axis=(0, 1))
    assert ok and tint[0] > plain[0] + 30  # object 1 is tinted blue (30, 144, 255)


def test_an_object_keeps_its_colour_when_objects_before_it_are_gone(tmp_path: Path, source) -> None:
    """Object 2 alone (object 1 removed in the web UI) is drawn in object 2's colour, as
    the Video tab draws it, not in the first colour."""
    masks = np.zeros((1, H, W), bool)
    masks[0, 100:200, 300:400] = True
    frame = FrameResult(
        frame_index=0,
        object_ids=(2,),
        masks=masks,
        low_res_logits=np.zeros((1, 256, 256), np.float32),
        object_scores=np.array([2.0], np.float32),
        timings={},
    )
    out = tmp_path / "run"
    with TrackWriter(out, source, [2]) as writer:
        writer.add(frame)
        writer.finish()
    assert json.loads((out / "track.json").read_text())["colors"] == {"2": list(color_for(1))}
    ok, bgr = cv2.VideoCapture(str(out / "overlay.mp4")).read()
    tint = bgr[140:160, 340:360, ::-1].astype(float).mean(axis=(0, 1))
    plain = source[0][140:160, 340:360].astype(float).mean(axis=(0, 1))
    expected = 0.5 * plain + 0.5 * np.array(color_for(1))
    assert ok and color_for(1) != color_for(0)
    assert np.abs(tint - expected).max() < 20, (tint, expected)


def test_rgba_frames_carry_the_mask_as_alpha(tmp_path: Path, source) -> None:
    out = tmp_path / "rgba"
    with TrackWriter(out, source, [1, 2], alpha="rgba", overlay_video=False) as writer:
        writer.add(result(5))
        writer.finish()
    assert leftovers(out) == ["masks", "rgba", "track.json"]
    bgra = cv2.imread(str(out / "rgba" / "obj1" / "00005.png"), cv2.IMREAD_UNCHANGED)
    assert bgra.shape == (H, W, 4)
    assert np.array_equal(bgra[:, :, 3] > 0, result(5).masks[0])
    assert np.array_equal(bgra[:, :, 2::-1], source[5])


def test_a_frame_given_twice_keeps_its_last_result(tmp_path: Path, source) -> None:
    out = tmp_path / "both"
    with TrackWriter(out, source, [1], overlay_video=False) as writer:
        for i in (2, 1, 0):  # backward ...
            writer.add(result(i, scores=(1.0, 0.0)))
        for i in (0, 1, 2, 3):  # ... then forward again over the prompted frame
            writer.add(result(i, shift=50, scores=(-1.0, 0.0)))
        summary = writer.finish()
    data = json.loads((out / "track.json").read_text())
    assert [f["frame"] for f in data["frames"]] == [0, 1, 2, 3]
    assert all(f["objects"][0]["score"] == -1.0 for f in data["frames"])
    assert summary["frames_present"] == {"1": 0}
    assert summary["ms_per_frame"]["encoder"] == 500.0
    png = cv2.imread(str(out / "masks" / "obj1" / "00001.png"), cv2.IMREAD_GRAYSCALE)
    assert np.array_equal(png > 0, result(1, shift=50).masks[0])


def test_a_failure_leaves_nothing_and_keeps_the_previous_output(tmp_path: Path, source) -> None:
    out = tmp_path / "run"
    with TrackWriter(out, source, [1], overlay_video=False) as writer:
        writer.add(result(0))
        writer.finish()
    before = (out / "track.json").read_bytes()
    with pytest.raises(RuntimeError), TrackWriter(out, source, [1]) as writer:
        writer.add(result(0, shift=5))
        raise RuntimeError("interrupted")
    assert leftovers(tmp_path) == ["run"] and (out / "track.json").read_bytes() == before
    with TrackWriter(tmp_path / "new", source, [1]) as writer:
        writer.add(result(0))  # never finished: nothing appears
    assert leftovers(tmp_path) == ["run"]
    # A rerun that completes replaces the earlier output.
    with TrackWriter(out, source, [1], overlay_video=False) as writer:
        writer.add(result(1))
        writer.finish()
    assert leftovers(tmp_path) == ["run"]
    assert sorted(p.name for p in (out / "masks" / "obj1").iterdir()) == ["00001.png"]


def test_output_folder_rules(tmp_path: Path) -> None:
    assert check_output_folder(tmp_path / "new") == tmp_path / "new"
    (tmp_path / "empty").mkdir()
    check_output_folder(tmp_path / "empty")
    (tmp_path / "file").write_text("x")
    with pytest.raises(SamedgeError, match="is a file"):
        check_output_folder(tmp_path / "file")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("x")
    with pytest.raises(SamedgeError, match="other files in it"):
        check_output_folder(tmp_path / "mine")
