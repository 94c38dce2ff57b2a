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
from samedge.cli.main import main
from samedge.errors import ArtifactError

from .conftest import CheckpointExport, requires_export, shared_path

pytestmark = [requires_export, pytest.mark.export]


def test_the_manifest_records_the_size_and_the_runtime_uses_it(
    small_checkpoint_export: CheckpointExport,
) -> None:
    folder, size = small_checkpoint_export.folder, small_checkpoint_export.image_size
    assert size < 1024
    grid, low = size // 16, size // 4  # the embedding grid and the low-res logits
    manifest = json.loads((folder / "samedge.json").read_text())
    assert manifest["model"] == "sam2.1_hiera_tiny"
    assert manifest["extra"]["image_size"] == size
    assert manifest["parity"]["passed"] and manifest["parity"]["video_passed"]
    spec = ModelArtifact.open(folder).spec
    assert (spec.image_size, spec.embedding_shape, spec.low_res_size) == (
        size,
        (256, grid, grid),
        low,
    )

    image = np.asarray(Image.open(shared_path("data", "images", "dogs.jpg")).convert("RGB"))
    with Predictor.from_pretrained(folder) as predictor:
        embedding = predictor.encode(image)
        assert embedding.image_embeddings.shape == (1, 256, grid, grid)
        shapes = [f.shape for f in embedding.high_res_features]
        assert shapes == [(1, 32, 4 * grid, 4 * grid), (1, 64, 2 * grid, 2 * grid)]
        h, w = image.shape[:2]
        first = predictor.predict(embedding, points=[[w / 2, h / 2]], labels=[1])
        assert first.low_res_logits.shape == (1, 3, low, low)
        assert first.masks.shape == (1, 3, h, w)
        # A refinement takes the low-res logits back as its mask prompt.
        best = first.low_res_logits[0, int(np.argmax(first.scores[0]))]
        again = predictor.predict(embedding, points=[[w / 2, h / 2]], labels=[1], mask_input=best)
        assert again.low_res_logits.shape[-2:] == (low, low)


@pytest.mark.parametrize("value", [500, "512", 0])
def test_a_wrong_recorded_size_is_one_line_naming_the_fix(
    small_checkpoint_export: CheckpointExport, tmp_path: Path, value: object
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


def test_the_cache_folder_of_an_export_at_another_size_opens_by_its_name(
    small_checkpoint_export: CheckpointExport, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``samedge export NAME --image-size N`` writes ``<cache>/models/NAME-Npx``; ``--model
    NAME-Npx`` opens it, or names the command that makes it."""
    from samedge.artifacts import resolve_model
    from samedge.errors import ModelNotFoundError

    monkeypatch.setenv("SAMEDGE_HOME", str(tmp_path))
    size = small_checkpoint_export.image_size
    name = f"sam2.1_hiera_tiny-{size}px"
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / name).symlink_to(small_checkpoint_export.folder)
    assert resolve_model(name).spec.image_size == size
    # what segment's JSON names: the model a --model option gives back
    out, mask = tmp_path / "result.json", tmp_path / "mask.png"
    image = shared_path("data", "images", "truck.jpg")
    args = ["segment", str(image), "--model", name, "--point", "500,375"]
    args += ["--out", str(mask), "--json", str(out)]
    assert main(args) == 0
    assert json.loads(out.read_text())["model"] == name
    with pytest.raises(
        ModelNotFoundError, match=r"run 'samedge export sam2\.1_hiera_tiny --image-size 384'"
    ):
        resolve_model("sam2.1_hiera_tiny-384px")
    with pytest.raises(ModelNotFoundError, match=r"unknown model 'sam2\.1_hiera_tiny-big'"):
        resolve_model("sam2.1_hiera_tiny-big")


def _link(src: str, dst: str) -> None:
    Path(dst).symlink_to(src)
