"""``samedge everything``: files written, their content, and clear errors."""

from __future__ import annotations

import json
import re

import cv2
import numpy as np
import pytest

from samedge.cli.main import main
from samedge.maskutils import rle_decode

from .conftest import requires_export, shared_path

LOWERED = [
    "--points-per-side",
    "2",
    "--pred-iou-thresh",
    "0.5",
    "--stability-score-offset",
    "0.1",
    "--stability-score-thresh",
    "0.3",
    "--box-nms-thresh",
    "1.0",
]


@requires_export
@pytest.mark.slow
@pytest.mark.export
def test_everything_writes_json_overlay_and_pngs(export_test_model, tmp_path, capsys):
    model = export_test_model("sam2.1_hiera_tiny")
    image = shared_path("data", "images", "groceries.jpg")
    out, overlay, pngs = tmp_path / "masks.json", tmp_path / "overlay.png", tmp_path / "pngs"
    pngs.mkdir()  # an earlier run's masks beyond this run's count were left beside the new
    for name in ("mask_0999.png", "mask_10000.png", "notes.png", "mask_x.png"):
        (pngs / name).write_bytes(b"earlier")
    code = main(
        ["everything", str(image), "--model", str(model), *LOWERED, "--out", str(out),
         "--overlay", str(overlay), "--png-dir", str(pngs), "--quiet"]
    )  # fmt: skip
    assert code == 0
    doc = json.loads(out.read_text())
    assert doc["model"] == "sam2.1_hiera_tiny"
    assert doc["image"]["width"] == 800 and doc["image"]["height"] == 534
    assert doc["settings"]["points_per_side"] == 2
    # the options not given keep the official defaults of the family
    assert doc["settings"]["points_per_batch"] == 64 and doc["settings"]["crop_n_layers"] == 0
    assert doc["settings"]["output_mode"] == "coco_rle" and doc["settings"]["fast"] is False
    assert doc["stats"]["prompts"] == 4
    anns = doc["annotations"]
    assert len(anns) >= 1
    assert {"notes.png", "mask_x.png"} <= {p.name for p in pngs.iterdir()}  # not samedge's
    files = sorted(p for p in pngs.glob("mask_*.png") if p.stem[5:].isdigit())
    assert len(files) == len(anns)
    for ann, path in zip(anns, files, strict=True):
        mask = rle_decode(ann["segmentation"])
        assert mask.shape == (534, 800)
        assert int(mask.sum()) == ann["area"]
        x, y, w, h = ann["bbox"]
        ys, xs = np.nonzero(mask)
        assert (x, y, x + w, y + h) == (xs.min(), ys.min(), xs.max(), ys.max())
        assert 0.5 < ann["predicted_iou"] <= 1 and ann["stability_score"] >= 0.3
        assert ann["crop_box"] == [0, 0, 800, 534]
        assert len(ann["point_coords"]) == 1
        np.testing.assert_array_equal(cv2.imread(str(path), cv2.IMREAD_GRAYSCALE) > 0, mask)
    picture = cv2.imread(str(overlay))
    assert picture.shape == (534, 800, 3)
    original = cv2.imread(str(image))
    assert np.abs(picture.astype(int) - original).mean() > 5  # masks are drawn
    printed = capsys.readouterr().out
    assert "masks from 4 prompts" in printed and "masks drawn for 4 of 4 points" in printed


@requires_export
@pytest.mark.slow
@pytest.mark.export
def test_everything_polygons_and_fast(export_test_model, tmp_path):
    model = export_test_model("sam2.1_hiera_tiny")
    image = shared_path("data", "images", "groceries.jpg")
    out = tmp_path / "masks.json"
    args = ["everything", str(image), "--model", str(model), *LOWERED, "--out", str(out)]
    assert main([*args, "--output-mode", "polygons", "--fast", "--quiet"]) == 0
    doc = json.loads(out.read_text())
    assert doc["settings"]["fast"] is True
    assert doc["stats"]["prompts"] == 1  # coarse grid of the 2x2 grid, the rest covered
    for ann in doc["annotations"]:
        assert ann["segmentation"] and all(len(p) >= 6 for p in ann["segmentation"])


@requires_export
@pytest.mark.export
def test_everything_threshold_out_of_range_is_one_line(export_test_model, tmp_path, capsys):
    model = export_test_model("sam2.1_hiera_tiny")
    image = tmp_path / "img.png"
    cv2.imwrite(str(image), np.zeros((8, 8, 3), np.uint8))
    out = tmp_path / "m.json"
    code = main(
        ["everything", str(image), "--model", str(model), "--out", str(out),
         "--pred-iou-thresh", "1.5", "--quiet"]
    )  # fmt: skip
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err == "samedge: error: pred_iou_thresh must be in [0, 1], got 1.5"
    assert not out.exists()


@requires_export
@pytest.mark.export
def test_everything_empty_union_scores_0_and_writes_strict_json(export_test_model, tmp_path):
    # A mask threshold above every logit leaves the union empty: the official code's 0 / 0
    # gave NaN, written as a bare NaN token no strict JSON reader accepts.
    model = export_test_model("sam2.1_hiera_tiny")
    image = shared_path("data", "images", "groceries.jpg")
    out = tmp_path / "masks.json"
    code = main(
        ["everything", str(image), "--model", str(model), "--out", str(out), "--quiet",
         "--points-per-side", "1", "--mask-threshold", "1000", "--pred-iou-thresh", "0",
         "--stability-score-offset", "0.05", "--stability-score-thresh", "0"]
    )  # fmt: skip
    assert code == 0

    def reject(token: str) -> None:
        raise AssertionError(f"{out.name} holds {token}")

    anns = json.loads(out.read_text(), parse_constant=reject)["annotations"]
    assert anns and all(ann["stability_score"] == 0 for ann in anns)


def test_everything_rejects_bad_output_paths(tmp_path, capsys):
    image = tmp_path / "img.png"
    cv2.imwrite(str(image), np.zeros((8, 8, 3), np.uint8))
    code = main(["everything", str(image), "--model", "x", "--out", str(tmp_path / "m.txt")])
    assert code == 2
    assert "--out must be a .json file" in capsys.readouterr().err
    code = main(
        ["everything", str(image), "--model", "x", "--out", str(tmp_path / "m.json"),
         "--overlay", str(tmp_path / "o.jpg")]
    )  # fmt: skip
    assert code == 2
    assert "--overlay must be a .png file" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["img.png"]


@pytest.mark.parametrize("threads", ["0", "-2"])
def test_everything_threads_must_be_positive(threads, tmp_path, capsys):
    # add_runtime_options: --threads 0 meant "all cores" and -2 a ValueError traceback
    image = tmp_path / "img.png"
    cv2.imwrite(str(image), np.zeros((8, 8, 3), np.uint8))
    args = ["everything", str(image), "--model", "x", "--out", str(tmp_path / "m.json")]
    with pytest.raises(SystemExit) as info:
        main([*args, "--threads", threads])
    assert info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.endswith(f"argument --threads: expected a positive integer, got '{threads}'")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["img.png"]


def test_everything_unknown_model_is_one_line(tmp_path, capsys):
    image = tmp_path / "img.png"
    cv2.imwrite(str(image), np.zeros((8, 8, 3), np.uint8))
    code = main(
        ["everything", str(image), "--model", "no_such_model", "--out", str(tmp_path / "m.json")]
    )
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("samedge: error:") and "\n" not in err
    assert not (tmp_path / "m.json").exists()


@requires_export
@pytest.mark.export
def test_generator_reuses_a_given_whole_image_embedding(export_test_model):
    from samedge import Predictor
    from samedge.amg import MaskGenerator
    from samedge.errors import SamedgeError
    from samedge.imageio import load_image

    predictor = Predictor.from_pretrained(export_test_model("sam2.1_hiera_tiny"))
    image = load_image(shared_path("data", "images", "groceries.jpg"))
    generator = MaskGenerator(
        predictor, points_per_side=4, pred_iou_thresh=0.0, stability_score_thresh=0.0
    )
    fresh = generator.generate_masks(image)
    embedding = predictor.encode(image)
    reused = generator.generate_masks(image, embedding=embedding)
    assert fresh.stats["encode_s"] > 0 and reused.stats["encode_s"] == 0
    a, b = reused.records(), fresh.records()
    assert len(a) == len(b) > 0
    assert all(
        np.array_equal(x["segmentation"], y["segmentation"]) for x, y in zip(a, b, strict=True)
    )
    with pytest.raises(SamedgeError, match=r"embedding is of a 800x534 image .* not of this"):
        generator.generate_masks(image[:100], embedding=embedding)


def test_help_gives_each_familys_official_default(capsys):
    from samedge.registry import get_spec, list_models

    with pytest.raises(SystemExit):
        main(["everything", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for name in list_models():
        spec = get_spec(name)
        # "0.88 for sam and mobile_sam, 0.8 for sam2": families sharing a default are grouped
        value = re.escape(f"{spec.amg.pred_iou_thresh:g}")
        assert re.search(rf"{value} for [\w ]*\b{spec.family}\b", text), spec.family
