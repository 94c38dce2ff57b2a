"""EfficientViT-SAM's builder: the official checkpoint formats and the model's frames.

The authors' checkpoints could not be downloaded here; the official loader
(``efficientsam.models.utils.load_state_dict_from_file``) accepts a plain state dict or one
wrapped in ``{"state_dict": ...}``, so both are checked with samedge's ``weights_only`` load.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from samedge.registry import get_spec

from .conftest import TEST_SEED, requires_export

pytestmark = [requires_export, pytest.mark.export]

NAME = "efficientvit_sam_l0"


@pytest.mark.parametrize("wrapped", [False, True])
def test_official_checkpoint_formats_load_with_weights_only(
    torch_model: Any, tmp_path: Path, wrapped: bool
) -> None:
    import torch
    from efficientsam.models.utils import load_state_dict_from_file

    from samedge.export.build import build_model

    model = torch_model(NAME)
    state = model.state_dict()
    ckpt = tmp_path / f"{NAME}.pt"
    torch.save({"state_dict": state} if wrapped else state, ckpt)
    # What the official zoo would load from the same file.
    assert load_state_dict_from_file(str(ckpt)).keys() == state.keys()
    loaded = build_model(get_spec(NAME), checkpoint=ckpt)
    image = torch.randn(1, 3, 512, 512, generator=torch.Generator().manual_seed(TEST_SEED))
    with torch.no_grad():
        torch.testing.assert_close(loaded.image_encoder(image), model.image_encoder(image))
    # Norm eps as the official zoo sets it (1e-6), not the modules' defaults.
    norms = (torch.nn.modules.batchnorm._BatchNorm, torch.nn.LayerNorm, torch.nn.GroupNorm)
    eps = {m.eps for m in loaded.image_encoder.modules() if isinstance(m, norms)}
    assert eps == {1e-6}
