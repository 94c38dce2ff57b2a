"""INPUT listing, COCO and JSONL prompts, shard keys and the output folder's state: no model."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from samedge.batch.inputs import coco_items, list_images, points_items, shard_key
from samedge.batch.shards import (
    check_job,
    done_keys,
    image_source,
    remove_partial,
    shard_path,
)
from samedge.errors import SamedgeError


def _touch(*paths: Path) -> None:
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")


def test_folder_glob_list_and_single_file(tmp_path: Path) -> None:
    root = tmp_path / "data"
    _touch(root / "b.jpg", root / "sub" / "a.PNG", root / "notes.txt")
    assert [name for _, name in list_images(str(root))] == ["b.jpg", "sub/a.PNG"]
    pattern = str(root / "**" / "*.PNG")
    assert [p for p, _ in list_images(pattern)] == [root / "sub" / "a.PNG"]
    listing = tmp_path / "list.txt"
    listing.write_text("# two images\ndata/sub/a.PNG\n\ndata/b.jpg\n")
    found = list_images(str(listing))
    assert [name for _, name in found] == ["data/b.jpg", "data/sub/a.PNG"]
    assert found[0][0] == tmp_path / "data" / "b.jpg"  # relative to the list's folder
    assert list_images(str(root / "b.jpg")) == [(root / "b.jpg", "b.jpg")]


def test_bad_inputs_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(SamedgeError, match="not found: give a folder"):
        list_images(str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(SamedgeError, match="names no image"):
        list_images(str(tmp_path / "empty"))
    listing = tmp_path / "twice.txt"
    listing.write_text("a.jpg\na.jpg\n")
    with pytest.raises(SamedgeError, match=r"lists a\.jpg twice"):
        list_images(str(listing))


def test_shard_keys_are_stable_safe_and_distinct() -> None:
    assert shard_key("dir/My photo (1).jpg") == shard_key("dir/My photo (1).jpg")
    assert shard_key("a/x.jpg") != shard_key("b/x.jpg")
    key = shard_key("dir/My photo (1).jpg")
    assert key.startswith("My_photo_1_-") and "/" not in key


def _coco_file(tmp_path: Path, document: object) -> Path:
    path = tmp_path / "coco.json"
    path.write_text(json.dumps(document))
    return path


def test_coco_boxes_found_by_file_name_or_base_name(tmp_path: Path) -> None:
    images = [(tmp_path / "x" / "a.jpg", "x/a.jpg"), (tmp_path / "b.jpg", "b.jpg")]
    coco = {
        "images": [
            {"id": 1, "file_name": "a.jpg"},
            {"id": 2, "file_name": "b.jpg"},
            {"id": 3, "file_name": "gone.jpg"},
            {"id": 4, "file_name": "b.jpg"},  # no box: not worked on
        ],
        "annotations": [
            {"id": 11, "image_id": 1, "bbox": [1, 2, 3, 4]},
            {"id": 12, "image_id": 1, "bbox": [0, 0, 1.5, 1]},
            {"id": 21, "image_id": 2, "bbox": [5, 5, 5, 5]},
            {"id": 22, "image_id": 2, "segmentation": []},
            {"id": 31, "image_id": 3, "bbox": [0, 0, 1, 1]},
        ],
    }
    work = coco_items(images, _coco_file(tmp_path, coco))
    assert [(i.image_id, i.path, i.file_name) for i in work.items] == [
        (1, str(tmp_path / "x" / "a.jpg"), "a.jpg"),
        (2, str(tmp_path / "b.jpg"), "b.jpg"),
    ]
    assert work.items[0].prompts == (
        {"id": 11, "bbox": [1, 2, 3, 4]},
        {"id": 12, "bbox": [0, 0, 1.5, 1]},
    )
    assert work.errors == [("gone.jpg", "not found in INPUT")]
    assert work.coco == coco


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"images": []}, "needs 'images' and 'annotations'"),
        ({"images": [], "annotations": [{"id": 1, "image_id": 1, "bbox": [1, 2]}]}, "bbox"),
        ({"images": [{"id": 1}], "annotations": []}, "'id' and a 'file_name'"),
    ],
)
def test_bad_coco_files(tmp_path: Path, document: dict, message: str) -> None:
    with pytest.raises(SamedgeError, match=message):
        coco_items([(tmp_path / "a.jpg", "a.jpg")], _coco_file(tmp_path, document))
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(SamedgeError, match="is not JSON"):
        coco_items([], tmp_path / "bad.json")


def test_points_jsonl(tmp_path: Path) -> None:
    images = [(tmp_path / "a.jpg", "a.jpg"), (tmp_path / "s" / "b.jpg", "s/b.jpg")]
    lines = [
        {"image": "s/b.jpg", "points": [[1, 2]], "labels": [1]},
        {"image": "a.jpg", "box": [0, 0, 4, 4], "category_id": 3},
        {"image": "b.jpg", "points": [[3, 3], [1, 1]], "labels": [1, 0]},
        {"image": "nowhere.jpg", "points": [[1, 1]], "labels": [1]},
    ]
    path = tmp_path / "p.jsonl"
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n\n")
    work = points_items(images, path)
    # b.jpg is s/b.jpg by its base name: both of its prompts, in file order
    assert [(i.file_name, i.image_id, len(i.prompts)) for i in work.items] == [
        ("a.jpg", 1, 1),
        ("s/b.jpg", 2, 2),
    ]
    assert work.items[1].prompts[1]["labels"] == [1, 0]
    assert work.errors == [("nowhere.jpg", "not found in INPUT")]
    # A base name two files share was 'not found' too: it says which, and what to give.
    twice = [*images, (tmp_path / "t" / "b.jpg", "t/b.jpg")]
    path.write_text(json.dumps({"image": "b.jpg", "points": [[1, 1]], "labels": [1]}) + "\n")
    assert points_items(twice, path).errors == [
        ("b.jpg", "matches 2 files of INPUT (s/b.jpg, t/b.jpg): give its path relative to INPUT")
    ]
    path.write_text('{"image": "a.jpg", "points": [[1, 1]]}\n')
    with pytest.raises(SamedgeError, match="need 'labels'"):
        points_items(images, path)
    path.write_text('{"image": "a.jpg"}\n')
    with pytest.raises(SamedgeError, match="no 'points' and no 'box'"):
        points_items(images, path)


def test_done_shards_partial_files_and_job_check(tmp_path: Path) -> None:
    out = tmp_path / "out"
    image = tmp_path / "a.jpg"
    image.write_bytes(b"pixels")
    source = image_source(image)
    assert source is not None and image_source(tmp_path / "none.jpg") is None
    shard_path(out, "k1").parent.mkdir(parents=True)
    shard_path(out, "k1").write_text(json.dumps({"key": "k1", "annotations": [], "source": source}))
    shard_path(out, "k2").write_text('{"key": "k2", "annot')  # truncated: redo
    shard_path(out, "k3").write_text(json.dumps({"key": "other", "annotations": []}))
    (out / "shards" / ".k4.json.abc123.tmp").write_text("{")
    # Made from another file of the same name, or by a version that recorded no source.
    other = {**source, "bytes": source["bytes"] + 1}
    shard_path(out, "k5").write_text(json.dumps({"key": "k5", "annotations": [], "source": other}))
    shard_path(out, "k6").write_text(json.dumps({"key": "k6", "annotations": []}))
    keys = ["k1", "k2", "k3", "k4", "k5", "k6"]
    assert done_keys(out, dict.fromkeys(keys, source)) == {"k1"}
    assert done_keys(out, {"k1": None}) == set()  # the image is gone: redo (and fail)
    assert remove_partial(out) == 1
    assert not list(out.rglob("*.tmp"))
    check_job(out, {"model": "m", "mode": "boxes"}, resume=True)
    check_job(out, {"model": "m", "mode": "boxes"}, resume=True)
    with pytest.raises(SamedgeError, match="different run"):
        check_job(out, {"model": "m", "mode": "everything"}, resume=True)
    check_job(out, {"model": "m", "mode": "everything"}, resume=False)


def test_importing_batch_does_not_import_ray() -> None:
    code = "import sys, samedge, samedge.batch, samedge.cli.batch; print('ray' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "False", result.stderr
