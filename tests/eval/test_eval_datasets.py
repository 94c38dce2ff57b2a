"""Reading evaluation datasets: layouts, the GrabCut ignore band, and per-sample rejection."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from samedge.eval import DatasetError, open_dataset
from samedge.maskutils import rle_encode

from ..conftest import shared_path


def _save(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def _rgb(h: int, w: int) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 255, (h, w, 3), dtype=np.uint8)


def test_grabcut_ignore_band_is_neither_object_nor_background() -> None:
    root = shared_path("data", "interactive", "GrabCut")
    dataset = open_dataset(root, "interactive")
    assert len(dataset) == 50 and dataset.num_samples == 50
    assert dataset.unmatched == []
    sample = dataset.load(next(e for e in dataset.entries if e.image_id == "banana1"))
    (instance,) = sample.instances
    raw = np.asarray(Image.open(root / "boundary_GT" / f"{sample.image_id}.bmp"))
    assert instance.ignore is not None
    np.testing.assert_array_equal(instance.ignore, raw == 128)
    np.testing.assert_array_equal(instance.mask, raw == 255)
    assert sample.image is not None and sample.image.shape[:2] == raw.shape


def test_berkeley_several_masks_per_image_and_rotated_mask_skipped() -> None:
    root = shared_path("data", "interactive", "Berkeley")
    dataset = open_dataset(root, "interactive")
    assert len(dataset) == 96 and dataset.num_samples == 100
    by_id = {e.image_id: e for e in dataset.entries}
    assert [sid for sid, _ in by_id["189011"].masks] == ["189011", "189011a", "189011b"]
    sample = dataset.load(by_id["189011"])
    whole, a, b = sample.instances
    assert not sample.skipped
    np.testing.assert_array_equal(whole.mask, a.mask | b.mask)  # this one is their union
    assert (a.mask != b.mask).any()
    rotated = dataset.load(by_id["101087"])
    assert rotated.instances == ()
    (skip,) = rotated.skipped
    assert skip.sample_id == "101087" and "rotated 90 degrees" in skip.reason


def test_folder_format_reports_every_bad_sample(tmp_path: Path) -> None:
    mask = np.zeros((40, 60), np.uint8)
    mask[10:30, 20:50] = 255
    _save(tmp_path / "images" / "good.jpg", _rgb(40, 60))
    _save(tmp_path / "masks" / "good.png", mask)
    _save(tmp_path / "images" / "empty.png", _rgb(40, 60))
    _save(tmp_path / "masks" / "empty.png", np.zeros((40, 60), np.uint8))
    _save(tmp_path / "images" / "small.png", _rgb(40, 60))
    _save(tmp_path / "masks" / "small.png", mask[:20])
    _save(tmp_path / "images" / "nomask.png", _rgb(40, 60))
    _save(tmp_path / "masks" / "orphan.png", mask)
    (tmp_path / "images" / "broken.png").write_bytes(b"not a png")
    _save(tmp_path / "masks" / "broken.png", mask)

    dataset = open_dataset(tmp_path, "folder")
    reasons = {s.sample_id: s.reason for s in dataset.unmatched}
    assert "no mask" in reasons["nomask"] and "no image" in reasons["orphan"]
    samples = {e.image_id: dataset.load(e) for e in dataset.entries}
    assert [i.sample_id for i in samples["good"].instances] == ["good"]
    assert samples["good"].instances[0].area == 20 * 30
    assert "empty mask" in samples["empty"].skipped[0].reason
    assert "60x20 but its image is 60x40" in samples["small"].skipped[0].reason
    assert "unreadable" in samples["broken"].skipped[0].reason
    for name in ("empty", "small", "broken"):
        assert samples[name].instances == ()


def test_missing_image_is_reported(tmp_path: Path) -> None:
    mask = np.full((8, 8), 255, np.uint8)
    _save(tmp_path / "img" / "a.png", _rgb(8, 8))
    _save(tmp_path / "gt" / "a.png", mask)
    dataset = open_dataset(tmp_path, "interactive")
    (tmp_path / "img" / "a.png").unlink()
    sample = dataset.load(dataset.entries[0])
    assert sample.image is None and "not found" in sample.skipped[0].reason


def test_coco_polygons_rle_crowd_and_size_mismatch(tmp_path: Path) -> None:
    pytest.importorskip("pycocotools", reason="needs the [eval] extra")
    _save(tmp_path / "val" / "1.jpg", _rgb(50, 80))
    _save(tmp_path / "val" / "2.jpg", _rgb(50, 80))
    rle_mask = np.zeros((50, 80), bool)
    rle_mask[5:20, 10:70] = True
    anns = [
        {"id": 1, "image_id": 1, "category_id": 1, "iscrowd": 0,
         "segmentation": [[10, 10, 40, 10, 40, 30, 10, 30]]},
        {"id": 2, "image_id": 1, "category_id": 1, "iscrowd": 0,
         "segmentation": rle_encode(rle_mask)},
        {"id": 3, "image_id": 1, "category_id": 1, "iscrowd": 1,
         "segmentation": rle_encode(rle_mask)},
        {"id": 4, "image_id": 2, "category_id": 1, "iscrowd": 0,
         "segmentation": [[1, 1, 5, 1, 5, 5]]},
    ]  # fmt: skip
    data = {
        "images": [
            {"id": 1, "file_name": "1.jpg", "height": 50, "width": 80},
            {"id": 2, "file_name": "2.jpg", "height": 60, "width": 80},
        ],
        "annotations": anns,
        "categories": [{"id": 1, "name": "thing"}],
    }
    json_path = tmp_path / "annotations" / "instances_val.json"
    json_path.parent.mkdir()
    json_path.write_text(json.dumps(data))
    dataset = open_dataset(json_path, "coco")  # image folder guessed: ../val
    assert dataset.num_samples == 3
    first = dataset.load(dataset.entries[0])
    poly, rle = first.instances
    assert poly.sample_id == "1#1" and 600 <= poly.area <= 31 * 21
    np.testing.assert_array_equal(rle.mask, rle_mask)
    assert [(s.sample_id, s.reason) for s in first.skipped] == [
        ("1#3", "crowd annotation (iscrowd=1)")
    ]
    second = dataset.load(dataset.entries[1])
    assert "JSON says the image is 80x60 but it is 80x50" in second.skipped[0].reason


def test_unreadable_layouts_raise_one_line(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="not found"):
        open_dataset(tmp_path / "nope", "interactive")
    with pytest.raises(DatasetError, match="expected one of data_GT/"):
        open_dataset(tmp_path, "interactive")
    with pytest.raises(DatasetError, match="images/ and masks/"):
        open_dataset(tmp_path, "folder")
    with pytest.raises(DatasetError, match="unknown dataset format"):
        open_dataset(tmp_path, "voc")


def test_alpha_of_a_mask_is_not_the_object(tmp_path: Path) -> None:
    """An editor's mask (white object on opaque black) with an alpha channel: the alpha
    channel was read as a colour, so grey + alpha masks covered the whole image."""
    obj = np.zeros((40, 60), np.uint8)
    obj[10:20, 5:25] = 255
    opaque = np.full_like(obj, 255)
    _save(tmp_path / "images" / "a.png", _rgb(40, 60))
    _save(tmp_path / "images" / "b.png", _rgb(40, 60))
    _save(tmp_path / "masks" / "a.png", np.dstack([obj, opaque]))  # grey + alpha
    _save(tmp_path / "masks" / "b.png", np.dstack([obj, obj, obj, opaque]))  # RGBA
    dataset = open_dataset(tmp_path, "folder")
    for entry in dataset.entries:
        (instance,) = dataset.load(entry).instances
        np.testing.assert_array_equal(instance.mask, obj > 0)
