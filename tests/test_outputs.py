"""Result files are written atomically and end with the mode a plain ``open()`` gives them."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from samedge.gaze.io.video import ImageSink, JsonlSink
from samedge.outputs import OutputSet, current_umask, publish_mode


@pytest.fixture(params=[0o022, 0o077, 0o027])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    previous = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def plain_file_mode(folder: Path) -> int:
    """The mode ``open(path, "w")`` gives a new file here and now."""
    probe = folder / "probe"
    probe.write_text("")
    try:
        return mode(probe)
    finally:
        probe.unlink()


def test_current_umask_is_read_without_changing_it(umask: int) -> None:
    assert current_umask() == umask
    assert os.umask(umask) == umask  # still set


def test_output_set_files_get_the_umask_mode(umask: int, tmp_path: Path) -> None:
    with OutputSet() as out:
        out.add_png(tmp_path / "mask.png", np.ones((4, 5), dtype=bool))
        out.add_json(tmp_path / "sub" / "result.json", {"a": 1})
    expected = 0o666 & ~umask
    assert expected == plain_file_mode(tmp_path)
    assert mode(tmp_path / "mask.png") == expected
    assert mode(tmp_path / "sub" / "result.json") == expected
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mask.png", "sub"]  # no temp left


def test_gaze_jsonl_gets_the_umask_mode(umask: int, tmp_path: Path) -> None:
    jsonl = JsonlSink(tmp_path / "a.jsonl")
    jsonl.write({"frame": 0})
    assert mode(jsonl.commit()) == 0o666 & ~umask
    assert [p.name for p in tmp_path.iterdir()] == ["a.jsonl"]


def test_published_folder_and_its_contents_get_mkdir_and_open_modes(
    umask: int, tmp_path: Path
) -> None:
    import tempfile

    stage = Path(tempfile.mkdtemp(dir=tmp_path))  # 0700, as the quantizer stages a model
    (stage / "inner").mkdir(mode=0o700)
    fd, name = tempfile.mkstemp(dir=stage / "inner")  # 0600, like onnx's external data
    os.close(fd)
    (stage / "link").symlink_to(name)
    publish_mode(stage)
    assert mode(stage) == mode(stage / "inner") == 0o777 & ~umask
    assert mode(Path(name)) == 0o666 & ~umask


def test_exported_model_files_all_have_the_mode_of_a_plain_file(export_test_model) -> None:
    """``samedge.json`` is written with ``open()``; the graphs and their ``.data`` files
    (onnx writes those 0600) must be readable by the same users."""
    folder = export_test_model("sam2.1_hiera_tiny")
    manifest_mode = mode(folder / "samedge.json")
    assert {p.name: mode(p) for p in folder.iterdir()} == {
        p.name: manifest_mode for p in folder.iterdir()
    }


def test_gaze_picture_gets_the_umask_mode(umask: int, tmp_path: Path) -> None:
    picture = ImageSink(tmp_path / "a.png")
    picture.write(np.zeros((8, 8, 3), np.uint8))
    assert mode(picture.commit()) == 0o666 & ~umask
    assert [p.name for p in tmp_path.iterdir()] == ["a.png"]


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_add_json_refuses_what_json_cannot_hold(value: float, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not JSON compliant"), OutputSet() as out:
        out.add_json(tmp_path / "a.json", {"ok": 1.0})
        out.add_json(tmp_path / "b.json", {"score": value})
    assert list(tmp_path.iterdir()) == []
