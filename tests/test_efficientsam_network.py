"""EfficientSAM's network in samedge's own code (:mod:`samedge.export.efficientsam`)
against the official code on the same seeded random weights.

The official code has no package; ``../shared/reference/EfficientSAM`` holds it unchanged
(see its SOURCE.md) and is put on ``sys.path`` for these comparisons only.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest

from .conftest import SHARED, TEST_SEED

pytestmark = pytest.mark.export

REFERENCE = SHARED / "reference" / "EfficientSAM"
#: ViT-S by hand (``full``), as its parity test: the issue's rule, the smallest variant of
#: each family in the default run.
VARIANTS = ["vit_t", pytest.param("vit_s", marks=[pytest.mark.slow, pytest.mark.full])]


@pytest.fixture(scope="module", autouse=True)
def official_code() -> Iterator[None]:
    """``efficient_sam`` importable from the reference folder for this module's tests."""
    pytest.importorskip("torch")
    if not (REFERENCE / "efficient_sam").is_dir():
        pytest.skip(f"{REFERENCE} not found: the official EfficientSAM code is not beside this")
    sys.path.insert(0, str(REFERENCE))
    yield
    sys.path.remove(str(REFERENCE))


@pytest.mark.parametrize("variant", VARIANTS)
def test_network_equals_official(variant: str) -> None:
    """Same seeded weights (loaded strictly: every tensor name matches), same encoder
    embedding, same logits and IoU of every mask token for points, padding and a box."""
    import torch

    from samedge.export.build import randomize_
    from samedge.export.efficientsam import build_efficientsam
    from samedge.export.efficientsam_example import official_model

    ours = build_efficientsam(variant)
    randomize_(ours, TEST_SEED)
    official = official_model(ours)
    gen = torch.Generator().manual_seed(TEST_SEED)
    image = torch.rand(1, 3, 700, 900, generator=gen)  # stretched to 1024 by the official
    with torch.no_grad():
        ref_emb = official.get_image_embeddings(image)
        x = torch.nn.functional.interpolate(image, (1024, 1024), mode="bilinear")
        mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
        std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
        emb = ours.image_encoder((x - mean) / std)
        torch.testing.assert_close(emb, ref_emb, rtol=0, atol=1e-5)
        assert ref_emb.abs().max() > 0.1

        # Two queries: points with a background click and padding; a box and a point.
        pts = torch.tensor(
            [[[[100.0, 200], [500, 600], [-1, -1]], [[10.0, 20], [900, 680], [300, 300]]]]
        )
        lbl = torch.tensor([[[1.0, 0, -1], [2, 3, 1]]])
        masks, iou = ours.decode(ref_emb, pts[0] * 1024 / torch.tensor([900.0, 700.0]), lbl[0])
        for multimask, tokens in ((True, slice(1, None)), (False, slice(0, 1))):
            ref_masks, ref_iou = official.predict_masks(
                ref_emb, pts, lbl, multimask, input_h=700, input_w=900
            )
            torch.testing.assert_close(masks[:, tokens], ref_masks[0], rtol=0, atol=1e-5)
            torch.testing.assert_close(iou[:, tokens], ref_iou[0], rtol=0, atol=1e-6)
        assert ref_masks.abs().max() > 0.1


def test_prompts_are_padded_and_cut_to_six_points() -> None:
    """The graph-friendly padding equals the official ``F.pad`` / slice of prompt sets,
    and padding points the host adds (label -1 anywhere) become official padding."""
    import torch

    from samedge.export.efficientsam import MAX_POINTS, PromptEncoder

    coords = torch.tensor([[[10.0, 20.0], [0.0, 0.0]], [[-3.0, 5.0], [7.0, 8.0]]])
    labels = torch.tensor([[1.0, -1.0], [0.0, 1.0]])
    padded, padded_labels = PromptEncoder.padded(coords, labels)
    assert padded.shape == (2, MAX_POINTS, 2) and padded_labels.shape == (2, MAX_POINTS)
    assert padded[0, 0].tolist() == [10.0, 20.0] and padded[0, 1].tolist() == [-1.0, -1.0]
    assert padded[1, 0].tolist() == [-1.0, 5.0]  # a negative coordinate alone becomes -1
    assert (padded[:, 2:] == -1).all() and (padded_labels[:, 2:] == -1).all()
    long = torch.arange(16.0).reshape(1, 8, 2)
    cut, cut_labels = PromptEncoder.padded(long, torch.ones(1, 8))
    assert torch.equal(cut, long[:, :MAX_POINTS]) and cut_labels.shape == (1, MAX_POINTS)
