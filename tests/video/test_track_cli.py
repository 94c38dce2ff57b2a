"""``samedge track``: bad input is one line, exit 2, nothing written; end to end on a short
clip with SAM 2.1 tiny (random weights: the masks mean nothing, the pipeline is real)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import ClassVar

import cv2
import numpy as np
import pytest

from samedge.cli.main import main
from samedge.maskutils import rle_decode
from samedge.video import FrameResult

from ..conftest import requires_export, shared_path

MODEL = "sam2.1_hiera_tiny"


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first 8 frames of DAVIS 'blackswan' as an mp4 (854x480)."""
    folder = shared_path("data", "davis2016", "JPEGImages", "blackswan")
    path = tmp_path_factory.mktemp("clip") / "swan.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 24, (854, 480))
    for file in sorted(folder.glob("*.jpg"))[:8]:
        writer.write(cv2.imread(str(file)))
    writer.release()
    return path


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ([], "no prompt: give at least one --point"),
        (["--point", "8:100,100"], "on frame 8, past the end of the video (frames 0..7)"),
        (["--point", "0:900,100"], "lies outside the 854x480 frame"),
        (["--point", "0:100,100,5"], "LABEL must be 1 (object) or 0 (background)"),
        (["--box", "0:100,100,50,50"], "X0 <= X1 and Y0 <= Y1"),
        (["--point", "x:1,2"], "expected FRAME:X,Y[,LABEL][@OBJ]"),
        (["--mask", "0:missing.png"], "mask file not found"),
        (["--point", "0:1,1", "--fps", "0"], "--fps must be a frame rate from 0.01 to 1000"),
        (["--point", "0:1,1", "--fps", "inf"], "got inf"),  # hung in OpenCV's writer
        (["--point", "0:1,1", "--reverse"], "nothing to track backward: drop --reverse"),
    ],
)
def test_bad_prompts_are_one_line_exit_2_and_write_nothing(
    clip: Path, tmp_path: Path, capsys, extra: list[str], message: str
) -> None:
    out = tmp_path / "out"
    code, stdout, err = run(["track", str(clip), "--model", MODEL, "--out", str(out), *extra],
                            capsys)  # fmt: skip
    assert code == 2 and stdout == ""
    assert err.count("\n") == 1 and err.startswith("samedge: error: ") and message in err, err
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == []


@pytest.mark.parametrize("kind", ["text", "missing", "empty folder", "out is a file"])
def test_bad_sources_and_outputs_are_one_line(tmp_path: Path, capsys, kind: str) -> None:
    source, out = tmp_path / "in.mp4", tmp_path / "out"
    if kind == "text":
        source.write_text("not a video")
    elif kind == "empty folder":
        source = tmp_path / "frames"
        source.mkdir()
    elif kind == "out is a file":
        source = shared_path("data", "video", "bedroom.mp4")
        out.write_text("x")
    before = sorted(p.name for p in tmp_path.iterdir())
    code, stdout, err = run(
        ["track", str(source), "--model", MODEL, "--out", str(out), "--point", "0:1,1"], capsys
    )
    assert code == 2 and stdout == "" and err.count("\n") == 1, err
    expected = {
        "text": "cannot read video",
        "missing": "video not found",
        "empty folder": "holds no frames",
        "out is a file": "is a file",
    }
    assert expected[kind] in err
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def _video_predictor_landed() -> bool:
    import samedge.video

    return hasattr(samedge.video, "VideoPredictor")


needs_tracker = pytest.mark.skipif(
    not _video_predictor_landed(), reason="samedge.video.VideoPredictor is not there yet"
)


@pytest.mark.slow
@pytest.mark.export
@requires_export
@needs_tracker
def test_an_image_model_cannot_track(tmp_path: Path, capsys, export_test_model) -> None:
    out = tmp_path / "out"
    model = export_test_model("sam_vit_b")
    source = shared_path("data", "davis2016", "JPEGImages", "dog")
    code, _, err = run(
        ["track", str(source), "--model", str(model), "--out", str(out), "--point", "0:1,1"],
        capsys,
    )
    assert code == 2 and err.count("\n") == 1 and err.startswith("samedge: error: "), err
    assert not out.exists()


@pytest.mark.slow
@pytest.mark.export
@requires_export
@needs_tracker
def test_track_end_to_end(clip: Path, tmp_path: Path, capsys, export_test_model) -> None:
    model = export_test_model(MODEL)
    out = tmp_path / "out"
    argv = [
        "track", str(clip), "--model", str(model), "--out", str(out), "--no-progress",
        "--point", "0:430,220", "--box", "1:380,150,560,330@2", "--both", "--alpha",
        "--max-frames", "3",  # backward 1, 0, then forward 0, 1, 2: five tracked frames
    ]  # fmt: skip
    code, stdout, err = run(argv, capsys)
    assert code == 0, err
    assert "tracked 2 object(s) over 3 frames (0..2)" in stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    assert sorted(p.name for p in out.iterdir()) == ["masks", "matte", "overlay.mp4", "track.json"]
    data = json.loads((out / "track.json").read_text())
    assert data["objects"] == [1, 2] and [f["frame"] for f in data["frames"]] == [0, 1, 2]
    assert data["prompts"][0] == {"frame": 0, "object": 1, "points": [[430.0, 220.0]],
                                  "labels": [1]}  # fmt: skip
    assert data["source"]["frames"] == 8 and data["direction"] == "both"
    assert data["summary"]["frames_present"].keys() == {"1", "2"}
    for frame in data["frames"]:
        assert frame["timings_ms"] and {o["id"] for o in frame["objects"]} == {1, 2}
        for obj in frame["objects"]:
            png = cv2.imread(
                str(out / "masks" / f"obj{obj['id']}" / f"{frame['frame']:05d}.png"),
                cv2.IMREAD_GRAYSCALE,
            )
            assert np.array_equal(png > 0, rle_decode(obj["segmentation"]))
            assert isinstance(obj["score"], float)
    overlay = cv2.VideoCapture(str(out / "overlay.mp4"))
    assert overlay.get(cv2.CAP_PROP_FRAME_COUNT) == 3
    assert overlay.get(cv2.CAP_PROP_FRAME_WIDTH) == 854
    matte = cv2.VideoCapture(str(out / "matte" / "obj2.mov"))
    ok, first = matte.read()
    on_disk = cv2.imread(str(out / "masks" / "obj2" / "00000.png"), cv2.IMREAD_GRAYSCALE)
    assert ok and np.array_equal(first[:, :, 0] > 127, on_disk > 0)


class FakeTracker:
    """Stands in for VideoPredictor (the CLI's side of the contract): each object is a
    square at its first prompt, on every frame; ``fail_at`` raises on that frame."""

    fail_at: ClassVar[int | None] = None
    calls: ClassVar[list[tuple]] = []

    def __init__(self, name: str) -> None:
        self.name = name

    @classmethod
    def from_pretrained(cls, name, providers=None, threads=None, provider_settings=None):
        from samedge.errors import SamedgeError

        if name == "image-model":
            raise SamedgeError("image-model has no video graphs: it cannot track")
        return cls(name)

    def init_state(self, frame_size, num_frames=None):
        self.calls.append(("init", num_frames))
        return {"size": frame_size, "objects": {}}

    def add_prompt(self, state, frame_index, frame, obj_id, points=None, labels=None, box=None,
                   mask=None):  # fmt: skip
        assert frame.shape == (state["size"][1], state["size"][0], 3)
        self.calls.append(("add", frame_index, obj_id))
        if points is not None:
            x, y = points[0]
        elif box is not None:
            x, y = box[:2]
        else:
            ys, xs = np.nonzero(mask)
            x, y = xs.mean(), ys.mean()
        state["objects"].setdefault(obj_id, (int(x), int(y)))
        # The frame's result: this prompt's square for the object (a correction moves it
        # there on this frame only), the others where they started.
        width, height = state["size"]
        ids = tuple(sorted(state["objects"]))
        masks = np.zeros((len(ids), height, width), bool)
        for k, obj in enumerate(ids):
            cx, cy = (int(x), int(y)) if obj == obj_id else state["objects"][obj]
            masks[k, max(0, cy - 20) : cy + 20, max(0, cx - 20) : cx + 20] = True
        logits = np.zeros((len(ids), 256, 256), np.float32)
        return FrameResult(frame_index, ids, masks, logits, np.ones(len(ids), np.float32), {})

    def propagate(self, state, frames, start_frame=None, reverse=False, max_frames=None):
        self.calls.append(("propagate", start_frame, reverse, max_frames))
        width, height = state["size"]
        n = len(frames) if max_frames is None else max_frames + 1  # official: after the start
        order = (
            range(start_frame, max(-1, start_frame - n), -1)
            if reverse
            else range(start_frame, min(len(frames), start_frame + n))
        )
        ids = tuple(sorted(state["objects"]))
        for i in order:
            frames[i]
            if i == self.fail_at:
                raise RuntimeError("the tracker broke")
            masks = np.zeros((len(ids), height, width), bool)
            for k, obj in enumerate(ids):
                x, y = state["objects"][obj]
                masks[k, max(0, y - 20) : y + 20, max(0, x - 20) : x + 20] = True
            logits = np.zeros((len(ids), 256, 256), np.float32)
            scores = np.ones(len(ids), np.float32)
            yield FrameResult(i, ids, masks, logits, scores, {"encoder": 0.01})


@pytest.fixture
def fake(monkeypatch):
    import samedge.video

    FakeTracker.fail_at = None
    FakeTracker.calls = []
    monkeypatch.setattr(samedge.video, "VideoPredictor", FakeTracker, raising=False)
    return FakeTracker


def test_passes_and_outputs_with_a_stand_in_tracker(clip: Path, tmp_path: Path, capsys, fake):
    out = tmp_path / "out"
    argv = ["track", str(clip), "--model", "m", "--out", str(out), "--point", "5:100,100",
            "--box", "3:300,200,400,300@2", "--both", "--max-frames", "3",
            "--no-progress"]  # fmt: skip
    code, stdout, err = run(argv, capsys)
    assert code == 0, err
    # Prompts in frame order, then backward from the last prompted frame, forward from the first.
    assert fake.calls == [("init", 8), ("add", 3, 2), ("add", 5, 1), ("propagate", 5, True, 2),
                          ("propagate", 3, False, 2)]  # fmt: skip
    assert "tracked 2 object(s) over 3 frames (3..5)" in stdout
    assert "object 1: present on 3 of 3 frames" in stdout and f"wrote {out}" in stdout
    data = json.loads((out / "track.json").read_text())
    assert [f["frame"] for f in data["frames"]] == [3, 4, 5]
    assert data["direction"] == "both" and data["max_frames"] == 3


def test_a_later_prompt_corrects_the_tracked_object_there(clip, tmp_path, capsys, fake):
    """The docs' ``--point 0:... --point 3:...,0``: the pass tracks to frame 3, corrects
    the tracked mask there (add_prompt on a tracked frame) and goes on from frame 4; it
    used to add both prompts first, so frame 3 started afresh from the one negative click."""
    out = tmp_path / "out"
    argv = ["track", str(clip), "--model", "m", "--out", str(out), "--no-progress",
            "--point", "0:100,100", "--point", "3:300,200,0", "--point", "6:500,300"]  # fmt: skip
    code, _, err = run(argv, capsys)
    assert code == 0, err
    assert fake.calls == [("init", 8), ("add", 0, 1), ("propagate", 0, False, 3),
                          ("add", 3, 1), ("propagate", 4, False, 2), ("add", 6, 1),
                          ("propagate", 7, False, 0)]  # fmt: skip
    data = json.loads((out / "track.json").read_text())
    assert [f["frame"] for f in data["frames"]] == list(range(8))
    for frame, (x, y) in ((2, (100, 100)), (3, (300, 200)), (4, (100, 100)), (6, (500, 300))):
        png = cv2.imread(str(out / "masks" / "obj1" / f"{frame:05d}.png"), cv2.IMREAD_GRAYSCALE)
        assert png[y, x] == 255, frame  # the corrected frames hold the correction's result
    # Backward, the prompts on frames before an object's last prompted frame correct it;
    # a correction the pass does not reach (--max-frames) is said, not silently dropped.
    fake.calls.clear()
    argv = ["track", str(clip), "--model", "m", "--out", str(tmp_path / "back"), "--reverse",
            "--point", "6:100,100", "--point", "4:300,200,0", "--point", "1:50,50",
            "--max-frames", "4", "--no-progress"]  # fmt: skip
    code, _, err = run(argv, capsys)
    assert code == 0 and "not reached, so not used: the prompts on frame(s) 1" in err
    assert fake.calls == [("init", 8), ("add", 6, 1), ("propagate", 6, True, 2),
                          ("add", 4, 1), ("propagate", 3, True, 0)]  # fmt: skip


@requires_export
def test_a_correction_equals_the_official_flow(clip, tmp_path, capsys, small_checkpoint_export):
    """What the CLI writes for ``--point 0:... --point 2:...,0`` equals the official
    workflow through the API: prompt, propagate, correct the tracked frame, propagate
    again from the frame after it. (On the video parity tests' 256-pixel export: the CLI's
    order of calls is what is tested, at a sixth of the 1024-pixel cost.)"""
    from samedge.video import VideoPredictor
    from samedge.video.io import open_video

    model = small_checkpoint_export.folder
    out = tmp_path / "out"
    argv = ["track", str(clip), "--model", str(model), "--out", str(out), "--no-progress",
            "--no-overlay", "--point", "0:430,220", "--point", "2:430,220,0",
            "--max-frames", "4"]  # fmt: skip
    code, _, err = run(argv, capsys)
    assert code == 0, err
    source = open_video(clip)
    predictor = VideoPredictor.from_pretrained(str(model))
    state = predictor.init_state(frame_size=source.size, num_frames=len(source))
    click = np.array([[430.0, 220.0]])
    predictor.add_prompt(state, 0, source[0], 1, points=click, labels=np.array([1]))
    first = {r.frame_index: r.masks[0] for r in predictor.propagate(state, source, max_frames=3)}
    fixed = predictor.add_prompt(state, 2, source[2], 1, points=click, labels=np.array([0]))
    again = {r.frame_index: r.masks[0] for r in predictor.propagate(state, source, 3, max_frames=0)}
    expected = {0: first[0], 1: first[1], 2: fixed.masks[0], 3: again[3]}
    assert not np.array_equal(first[2], expected[2])  # the correction changed frame 2
    for frame, mask in expected.items():
        png = cv2.imread(str(out / "masks" / "obj1" / f"{frame:05d}.png"), cv2.IMREAD_GRAYSCALE)
        assert np.array_equal(png > 0, mask), frame


@pytest.mark.parametrize("failure", ["error", "interrupt", "terminate", "image model"])
def test_a_run_that_fails_midway_writes_nothing(clip, tmp_path, capsys, fake, failure):
    import os
    import signal

    import samedge.video

    out = tmp_path / "out"
    model = "image-model" if failure == "image model" else "m"
    fake.fail_at = 4
    handler = signal.getsignal(signal.SIGTERM)
    if failure in ("interrupt", "terminate"):

        class Interrupted(FakeTracker):
            def propagate(self, *args, **kwargs):
                for result in super().propagate(*args, **kwargs):
                    if result.frame_index == 2:
                        if failure == "interrupt":
                            raise KeyboardInterrupt  # Ctrl-C while tracking
                        os.kill(os.getpid(), signal.SIGTERM)  # kill: left its temp folder
                    yield result

        samedge.video.VideoPredictor = Interrupted
    argv = ["track", str(clip), "--model", model, "--out", str(out), "--point", "0:100,100",
            "--no-progress"]  # fmt: skip
    if failure == "error":
        with pytest.raises(RuntimeError, match="the tracker broke"):
            main(argv)
    else:
        code, _, err = run(argv, capsys)
        assert code == {"interrupt": 130, "terminate": 143}.get(failure, 2)
        assert err.count("\n") == 1, err
    assert signal.getsignal(signal.SIGTERM) is handler  # restored after main()
    assert sorted(p.name for p in tmp_path.iterdir()) == []
