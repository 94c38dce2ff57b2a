"""``samedge track``: bad input is one line, exit 2, nothing written; end to end on a short
clip with SAM 2.1 tiny (random weights: the masks mean nothing, the pipeline is real)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from samedge.cli.main import main
from samedge.maskutils import rle_decode

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
        (["--point", "0:1,1", "--fps", "0"], "--fps must be positive"),
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
        "--point", "0:430,220", "--box", "2:380,150,560,330@2", "--both", "--alpha",
    ]  # fmt: skip
    code, stdout, err = run(argv, capsys)
    assert code == 0, err
    assert "tracked 2 object(s) over 8 frames (0..7)" in stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    assert sorted(p.name for p in out.iterdir()) == ["masks", "matte", "overlay.mp4", "track.json"]
    data = json.loads((out / "track.json").read_text())
    assert data["objects"] == [1, 2] and [f["frame"] for f in data["frames"]] == list(range(8))
    assert data["prompts"][0] == {"frame": 0, "object": 1, "points": [[430.0, 220.0]],
                                  "labels": [1]}  # fmt: skip
    assert data["source"]["frames"] == 8 and data["direction"] == "both"
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
    assert overlay.get(cv2.CAP_PROP_FRAME_COUNT) == 8
    assert overlay.get(cv2.CAP_PROP_FRAME_WIDTH) == 854
