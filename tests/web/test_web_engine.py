"""The web actions on real exported models (seed-0 test exports: real graphs, meaningless
masks): encode once, decode per click, correct invalidation on model switch, downloads."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

from samedge.errors import SamedgeError
from samedge.maskutils import rle_decode
from samedge.web.cache import EmbeddingCache
from samedge.web.engine import Choice, Engine, EverythingParams
from samedge.web.models import (
    ModelCatalog,
    PredictorPool,
    discover_models,
    precision_label,
    provider_choices,
)
from samedge.web.state import Prompts

from ..conftest import CheckpointExport, shared_path

TINY = "sam2.1_hiera_tiny"


@pytest.fixture(scope="module")
def engine(export_test_model: Callable[[str], Path], tmp_path_factory: pytest.TempPathFactory):
    entries = discover_models([str(export_test_model(TINY))])
    catalog = ModelCatalog(entries, ["cpu"])
    return Engine(
        catalog,
        out_dir=tmp_path_factory.mktemp("web-out"),
        cache=EmbeddingCache(4),
        pool=PredictorPool(threads=2),
    )


def _choice(engine: Engine, index: int = 0) -> Choice:
    entry = engine.catalog.entries[index]
    return Choice(entry.label, entry.precision, "cpu")


def _read_png(path: Path) -> np.ndarray:
    data = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert data is not None, path
    return data


@pytest.mark.slow
def test_a_click_runs_only_the_decoder_and_offers_png_and_json(engine: Engine) -> None:
    photo = shared_path("data", "images", "groceries.jpg")
    image = engine.load(photo, "groceries.jpg")
    assert image.size == (534, 800) and image.name == "groceries"
    misses = engine.cache.misses
    status = engine.prepare(image, _choice(engine))
    assert "800x534 image · encode **" in status and "random test weights" in status
    assert engine.cache.misses == misses + 1

    prompts = Prompts("point").add("positive", 400, 267)
    result = engine.segment(image, prompts, _choice(engine), session="s1")
    again = engine.segment(image, prompts.add("negative", 100, 100), _choice(engine), "s1")
    assert engine.cache.misses == misses + 1  # neither click ran the encoder
    for r in (result, again):
        assert r.encode_ms is None and r.decode_ms is not None and r.decode_ms > 0
        assert "encode **cached** · decode **" in r.message
        assert r.masks is not None and r.masks.shape == (1, 534, 800)
        assert r.canvas.shape == (534, 800, 3)

    # The downloads hold the last action's mask, as PNG and as COCO RLE in the JSON.
    assert again.mask_path is not None and again.json_path is not None
    assert again.mask_path.name == "groceries-point-mask.png"
    png = _read_png(again.mask_path)
    np.testing.assert_array_equal(png, again.masks[0].astype(np.uint8) * 255)
    record = json.loads(again.json_path.read_text())
    assert record["model"] == TINY and record["mode"] == "point"
    assert record["prompts"]["points"] == [[400, 267], [100, 100]]
    assert record["prompts"]["labels"] == [1, 0]
    assert record["timings_ms"]["encode_cached"] is True
    (mask,) = record["masks"]
    np.testing.assert_array_equal(rle_decode(mask["segmentation"]), again.masks[0])
    assert mask["area"] == int(again.masks[0].sum())
    # Downloads stay inside the engine's own folder, whatever the session id says.
    evil = engine.segment(image, prompts, _choice(engine), session="../../../../tmp/x")
    assert evil.mask_path is not None and engine.out_dir in evil.mask_path.parents


@pytest.mark.slow
def test_box_mode_gives_one_mask_per_box(engine: Engine) -> None:
    image = engine.load(shared_path("data", "images", "groceries.jpg"), "groceries.jpg")
    prompts = Prompts("box")
    for x, y in ((100, 100), (300, 300), (700, 450), (450, 200)):
        prompts = prompts.add("corner", x, y)
    result = engine.segment(image, prompts, _choice(engine), "s2")
    assert result.masks is not None and result.masks.shape == (2, 534, 800)
    assert result.scores is not None and result.scores.shape == (2,)
    labels = _read_png(result.mask_path)
    assert set(np.unique(labels)) <= {0, 1, 2}
    np.testing.assert_array_equal(labels == 2, result.masks[1])
    record = json.loads(result.json_path.read_text())
    assert record["prompts"]["boxes"] == [[100, 100, 300, 300], [450, 200, 700, 450]]
    assert [m["prompt_set"] for m in record["masks"]] == [0, 1]
    # Undo removes the second box: one mask again.
    undone = engine.segment(image, prompts.undo(), _choice(engine), "s2")
    assert undone.masks is not None and len(undone.masks) == 1
    # A pending corner alone is not a prompt: nothing is decoded, the corner is drawn.
    pending = engine.segment(image, Prompts("box").add("corner", 50, 50), _choice(engine), "s2")
    assert pending.masks is None and "opposite corner" in pending.message
    assert not np.array_equal(pending.canvas, image.display)


@pytest.mark.slow
def test_switching_model_encodes_again_and_switching_back_is_cached(
    export_test_model: Callable[[str], Path],
    engine: Engine,
    tmp_path: Path,
) -> None:
    entries = discover_models([str(export_test_model(TINY)), str(export_test_model("sam_vit_b"))])
    both = Engine(
        ModelCatalog(entries, ["cpu"]),
        out_dir=tmp_path,
        cache=engine.cache,  # the tiny embedding may already be there
        pool=engine.pool,
    )
    image = both.load(shared_path("data", "images", "groceries.jpg"), "groceries.jpg")
    prompts = Prompts("point").add("positive", 400, 267)
    tiny = both.segment(image, prompts, _choice(both, 0), "s3")
    misses = both.cache.misses
    vitb = both.segment(image, prompts, _choice(both, 1), "s3")
    back = both.segment(image, prompts, _choice(both, 0), "s3")
    assert vitb.encode_ms is not None  # another model: encoded again
    assert back.encode_ms is None  # switching back: the tiny embedding is still cached
    assert both.cache.misses == misses + 1
    assert (image.sha256, entries[0].key + "|cpu") in both.cache
    assert (image.sha256, entries[1].key + "|cpu") in both.cache
    record = json.loads(back.json_path.read_text())
    assert record["model"] == TINY
    assert "sam_vit_b" in vitb.message
    assert tiny.masks is not None and back.masks is not None
    np.testing.assert_array_equal(tiny.masks, back.masks)


@pytest.mark.slow
def test_large_images_are_shown_scaled_and_masks_stay_full_size(engine: Engine) -> None:
    small = Engine(engine.catalog, engine.out_dir, engine.cache, engine.pool, max_display_side=400)
    image = small.load(shared_path("data", "images", "groceries.jpg"), "groceries.jpg")
    assert image.display.shape == (267, 400, 3)
    x, y = image.to_original(200, 100)  # a click on the displayed picture
    assert (x, y) == (400.0, 200.0)
    result = small.segment(image, Prompts("point").add("positive", x, y), _choice(small), "s4")
    assert result.canvas.shape == (267, 400, 3)
    assert result.masks is not None and result.masks.shape == (1, 534, 800)


def test_models_offered_are_the_cache_plus_the_operator_choice(
    export_test_model: Callable[[str], Path],
    small_checkpoint_export: CheckpointExport,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tiny = export_test_model(TINY)
    vitb = export_test_model("sam_vit_b")
    monkeypatch.setenv("SAMEDGE_HOME", str(tmp_path))
    models = tmp_path / "models"
    models.mkdir()
    (models / TINY).symlink_to(tiny, target_is_directory=True)
    (models / "sam_vit_l").mkdir()  # an empty folder is not an export
    # 'samedge export TINY --image-size 256' writes TINY-256px; a folder named so that
    # holds another model is not offered under that name.
    small = small_checkpoint_export
    (models / f"{TINY}-{small.image_size}px").symlink_to(small.folder, target_is_directory=True)
    (models / f"{TINY}-512px").symlink_to(vitb, target_is_directory=True)
    cached = discover_models()
    assert [(e.label, e.model, e.precision) for e in cached] == [
        (TINY, TINY, "fp32"),
        (f"{TINY} ({small.image_size} px)", TINY, "fp32"),
    ]
    assert cached[0].random_weights and not cached[1].random_weights
    # The operator's folder comes first; the same export is not offered twice.
    entries = discover_models([str(vitb), TINY])
    assert [e.model for e in entries] == ["sam_vit_b", TINY, TINY]
    assert entries[0].label == f"sam_vit_b ({vitb.name})"

    catalog = ModelCatalog(entries, ["cpu"])
    assert catalog.labels == [entries[0].label, TINY, cached[1].label]
    assert catalog.lookup(cached[1].label, "fp32").folder == models / f"{TINY}-{small.image_size}px"
    assert catalog.precisions(TINY) == ["fp32"]
    assert catalog.lookup(TINY, "fp32").folder == tmp_path / "models" / TINY
    # Only labels from the catalog are accepted: a path from the browser is not a model.
    with pytest.raises(SamedgeError, match="is not offered by this server"):
        catalog.lookup(str(vitb), None)
    with pytest.raises(SamedgeError, match="has no int8 export"):
        catalog.lookup(TINY, "int8")
    with pytest.raises(SamedgeError, match="execution provider 'cuda' is not available"):
        catalog.check_provider("cuda")

    # A click on the export at another size: its status and record name it NAME-Npx, the
    # --model that opens it, as segment's JSON does.
    engine = Engine(catalog, out_dir=tmp_path / "out", cache=EmbeddingCache(2),
                    pool=PredictorPool(threads=2))  # fmt: skip
    image = engine.load(shared_path("data", "images", "groceries.jpg"), "groceries.jpg")
    choice = Choice(cached[1].label, "fp32", "cpu")
    sized = f"{TINY}-{small.image_size}px"
    assert f"{sized} fp32 on CPUExecutionProvider" in engine.prepare(image, choice)
    result = engine.segment(image, Prompts("point").add("positive", 400, 267), choice, "s")
    assert result.json_path is not None
    assert json.loads(result.json_path.read_text())["model"] == sized


def test_no_exported_model_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("SAMEDGE_HOME", str(tmp_path))
    with pytest.raises(SamedgeError, match=r"no exported models found in .*samedge export"):
        ModelCatalog(discover_models(), ["cpu"])


def test_labels_for_precisions_and_providers() -> None:
    assert precision_label({"encoder": "fp32", "decoder": "fp32"}) == "fp32"
    assert precision_label({"encoder": "fp16", "decoder": "fp32"}) == "decoder fp32, encoder fp16"
    assert provider_choices(["CUDAExecutionProvider", "CPUExecutionProvider"]) == ["cpu", "cuda"]
    both = ["OpenVINOExecutionProvider", "CPUExecutionProvider"]
    assert provider_choices(both, native_openvino=True) == ["cpu", "openvino"]  # listed once
    assert provider_choices(["CPUExecutionProvider"], native_openvino=True) == ["cpu", "openvino"]
    assert provider_choices(["AzureExecutionProvider", "CPUExecutionProvider"]) == ["cpu"]


@pytest.mark.slow
def test_everything_returns_masks_and_downloads(engine: Engine) -> None:
    image = engine.load(shared_path("data", "images", "groceries.jpg"), "groceries.jpg")
    params = EverythingParams(4, 0.0, 0.0, 0.7)  # keep every candidate of a coarse grid
    result = engine.everything(image, params, _choice(engine), "s5")
    assert result.masks is not None and result.masks.ndim == 3
    assert result.masks.shape[1:] == (534, 800)
    record = json.loads(result.json_path.read_text())
    assert len(record["masks"]) == len(result.masks)
    areas = [m["area"] for m in record["masks"]]
    assert areas == sorted(areas, reverse=True)
    timings = record["timings_ms"]  # encode vs decode, as for every other action
    assert timings["encode"] >= 0 and timings["decode"] > 0  # 0: embedding already cached
    assert timings["encode"] + timings["decode"] <= timings["generate"]
    assert "encode" in result.message and "decode" in result.message
    # The second run (like a click after it) takes the embedding from the session cache.
    again = engine.everything(image, params, _choice(engine), "s5")
    assert "encode cached" in again.message
    assert np.array_equal(again.masks, result.masks)


def test_everything_settings_are_validated() -> None:
    with pytest.raises(SamedgeError, match=r"points per side must be 1\.\.128"):
        EverythingParams(points_per_side=0)
    with pytest.raises(SamedgeError, match=r"box nms thresh must be in \[0, 1\]"):
        EverythingParams(box_nms_thresh=1.5)
