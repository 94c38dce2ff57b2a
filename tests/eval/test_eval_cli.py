"""``samedge eval`` end to end: a real exported model (random weights) on real GrabCut data,
fidelity against the official PyTorch predictor, and one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from samedge.artifacts import ModelArtifact
from samedge.cli import eval as eval_cli
from samedge.cli.main import main
from samedge.errors import SamedgeError
from samedge.eval import FORMATS, PROTOCOLS
from samedge.eval.fidelity import torch_reference
from samedge.manifest import Manifest
from samedge.registry import get_spec

from ..conftest import requires_export, shared_path

MODEL = "sam2.1_hiera_tiny"


def test_cli_choices_match_the_library() -> None:
    assert eval_cli.FORMATS == FORMATS and eval_cli.PROTOCOLS == PROTOCOLS


@pytest.mark.slow
@pytest.mark.export
@requires_export
def test_grabcut_end_to_end(export_test_model, tmp_path: Path, capsys) -> None:
    """Random weights: the numbers are meaningless, the pipeline is real."""
    grabcut = shared_path("data", "interactive", "GrabCut")
    out = tmp_path / "run"
    argv = [
        "eval", "--model", str(export_test_model(MODEL)), "--dataset", str(grabcut),
        "--format", "interactive", "--protocol", "center,box", "--protocol", "clicks",
        "--max-clicks", "3", "--limit", "2", "--out", str(out), "--no-progress",
    ]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "clicks: 2 samples, mIoU" in printed and "NoC@90" in printed
    records = [json.loads(x) for x in (out / "records.jsonl").read_text().splitlines()]
    assert [r["protocol"] for r in records] == ["center", "box", "clicks"] * 2
    for r in records:
        assert 0.0 <= r["iou"] <= 1.0
        if r["protocol"] == "clicks":
            assert 1 <= len(r["clicks"]) <= 3 and r["clicks"][0][2] == 1
            assert all(n is None or 1 <= n <= 3 for n in r["noc"].values())
    summary = json.loads((out / "summary.json").read_text())
    assert summary["images"] == 2 and summary["samples"] == 2
    assert len(summary["protocols"]["clicks"]["miou_per_click"]) == 3
    assert (out / "miou_per_click.png").stat().st_size > 1000


@pytest.mark.slow
@pytest.mark.export
@requires_export
def test_fidelity_against_official_torch_predictor(export_test_model, tmp_path: Path) -> None:
    """The fp32 export and SAM2ImagePredictor on the same (seeded) weights agree."""
    grabcut = shared_path("data", "interactive", "GrabCut")
    out = tmp_path / "fid"
    argv = [
        "eval", "--model", str(export_test_model(MODEL)), "--dataset", str(grabcut),
        "--format", "interactive", "--protocol", "center,box+center,clicks",
        "--max-clicks", "2", "--limit", "1", "--against", "torch", "--out", str(out),
        "--no-progress",
    ]  # fmt: skip
    assert main(argv) == 0
    summary = json.loads((out / "summary.json").read_text())
    fidelity = summary["fidelity"]
    assert fidelity["all"]["prompts"] == 4  # center, box+center, 2 clicks
    assert summary["embedding_error"] is None  # the official predictor keeps its embedding
    assert fidelity["all"]["mean_iou"] >= 0.99 and fidelity["all"]["min_iou"] >= 0.95
    lines = (out / "fidelity.jsonl").read_text().splitlines()
    assert len(lines) == 4


def test_torch_reference_needs_the_checkpoint(tmp_path: Path, monkeypatch) -> None:
    pytest.importorskip("torch", reason="needs the [export] extra")
    monkeypatch.setenv("SAMEDGE_HOME", str(tmp_path))
    spec = get_spec(MODEL)
    manifest = Manifest(
        model=MODEL, family=spec.family, opset=17, precision={}, files={},
        weights={"source": "checkpoint", "sha256": spec.checkpoint.sha256},
    )  # fmt: skip
    artifact = ModelArtifact(folder=tmp_path, manifest=manifest, spec=spec)
    with pytest.raises(SamedgeError, match=f"samedge models pull {MODEL}' or pass --checkpoint"):
        torch_reference(artifact)
    wrong = tmp_path / "other.pt"
    wrong.write_bytes(b"not the checkpoint")
    with pytest.raises(SamedgeError, match="sha256 differs"):
        torch_reference(artifact, checkpoint=wrong)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--format", "interactive", "--protocol", "clicks,zoom"], "unknown protocol 'zoom'"),
        (["--format", "folder"], "must hold images/ and masks/"),
        (["--format", "interactive", "--checkpoint", "x.pt"], "only used with --against torch"),
    ],
)
def test_user_errors_are_one_line(tmp_path: Path, capsys, extra, message) -> None:
    argv = ["eval", "--model", "sam2.1_hiera_tiny", "--dataset", str(tmp_path)]
    assert main([*argv, *extra, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("samedge: error: ") and message in err and "\n" not in err
    assert not (tmp_path / "out").exists()


@pytest.mark.export
@requires_export
def test_a_dataset_with_no_usable_sample_is_an_error(export_test_model, tmp_path: Path, capsys):
    """An empty dataset, or one whose every sample is skipped (here a mask stored rotated),
    printed 'center: 0 samples, mIoU nan', wrote its results and exited 0."""
    import numpy as np
    from PIL import Image

    data = tmp_path / "data"
    (data / "images").mkdir(parents=True)
    (data / "masks").mkdir()
    out = tmp_path / "out"
    argv = [
        "eval", "--model", str(export_test_model("mobile_sam")), "--dataset", str(data),
        "--format", "folder", "--protocol", "center", "--out", str(out), "--no-progress",
    ]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    hint = "no images/NAME.ext has its masks/NAME.png"
    assert err == f"samedge: error: {data} holds no usable sample: {hint}"
    Image.fromarray(np.zeros((40, 60, 3), np.uint8)).save(data / "images" / "a.png")
    mask = np.zeros((60, 40), np.uint8)
    mask[5:20, 5:20] = 255
    Image.fromarray(mask).save(data / "masks" / "a.png")
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith(f"samedge: error: {data} holds no usable sample; fix the 1 skipped: ")
    assert "a: mask a.png is 40x60 but its image is 60x40 (the mask is stored rotated" in err
    assert not out.exists()


def test_a_coco_json_with_no_usable_sample_is_an_error(tmp_path: Path, capsys) -> None:
    pytest.importorskip("pycocotools", reason="needs the [eval] extra")
    (tmp_path / "val").mkdir()
    data = {"images": [], "annotations": [], "categories": [{"id": 1, "name": "thing"}]}
    json_path = tmp_path / "instances_val.json"
    json_path.write_text(json.dumps(data))
    argv = [
        "eval", "--model", "mobile_sam", "--dataset", str(json_path), "--format", "coco",
        "--out", str(tmp_path / "out"), "--no-progress",
    ]  # fmt: skip
    assert main(argv) == 2  # before the model is looked up (mobile_sam need not be exported)
    err = capsys.readouterr().err.strip()
    hint = "no image has a non-crowd annotation"
    assert err == f"samedge: error: {json_path} holds no usable sample: {hint}"
    data["images"] = [{"id": 1, "file_name": "1.jpg", "height": 8, "width": 8}]
    data["annotations"] = [{"id": 1, "image_id": 1, "category_id": 1, "iscrowd": 1,
                            "segmentation": [[1, 1, 5, 1, 5, 5]]}]  # fmt: skip
    json_path.write_text(json.dumps(data))
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("no usable sample; fix the 1 skipped: 1#1: crowd annotation (iscrowd=1)")
    assert not (tmp_path / "out").exists()
