"""MobileSAM's builder: the weights that the export and the official predictor run with.

The parity tests compare samedge with the official predictor on the same built model, so
they cannot see a weight that the built model itself ignores. TinyViT's attention keeps an
eval-mode copy of its bias table (``ab``), computed when ``eval()`` is called: built before
its weights are set, the model would silently run with the default (zero) biases.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from samedge.registry import get_spec

from .conftest import TEST_SEED, requires_export

pytestmark = [requires_export, pytest.mark.export]

NAME = "mobile_sam"


def _attention_tables(model: Any) -> list[tuple[Any, Any]]:
    """(eval-mode table, table from the parameters) of every TinyViT attention."""
    return [
        (m.ab, m.attention_biases[:, m.attention_bias_idxs])
        for m in model.image_encoder.modules()
        if hasattr(m, "attention_biases")
    ]


def test_attention_bias_tables_follow_the_weights(torch_model: Any, tmp_path: Path) -> None:
    import torch

    from samedge.export.build import build_model

    model = torch_model(NAME)
    tables = _attention_tables(model)
    assert len(tables) == 10  # TinyViT-5M: 2 + 6 + 2 attention blocks
    for ab, expected in tables:
        assert expected.abs().max() > 0  # seeded noise, not the zero default
        torch.testing.assert_close(ab, expected, rtol=0, atol=0)

    # The official checkpoint format is a plain state dict (mobile_sam's build_sam_vit_t
    # loads it into the model strictly); weights_only loading gives the same network.
    ckpt = tmp_path / "mobile_sam.pt"
    torch.save(model.state_dict(), ckpt)
    loaded = build_model(get_spec(NAME), checkpoint=ckpt)
    for (_, expected), (ab_loaded, _) in zip(tables, _attention_tables(loaded), strict=True):
        torch.testing.assert_close(ab_loaded, expected, rtol=0, atol=0)
    image = torch.randn(1, 3, 1024, 1024, generator=torch.Generator().manual_seed(TEST_SEED))
    with torch.no_grad():
        torch.testing.assert_close(loaded.image_encoder(image), model.image_encoder(image))
