"""``samedge segment --auto`` and ``segment_auto`` on a real photo with a test model."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from samedge.cli.main import main
from samedge.saliency import NoSalientObjectError, auto_prompt, segment_auto
from tests.conftest import shared_path

MODEL = "mobile_sam"


@pytest.fixture(scope="module")
def photo() -> Path:
    return shared_path("data", "interactive", "GrabCut", "data_GT", "teddy.jpg")


def test_cli_auto_writes_the_five_clicks(
    export_test_model: Callable[[str], Path],
    photo: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    model = export_test_model(MODEL)
    out, overlay, report = tmp_path / "m.png", tmp_path / "o.png", tmp_path / "r.json"
    args = ["segment", str(photo), "--model", str(model), "--auto", "--out", str(out)]
    assert main([*args, "--overlay", str(overlay), "--json", str(report)]) == 0
    data = json.loads(report.read_text())
    auto = data["auto"]
    assert auto["backend"] == "classic" and len(auto["points"]) == 5
    assert auto["sections"][0] == "blob" and auto["labels"] == [1] * 5
    assert data["prompts"]["points"] == auto["points"] and data["prompts"]["labels"] == [1] * 5
    expected = auto_prompt(np.asarray(Image.open(photo).convert("RGB")))
    np.testing.assert_allclose(auto["points"], expected.points)
    assert len(data["masks"]) == 1 and out.is_file()
    # The overlay draws the clicks: it differs from the image at each of them.
    drawn = np.asarray(Image.open(overlay).convert("RGB")).astype(int)
    image = np.asarray(Image.open(photo).convert("RGB")).astype(int)
    for x, y in expected.points:
        assert np.abs(drawn[round(y), round(x)] - image[round(y), round(x)]).sum() > 30
    capsys.readouterr()


def test_cli_auto_without_a_blob_writes_nothing(
    export_test_model: Callable[[str], Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = export_test_model(MODEL)
    flat = tmp_path / "flat.png"
    Image.fromarray(np.full((120, 160, 3), 90, np.uint8)).save(flat)
    outputs = [tmp_path / "m.png", tmp_path / "o.png", tmp_path / "r.json"]
    files = ["--out", str(outputs[0]), "--overlay", str(outputs[1]), "--json", str(outputs[2])]
    code = main(["segment", str(flat), "--model", str(model), "--auto", *files])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "no salient object" in err
    assert not any(p.exists() for p in outputs)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["flat.png"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--auto", "--point", "5,5"], "--auto makes its own clicks"),
        (["--saliency-model", "x.onnx", "--point", "5,5"], "--saliency-model is for --auto"),
        ([], "or --auto"),
    ],
)
def test_cli_auto_option_errors(
    photo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    out = tmp_path / "m.png"
    code = main(["segment", str(photo), "--model", "sam_vit_b", "--out", str(out), *extra])
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1 and not out.exists()


def test_segment_auto_api(export_test_model: Callable[[str], Path], photo: Path) -> None:
    from samedge import Predictor
    from samedge.imageio import load_image

    image = load_image(photo)
    with Predictor.from_pretrained(export_test_model(MODEL)) as predictor:
        result = segment_auto(predictor, image)
        assert result.prompt.points.shape == (5, 2)
        assert result.mask.shape == image.shape[:2] and result.mask.dtype == np.bool_
        again = predictor.predict(
            result.embedding,
            points=result.prompt.points,
            labels=result.prompt.labels,
            multimask_output=False,
        )
        np.testing.assert_array_equal(again.masks[0, 0], result.mask)
        with pytest.raises(NoSalientObjectError):
            segment_auto(predictor, np.zeros((64, 64, 3), np.uint8))
        # The Predictor-level convenience takes a path and gives the same clicks and mask.
        same = predictor.segment_auto(photo)
        np.testing.assert_array_equal(same.prompt.points, result.prompt.points)
        np.testing.assert_array_equal(same.mask, result.mask)
