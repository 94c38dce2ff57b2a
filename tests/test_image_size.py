"""A SAM 2 export at another input size (``ModelSpec.at_image_size``): what its manifest
records, and how the runtime reads it back."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from samedge import Predictor
from samedge.artifacts import ModelArtifact
from samedge.errors import ArtifactError

from .conftest import SmallExport, requires_export, shared_path

pytestmark = [requires_export, pytest.mark.export]


def test_the_manifest_records_the_size_and_the_runtime_uses_it(
    small_checkpoint_export: SmallExport,
) -> None:
    folder = small_checkpoint_export.folder
    manifest = json.loads((folder / "samedge.json").read_text())
    assert manifest["model"] == "sam2.1_hiera_tiny"
    assert manifest["extra"]["image_size"] == 512
    assert manifest["parity"]["passed"] and manifest["parity"]["video_passed"]
    spec = ModelArtifact.open(folder).spec
    assert (spec.image_size, spec.embedding_shape, spec.low_res_size) == (512, (256, 32, 32), 128)

    image = np.asarray(Image.open(shared_path("data", "images", "dogs.jpg")).convert("RGB"))
    with Predictor.from_pretrained(folder) as predictor:
        embedding = predictor.encode(image)
        assert embedding.image_embeddings.shape == (1, 256, 32, 32)
        shapes = [f.shape for f in embedding.high_res_features]
        assert shapes == [(1, 32, 128, 128), (1, 64, 64, 64)]
        h, w = image.shape[:2]
        first = predictor.predict(embedding, points=[[w / 2, h / 2]], labels=[1])
        assert first.low_res_logits.shape == (1, 3, 128, 128)
        assert first.masks.shape == (1, 3, h, w)
        # A refinement takes the 128 x 128 logits back as its mask prompt.
        best = first.low_res_logits[0, int(np.argmax(first.scores[0]))]
        again = predictor.predict(embedding, points=[[w / 2, h / 2]], labels=[1], mask_input=best)
        assert again.low_res_logits.shape[-2:] == (128, 128)


@pytest.mark.parametrize("value", [500, "512", 0])
def test_a_wrong_recorded_size_is_one_line_naming_the_fix(
    small_checkpoint_export: SmallExport, tmp_path: Path, value: object
) -> None:
    folder = tmp_path / "model"
    shutil.copytree(small_checkpoint_export.folder, folder, copy_function=_link)
    path = folder / "samedge.json"
    manifest = json.loads(path.read_text())
    manifest["extra"]["image_size"] = value
    path.unlink()
    path.write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match=r"extra\.image_size is wrong .*; re-export the model"):
        ModelArtifact.open(folder)


def _link(src: str, dst: str) -> None:
    Path(dst).symlink_to(src)
