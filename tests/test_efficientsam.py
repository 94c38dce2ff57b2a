"""EfficientSAM: the official checkpoint formats, and the exported graphs against the
official model called as its example calls it (the network itself:
``test_efficientsam_network.py``).

The official code has no package; ``../shared/reference/EfficientSAM`` holds it unchanged
(see its SOURCE.md) and is put on ``sys.path`` here, for these comparisons only.
"""

from __future__ import annotations

import sys
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from samedge import Predictor
from samedge.errors import PromptError
from samedge.imageio import load_image
from samedge.maskutils import mask_iou
from samedge.registry import get_spec

from .conftest import PARITY_PHOTOS, SHARED, requires_export, shared_path
from .test_parity import _cases

pytestmark = [requires_export, pytest.mark.export]

MIN_IOU = 0.99
MAX_SCORE_DIFF = 1e-3
#: The family's smallest variant in the default run; ViT-S (the same code with a wider
#: encoder: a 30 s export and about 20 s a photo on 2 cores) in the ``full`` run.
BY_HAND = [pytest.mark.slow, pytest.mark.full]
VARIANTS = ["efficientsam_ti", pytest.param("efficientsam_s", marks=BY_HAND)]


def _photo_cases() -> list[Any]:
    """Each variant on every photo (ViT-S by hand)."""
    cases = []
    for name in ("efficientsam_ti", "efficientsam_s"):
        marks = BY_HAND if name == "efficientsam_s" else []
        for photo in PARITY_PHOTOS:
            cases.append(pytest.param(name, photo, marks=marks, id=f"{name}-{photo}"))
    return cases


@pytest.fixture(scope="module", autouse=True)
def _official_code() -> Any:
    """``efficient_sam`` importable from the reference folder for this module's tests."""
    folder = SHARED / "reference" / "EfficientSAM"
    if not (folder / "efficient_sam").is_dir():
        pytest.skip(f"{folder} not found: the official EfficientSAM code is not beside this")
    sys.path.insert(0, str(folder))
    yield
    sys.path.remove(str(folder))


def test_official_checkpoint_formats_load(torch_model: Any, tmp_path: Path) -> None:
    """The official files: ``{"model": state_dict}``, ViT-S's zipped; weights_only loads."""
    import torch

    from samedge.export.build import build_model

    name = "efficientsam_ti"
    ours = torch_model(name)
    plain = tmp_path / "efficient_sam_vitt.pt"
    torch.save({"model": ours.state_dict()}, plain)
    zipped = tmp_path / "efficient_sam_vitt.pt.zip"
    with zipfile.ZipFile(zipped, "w") as archive:
        archive.write(plain, plain.name)
    image = torch.randn(1, 3, 1024, 1024, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = ours.image_encoder(image)
        for path in (plain, zipped):
            loaded = build_model(get_spec(name), checkpoint=path)
            torch.testing.assert_close(loaded.image_encoder(image), expected, rtol=0, atol=0)


@pytest.fixture(scope="module")
def pair(request: pytest.FixtureRequest, export_test_model: Any, torch_model: Any) -> tuple:
    """(samedge predictor, the official model behind ``SamPredictor``'s methods)."""
    from samedge.export.build import official_predictor

    name = request.param
    official = official_predictor(get_spec(name), torch_model(name))
    return Predictor.from_pretrained(export_test_model(name)), official


def _official(official: Any, case: dict[str, Any], multimask: bool) -> tuple:
    return official.predict(
        point_coords=np.array(case["points"]) if "points" in case else None,
        point_labels=np.array(case["labels"]) if "labels" in case else None,
        box=case.get("box"),
        multimask_output=multimask,
    )


def _compare(ours: Any, row: int, ref: tuple, what: str, problems: list[str]) -> int:
    """Masks, scores and low-res logits of prompt set ``row``; returns the non-empty count."""
    ref_masks, ref_scores, ref_low = ref
    assert ours.masks[row].shape == ref_masks.shape, what
    nonempty = 0
    for k, ref_mask in enumerate(ref_masks):
        if ref_mask.any():
            nonempty += 1
            iou = mask_iou(ours.masks[row, k], ref_mask)
            if iou < MIN_IOU:
                problems.append(f"{what} mask {k}: IoU {iou:.4f}")
    if np.max(np.abs(ours.scores[row] - ref_scores)) > MAX_SCORE_DIFF:
        problems.append(f"{what}: scores {ours.scores[row]} vs {ref_scores}")
    low_diff = np.max(np.abs(ours.low_res_logits[row] - ref_low))
    if low_diff > 1e-3 * max(1.0, float(np.abs(ref_low).max())):
        problems.append(f"{what}: low-res logits differ by {low_diff:.2e}")
    return nonempty


@pytest.mark.parametrize(("pair", "photo"), _photo_cases(), indirect=["pair"])
def test_parity_with_official_example(pair: tuple, photo: str) -> None:
    ours, official = pair
    image = load_image(shared_path("data", "images", photo))
    h, w = image.shape[:2]
    embedding = ours.encode(image)
    official.set_image(image)
    cases = _cases(w, h)  # the same prompts as the other families' parity test
    problems: list[str] = []
    nonempty = 0
    for what, case in cases.items():
        for multimask in (True, False):
            got = ours.predict(embedding, multimask_output=multimask, **case)
            ref = _official(official, case, multimask)
            nonempty += _compare(got, 0, ref, f"{what} mm={multimask}", problems)

    # Several boxes in one call: one query per box, as the official model takes them.
    boxes = np.array(
        [
            [0.1 * w, 0.1 * h, 0.5 * w, 0.6 * h],
            [0.4 * w, 0.3 * h, 0.95 * w, 0.9 * h],
            [0, 0.5 * h, 0.3 * w, h],
        ]
    )
    got = ours.predict(embedding, boxes=boxes)
    ref_masks, ref_scores, ref_low = official.predict(box=boxes)
    assert got.masks.shape == (3, 3, h, w) and ref_masks.shape == (3, 3, h, w)
    for i in range(3):
        ref_i = (ref_masks[i], ref_scores[i], ref_low[i])
        nonempty += _compare(got, i, ref_i, f"box {i} of 3", problems)

    assert nonempty > 0, "every reference mask was empty: the test would prove nothing"
    assert not problems, "; ".join(problems)


@pytest.mark.parametrize("pair", VARIANTS, indirect=True)
def test_prompts_the_model_cannot_take(pair: tuple) -> None:
    """No mask prompt, and no more points than the official model keeps: one clear error
    each, instead of a mask from a prompt the model silently cut."""
    ours, _ = pair
    image = load_image(shared_path("data", "images", PARITY_PHOTOS[0]))
    embedding = ours.encode(image)
    first = ours.predict(embedding, points=[[100, 100]], labels=[1])
    with pytest.raises(PromptError, match="takes no mask prompt"):
        ours.predict(
            embedding, points=[[100, 100]], labels=[1], mask_input=first.low_res_logits[0, :1]
        )
    six = [[50 + 40 * i, 100] for i in range(6)]
    assert ours.predict(embedding, points=six, labels=[1] * 6).masks.shape[1] == 3
    with pytest.raises(PromptError, match="at most 6 points"):
        ours.predict(embedding, points=six[:5], labels=[1] * 5, box=[10, 10, 300, 300])
    assert not ours.artifact.has("decoder_mask")
