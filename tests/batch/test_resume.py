"""Resuming a batch run into a folder of an earlier one: only shards of the same image
files and the same model files are reused."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import pytest

from samedge.batch import BatchJob, BatchOptions, run_batch
from samedge.cli.main import main

from .conftest import Dataset


def _photo(dataset: Dataset, name: str) -> Path:
    return Path(next(p for p in dataset.images.read_text().splitlines() if p.endswith(name)))


def test_resume_redoes_an_image_whose_file_changed(
    dataset: Dataset, model_dir, tmp_path: Path
) -> None:
    """day1/IMG_0001.jpg and day2/IMG_0001.jpg into one --out: the second run redoes it."""
    prompts = tmp_path / "prompts.jsonl"
    names = ("IMG_0000.jpg", "IMG_0001.jpg")  # IMG_0000.jpg: not in INPUT at first
    lines = [{"image": name, "points": [[20, 20]], "labels": [1]} for name in names]
    prompts.write_text("".join(json.dumps(line) + "\n" for line in lines))
    day1, day2 = tmp_path / "day1", tmp_path / "day2"
    day1.mkdir()
    day2.mkdir()
    shutil.copy(_photo(dataset, "teddy.jpg"), day1 / "IMG_0001.jpg")  # 284 x 398
    shutil.copy(_photo(dataset, "person1.jpg"), day2 / "IMG_0001.jpg")  # 600 x 450
    out = tmp_path / "out"
    job = BatchJob(model=str(model_dir), mode="points", out=str(out), threads=2)

    def run(folder: Path) -> tuple[tuple[int, int, int], list[dict]]:
        summary = run_batch(str(folder), job, BatchOptions(), prompts=prompts)
        merged = json.loads((out / "masks.json").read_text())
        return (summary.done, summary.skipped, summary.failed), merged["images"]

    first = {"id": 1, "file_name": "IMG_0001.jpg", "width": 284, "height": 398}
    assert run(day1) == ((1, 0, 1), [first])
    assert run(day1) == ((0, 1, 1), [first])
    counts, images = run(day2)
    assert counts == (1, 0, 1)
    assert (images[0]["width"], images[0]["height"]) == (600, 450)
    # An image added before it in file-name order renumbers the resumed one.
    shutil.copy(_photo(dataset, "teddy.jpg"), day2 / "IMG_0000.jpg")
    counts, images = run(day2)
    assert counts == (1, 1, 0)
    assert [(i["id"], i["file_name"]) for i in images] == [(1, names[0]), (2, names[1])]
    merged = json.loads((out / "masks.json").read_text())
    assert [a["image_id"] for a in merged["annotations"]] == [1, 2]
    # Replaced by a file that cannot be read: it fails and its old result is not merged.
    (day2 / "IMG_0001.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    counts, images = run(day2)
    assert counts == (0, 1, 1)
    assert [i["file_name"] for i in images] == ["IMG_0000.jpg"]


def _model_copy(model_dir: Path, folder: Path, **changes: object) -> Path:
    """``model_dir``'s files linked into ``folder``, its manifest with ``changes``."""
    folder.mkdir()
    for path in Path(model_dir).iterdir():
        if path.name != "samedge.json":
            (folder / path.name).symlink_to(path)
    manifest = json.loads((Path(model_dir) / "samedge.json").read_text())
    (folder / "samedge.json").write_text(json.dumps({**manifest, **changes}))
    return folder


def test_resume_with_another_precision_of_the_model_is_a_different_run(
    dataset: Dataset, model_dir, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """A quantized folder keeps its parent's weights; its precision and graphs differ."""
    listing = tmp_path / "broken.txt"
    listing.write_text(f"{dataset.broken}\n")  # fails before any encoder run
    out = tmp_path / "out"
    argv = ["batch", str(listing), "--everything", "--out", str(out), "--no-progress"]
    assert main([*argv, "--model", str(model_dir)]) == 0
    same = _model_copy(model_dir, tmp_path / "same")
    assert main([*argv, "--model", str(same)]) == 0  # where the folder is does not matter
    manifest = json.loads((Path(model_dir) / "samedge.json").read_text())
    precision = {**manifest["precision"], "encoder": "int8"}
    int8 = _model_copy(model_dir, tmp_path / "int8", precision=precision)
    capsys.readouterr()
    assert main([*argv, "--model", str(int8)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("samedge: error: ") and "holds results of a different run" in err
    files = copy.deepcopy(manifest["files"])
    files["encoder"][0]["sha256"] = "0" * 64
    graphs = _model_copy(model_dir, tmp_path / "graphs", files=files)
    assert main([*argv, "--model", str(graphs)]) == 2
    assert "holds results of a different run" in capsys.readouterr().err
