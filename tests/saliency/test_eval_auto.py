"""``samedge eval --protocol auto``: the saliency prompt per image, blob IoU, clicks inside,
and an image with no salient blob counted as a miss."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from samedge.cli.main import main
from samedge.eval import parse_protocols

MODEL = "mobile_sam"


def _dataset(root: Path) -> Path:
    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    gray = np.full((240, 320), 40.0)
    gray[100:140, 180:220] = 230
    gray = np.clip(gray + rng.normal(0, 4, gray.shape), 0, 255).astype(np.uint8)
    mask = np.zeros((240, 320), np.uint8)
    mask[100:140, 180:220] = 255
    Image.fromarray(np.repeat(gray[..., None], 3, axis=2)).save(root / "images" / "patch.png")
    Image.fromarray(mask).save(root / "masks" / "patch.png")
    Image.fromarray(np.full((240, 320, 3), 90, np.uint8)).save(root / "images" / "flat.png")
    Image.fromarray(mask).save(root / "masks" / "flat.png")
    return root


def test_auto_is_a_protocol() -> None:
    assert parse_protocols("auto,center") == ("auto", "center")


def test_eval_auto(
    export_test_model: Callable[[str], Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _dataset(tmp_path / "data")
    out = tmp_path / "out"
    args = ["eval", "--model", str(export_test_model(MODEL)), "--dataset", str(data)]
    code = main([*args, "--format", "folder", "--protocol", "auto", "--out", str(out), "--quiet"])
    assert code == 0
    line = capsys.readouterr().out.splitlines()[0]
    assert line.startswith("auto: 2 samples") and "no blob 1" in line
    records = {
        r["sample_id"]: r for r in map(json.loads, (out / "records.jsonl").read_text().splitlines())
    }
    flat, patch = records["flat"], records["patch"]
    assert flat["iou"] == 0.0 and flat["prompt"]["saliency"]["clicks"] == 0
    quality = patch["prompt"]["saliency"]
    assert quality["backend"] == "classic" and quality["clicks"] == 5
    assert quality["clicks_inside"] >= 3 and 0.2 < quality["blob_iou"] <= 1.0
    assert len(patch["prompt"]["points"]) == 5 and patch["prompt"]["multimask_output"] is False
    summary = json.loads((out / "summary.json").read_text())["protocols"]["auto"]
    assert summary["saliency"]["no_blob"] == 1
    assert summary["saliency"]["blob_miou"] == pytest.approx(quality["blob_iou"] / 2)
    assert summary["miou"] == pytest.approx(patch["iou"] / 2)
    assert "Saliency alone (auto, classic)" in (out / "summary.md").read_text()


def test_eval_auto_against_a_second_model_gives_it_the_same_clicks(
    export_test_model: Callable[[str], Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _dataset(tmp_path / "data")
    out = tmp_path / "out"
    model = str(export_test_model(MODEL))
    args = ["eval", "--model", model, "--against", model, "--dataset", str(data)]
    code = main([*args, "--format", "folder", "--protocol", "auto", "--out", str(out), "--quiet"])
    assert code == 0
    capsys.readouterr()
    fidelity = json.loads((out / "summary.json").read_text())["fidelity"]["auto"]
    # One prompt (the image with a blob); the same export given the same clicks agrees.
    assert fidelity["prompts"] == 1 and fidelity["mean_iou"] == pytest.approx(1.0)
