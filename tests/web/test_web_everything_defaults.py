"""The Everything tab starts, and moves on a model change, at the library's defaults for
the selected model's family (it once started SAM 2 models at SAM's pred_iou_thresh)."""

from __future__ import annotations

from pathlib import Path

import pytest

from samedge.amg import AmgSettings
from samedge.registry import get_spec, list_models
from samedge.web.cache import EmbeddingCache
from samedge.web.engine import Engine, EverythingParams
from samedge.web.models import ModelCatalog, ModelEntry, PredictorPool

#: One registered model per family: a new family is covered without editing this test.
BY_FAMILY = {get_spec(name).family: name for name in reversed(list_models())}
SLIDERS = {
    "everything-points": "points_per_side",
    "everything-iou": "pred_iou_thresh",
    "everything-stability": "stability_score_thresh",
    "everything-nms": "box_nms_thresh",
}


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    # The defaults need only the catalog: no folder is read, no model is loaded.
    entries = [
        ModelEntry(name, name, "fp32", Path("/nonexistent") / name, True) for name in list_models()
    ]
    return Engine(
        ModelCatalog(entries, ["cpu"]),
        out_dir=tmp_path_factory.mktemp("web-out"),
        cache=EmbeddingCache(1),
        pool=PredictorPool(threads=1),
    )


@pytest.mark.parametrize("name", list_models())
def test_web_defaults_equal_the_library_defaults(engine: Engine, name: str) -> None:
    library = AmgSettings.for_spec(get_spec(name))
    shown = engine.everything_defaults(name)
    for field in SLIDERS.values():
        assert getattr(shown, field) == getattr(library, field), field
    assert shown.settings(get_spec(name)) == library
    assert EverythingParams().settings(get_spec(name)) == library


@pytest.mark.parametrize("family", sorted(BY_FAMILY))
def test_sliders_start_and_move_to_the_models_defaults(engine: Engine, family: str) -> None:
    pytest.importorskip("gradio", reason="needs the [web] extra: pip install 'samedge[web]'")
    from samedge.web.app import build_app

    start = BY_FAMILY[family]
    demo = build_app(engine, model=start)
    by_id = {getattr(b, "elem_id", None): b for b in demo.blocks.values()}
    library = AmgSettings.for_spec(get_spec(start))
    for elem_id, field in SLIDERS.items():
        assert by_id[elem_id].value == getattr(library, field), elem_id
    (on_model,) = [
        f
        for f in demo.fns.values()
        if [getattr(o, "elem_id", None) for o in f.outputs] == list(SLIDERS)
    ]
    for other in BY_FAMILY.values():
        settings = AmgSettings.for_spec(get_spec(other))
        assert on_model.fn(other) == [getattr(settings, f) for f in SLIDERS.values()]
