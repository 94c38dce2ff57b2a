"""The Point tab's **Auto** button at the engine level: the five saliency clicks become
ordinary, editable points; an image with no salient blob is a one-line message."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from samedge.saliency import NoSalientObjectError, auto_prompt
from samedge.web.engine import Choice, Engine
from samedge.web.models import ModelCatalog, PredictorPool, discover_models
from samedge.web.state import Prompts

from ..conftest import shared_path

MODEL = "mobile_sam"


@pytest.fixture(scope="module")
def engine(export_test_model: Callable[[str], Path], tmp_path_factory: pytest.TempPathFactory):
    entries = discover_models([str(export_test_model(MODEL))])
    return Engine(
        ModelCatalog(entries, ["cpu"]),
        out_dir=tmp_path_factory.mktemp("web-out"),
        pool=PredictorPool(threads=2),
    )


def test_auto_clicks_are_editable_points(engine: Engine) -> None:
    photo = shared_path("data", "interactive", "GrabCut", "data_GT", "teddy.jpg")
    image = engine.load(photo, "teddy.jpg")
    before = Prompts("point").add("negative", 3.0, 4.0)
    prompts = engine.auto_prompts(image, before)
    expected = auto_prompt(np.asarray(image.pixels))
    np.testing.assert_allclose(prompts.points, expected.points)
    assert prompts.labels == (1, 1, 1, 1, 1)
    # Editable: undo drops the last auto click, a new click adds to them.
    assert len(prompts.undo().points) == 4
    assert len(prompts.add("negative", 10.0, 10.0).points) == 6
    entry = engine.catalog.entries[0]
    result = engine.segment(image, prompts, Choice(entry.label, entry.precision, "cpu"), "s1")
    assert result.masks is not None and result.masks.shape[1:] == image.pixels.shape[:2]
    record = json.loads(Path(result.json_path).read_text())
    np.testing.assert_allclose(record["prompts"]["points"], expected.points)


def test_no_salient_blob_is_a_message(engine: Engine, tmp_path: Path) -> None:
    flat = tmp_path / "flat.png"
    Image.fromarray(np.full((120, 160, 3), 90, np.uint8)).save(flat)
    image = engine.load(flat, "flat.png")
    with pytest.raises(NoSalientObjectError, match="no salient object") as err:
        engine.auto_prompts(image, Prompts("point"))
    assert "\n" not in str(err.value)
    with pytest.raises(Exception, match="upload an image"):
        engine.auto_prompts(None, Prompts("point"))


class _Disc:
    """A backend whose map is one disc at (60, 40), radius 20 (``samedge web --saliency``
    hands the Engine whichever backend was chosen)."""

    name = "disc"

    def saliency(self, image: np.ndarray) -> np.ndarray:
        yy, xx = np.mgrid[: image.shape[0], : image.shape[1]]
        return (((xx - 60) ** 2 + (yy - 40) ** 2) <= 400).astype(np.float32)


def test_the_engine_uses_its_saliency_backend(engine: Engine, tmp_path: Path) -> None:
    other = Engine(engine.catalog, out_dir=tmp_path, pool=engine.pool, saliency=_Disc())
    path = tmp_path / "gray.png"
    Image.fromarray(np.full((120, 160, 3), 90, np.uint8)).save(path)
    prompts = other.auto_prompts(other.load(path, "gray.png"), Prompts("point"))
    np.testing.assert_allclose(prompts.points[0], (60, 40), atol=0.01)
    assert len(prompts.points) == 5
