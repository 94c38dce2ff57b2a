"""Fixtures of the batch tests: a small COCO dataset from GrabCut's ground truth, the
EfficientViT-SAM L0 test model (the cheapest encoder with every graph batch needs), and one
uninterrupted reference run that the other runs must reproduce byte for byte."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import shared_path

MODEL = "efficientvit_sam_l0"

#: GrabCut images with their ground-truth masks: jpg and bmp, portrait and landscape.
GRABCUT = ("person1.jpg", "teddy.jpg", "banana1.bmp", "llama.bmp")


@dataclass(frozen=True)
class Dataset:
    """``images``: the list file INPUT (absolute paths, one unreadable); ``coco``: boxes of
    the ground-truth objects plus one box per image in a corner; ``names``: the images."""

    root: Path
    images: Path
    coco: Path
    names: tuple[str, ...]
    broken: Path


def _coco(folder: Path, masks: Path, names: tuple[str, ...]) -> dict:
    from PIL import Image

    images, annotations = [], []
    for i, name in enumerate(names, start=1):
        gt = np.array(Image.open(masks / (Path(name).stem + ".bmp")).convert("L")) == 255
        ys, xs = np.nonzero(gt)
        height, width = gt.shape
        images.append(
            {"id": 10 * i, "file_name": name, "width": width, "height": height, "license": 7}
        )
        x0, y0 = int(xs.min()), int(ys.min())
        annotations.append(
            {
                "id": 100 * i,
                "image_id": 10 * i,
                "category_id": 1,
                "bbox": [x0, y0, int(xs.max()) - x0 + 1, int(ys.max()) - y0 + 1],
                "iscrowd": 0,
                "area": 1.5,
                "source": "ground truth",
            }
        )
        # A box overhanging the image by a fraction of a pixel, as detectors write them.
        annotations.append(
            {"id": 100 * i + 1, "image_id": 10 * i, "category_id": 2, "bbox": [0, 0, 60.5, 40]}
        )
    images.append({"id": 999, "file_name": "broken.jpg", "width": 10, "height": 10})
    annotations.append({"id": 9990, "image_id": 999, "category_id": 1, "bbox": [1, 1, 5, 5]})
    annotations.append({"id": 9991, "image_id": 10, "category_id": 1, "segmentation": []})
    return {
        "info": {"description": "GrabCut boxes for samedge batch tests"},
        "licenses": [{"id": 7, "name": "research"}],
        "images": images,
        "annotations": annotations,
        "categories": [{"id": 1, "name": "object"}, {"id": 2, "name": "corner"}],
    }


@pytest.fixture(scope="session")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    grabcut = shared_path("data", "interactive", "GrabCut")
    root = tmp_path_factory.mktemp("batch-data")
    broken = root / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    names = GRABCUT
    lines = [str(grabcut / "data_GT" / name) for name in names] + [str(broken)]
    images = root / "images.txt"
    images.write_text("# GrabCut images\n" + "\n".join(lines) + "\n")
    coco = root / "coco.json"
    coco.write_text(json.dumps(_coco(grabcut / "data_GT", grabcut / "boundary_GT", names)))
    return Dataset(root, images, coco, names, broken)


@pytest.fixture(scope="session")
def model_dir(export_test_model) -> Path:
    return export_test_model(MODEL)


@dataclass(frozen=True)
class Reference:
    out: Path
    merged: bytes
    summary: object


@pytest.fixture(scope="session")
def reference(dataset: Dataset, model_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    """An uninterrupted ``--boxes`` run with two worker processes."""
    from samedge.batch import BatchJob, BatchOptions, run_batch

    out = tmp_path_factory.mktemp("batch-reference")
    job = BatchJob(model=str(model_dir), mode="boxes", out=str(out))
    summary = run_batch(str(dataset.images), job, BatchOptions(workers=2), prompts=dataset.coco)
    return Reference(out, (out / "masks.json").read_bytes(), summary)
