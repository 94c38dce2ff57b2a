"""Predictor API behaviour: SAM-style wrapper, providers, prompt validation, immutability."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from samedge import ImagePredictor, Predictor
from samedge.errors import PromptError, ProviderError
from samedge.registry import get_spec
from samedge.runtime.prompts import normalize_prompts
from samedge.runtime.session import resolve_providers

from .conftest import shared_path


@pytest.fixture(scope="module")
def predictor(export_test_model: Any) -> Predictor:
    return Predictor.from_pretrained(export_test_model("sam2.1_hiera_tiny"), threads=2)


@pytest.fixture(scope="module")
def photo() -> Path:
    return shared_path("data", "images", "dog.jpg")


def test_image_predictor_matches_functional_api(predictor: Predictor, photo: Path) -> None:
    sam = ImagePredictor(predictor)
    with pytest.raises(RuntimeError, match="set_image"):
        sam.predict(point_coords=np.array([[10, 10]]), point_labels=np.array([1]))
    sam.set_image(photo)
    masks, scores, low = sam.predict(
        point_coords=np.array([[400, 300]]), point_labels=np.array([1])
    )
    assert masks.shape == (3, 534, 800) and masks.dtype == bool
    assert scores.shape == (3,) and low.shape == (3, 256, 256)
    ref = predictor.predict(predictor.encode(photo), points=[[400, 300]], labels=[1])
    np.testing.assert_array_equal(masks, ref.masks[0])
    np.testing.assert_array_equal(scores, ref.scores[0])
    boxes = np.array([[10, 10, 300, 300], [300, 100, 700, 500]])
    bm, bs, bl = sam.predict(box=boxes, multimask_output=False)
    assert bm.shape == (2, 1, 534, 800) and bs.shape == (2, 1) and bl.shape == (2, 1, 256, 256)


def test_api_misuse_is_one_line(predictor: Predictor, photo: Path) -> None:
    """A path given to predict() failed on 'str' has no attribute 'original_size', and a
    3-number box in ImagePredictor.predict on NumPy's reshape (8 numbers: 2 boxes, of which
    only the first was answered)."""
    with pytest.raises(
        TypeError, match=r"takes the ImageEmbedding that encode\(\) returned, got str"
    ):
        predictor.predict(str(photo), points=[[10, 10]], labels=[1])
    sam = ImagePredictor(predictor)
    sam.set_image(photo)
    for box, message in [
        (np.array([75, 275, 700]), r"^a box is \(x0, y0, x1, y1\), got 3 numbers$"),
        ([10, 10, 50, 50, 60, 60, 90, 90], "got 8 numbers"),
        (np.zeros((2, 3)), r"boxes must be \(B, 4\) XYXY, got shape \(2, 3\)"),
        ("wide", "box must be numbers"),
    ]:
        with pytest.raises(PromptError, match=message):
            sam.predict(box=box)
    masks, _, _ = sam.predict(box=[[10, 10], [300, 300]], multimask_output=False)  # SAM 2 corners
    assert masks.shape == (1, 534, 800)


def test_embedding_is_immutable_and_checked(predictor: Predictor, photo: Path) -> None:
    embedding = predictor.encode(photo)
    assert embedding.original_size == (534, 800) and embedding.input_size == (1024, 1024)
    assert embedding.image_embeddings.shape == (1, 256, 64, 64)
    assert [f.shape for f in embedding.high_res_features] == [(1, 32, 256, 256), (1, 64, 128, 128)]
    with pytest.raises(ValueError):
        embedding.image_embeddings[0, 0, 0, 0] = 1.0
    with pytest.raises(AttributeError):
        embedding.original_size = (1, 1)  # type: ignore[misc]
    result = predictor.predict(embedding, points=[[400, 300]], labels=[1], multimask_output=False)
    assert result.object_score_logits is not None and result.object_score_logits.shape == (1,)


def test_cpu_is_always_the_fallback(caplog: pytest.LogCaptureFixture, predictor: Predictor) -> None:
    with caplog.at_level(logging.WARNING):
        chosen = resolve_providers(["tensorrt", "cuda", "cpu"])
    if chosen == ["CPUExecutionProvider"]:  # a CPU-only onnxruntime build
        assert "not available in this onnxruntime build" in caplog.text
    assert chosen[-1] == "CPUExecutionProvider"
    assert set(predictor.providers.values()) == {"CPUExecutionProvider"}
    with pytest.raises(ProviderError, match="unknown execution provider 'gpu'"):
        resolve_providers(["gpu"])  # a SamedgeError (one CLI line), and a ValueError


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "no prompt"),
        ({"points": [[10, 10]]}, "need labels"),
        ({"points": [[10, 10]], "labels": [2]}, "labels must be 1"),
        ({"points": [[10, 10]], "labels": [1, 0]}, "must match"),
        ({"points": [[801, 10]], "labels": [1]}, "outside the 800x534 image"),
        ({"points": [[np.nan, 10]], "labels": [1]}, "non-finite"),
        ({"box": [10, 10, 5, 50]}, "x0 <= x1"),
        ({"box": [10, 10, 50]}, "x0, y0, x1, y1"),
        ({"box": [0, 0, 10, 10], "boxes": [[0, 0, 10, 10]]}, "not both"),
        (
            {"boxes": [[0, 0, 10, 10], [5, 5, 20, 20]], "points": [[1, 1]], "labels": [1]},
            "prompt sets",
        ),
        ({"points": [[1, 1]], "labels": [1], "mask_input": np.zeros((64, 64))}, "256x256"),
        ({"mask_input": np.zeros((1, 256, 256))}, "no prompt"),
    ],
)
def test_bad_prompts_are_rejected_with_the_reason(kwargs: dict, message: str) -> None:
    spec = get_spec("sam_vit_b")
    with pytest.raises(PromptError, match=message):
        normalize_prompts(spec, (534, 800), (683, 1024), **kwargs)


@pytest.mark.parametrize("name", ["sam_vit_b", "sam2.1_hiera_tiny"])
def test_prompt_sequences_follow_the_official_order(name: str) -> None:
    spec = get_spec(name)
    p = normalize_prompts(
        spec, (500, 1000), (512, 1024), points=[[100, 50]], labels=[1], box=[0, 0, 1000, 500]
    )
    labels = p.point_labels[0].tolist()
    # SAM: points then box corners, no padding; SAM 2: box corners first, padding always.
    assert labels == ([1, 2, 3] if spec.family == "sam" else [2, 3, 1, -1])
    np.testing.assert_allclose(p.point_coords[0, labels.index(1)], [102.4, 51.2])
    only = normalize_prompts(spec, (500, 1000), (512, 1024), points=[[1, 1]], labels=[0])
    assert only.point_labels[0].tolist() == [0, -1]


def test_large_batches_decode_in_cpu_sized_calls(predictor: Predictor, photo: Path) -> None:
    """Five prompt sets (more than CPU_DECODE_BATCH, one with a mask prompt) give what
    five separate calls give."""
    from samedge.runtime.graphs import CPU_DECODE_BATCH

    emb = predictor.encode(photo)
    points = np.array([[[100, 100]], [[400, 300]], [[700, 50]], [[20, 500]], [[650, 400]]])
    mask = np.full((256, 256), -2.0, np.float32)
    mask[60:120, 80:160] = 3.0
    prompts = normalize_prompts(
        predictor.spec, emb.original_size, emb.input_size, points=points, labels=np.ones((5, 1))
    )
    masked = normalize_prompts(
        predictor.spec, emb.original_size, emb.input_size, points=[[400, 300]], labels=[1],
        mask_input=mask,
    )  # fmt: skip
    assert prompts.batch > CPU_DECODE_BATCH
    decode = predictor.graphs.decode
    low, iou, obj = decode(emb, prompts)
    assert low.shape == (5, 4, 256, 256) and iou.shape == (5, 4) and obj.shape == (5,)
    for i in range(5):
        one = decode(emb, prompts.rows(i, i + 1))
        np.testing.assert_allclose(low[i : i + 1], one[0], rtol=0, atol=1e-4)
        np.testing.assert_allclose(iou[i : i + 1], one[1], rtol=0, atol=1e-5)
    # An embedding without the decoder context (built by hand) decodes the same.
    bare = dataclasses.replace(emb, context=())
    np.testing.assert_allclose(decode(bare, prompts)[0], low, rtol=0, atol=1e-5)
    # A mask prompt goes to decoder_mask.onnx and changes the result.
    refined = decode(emb, masked)
    assert not np.allclose(refined[0][0], low[1], atol=1e-3)
    # Mask prompts in a batch: decoder_mask.onnx, one call per set, the same values.
    two = normalize_prompts(
        predictor.spec, emb.original_size, emb.input_size, points=points[:2],
        labels=np.ones((2, 1)), mask_input=np.stack([mask, -mask])[:, None],
    )  # fmt: skip
    low2, iou2, obj2 = decode(emb, two)
    assert obj2 is not None and obj2.shape == (2,)
    for i in range(2):
        one = decode(emb, two.rows(i, i + 1))
        np.testing.assert_allclose(low2[i : i + 1], one[0], rtol=0, atol=1e-4)
        np.testing.assert_allclose(iou2[i : i + 1], one[1], rtol=0, atol=1e-5)
        np.testing.assert_allclose(obj2[i : i + 1], one[2], rtol=0, atol=1e-5)


@pytest.mark.parametrize(
    ("setting", "arena", "shrink", "shared"),
    [
        (None, True, False, True),
        ("on", True, False, True),
        ("private", True, False, False),
        ("shrink", True, True, False),
        ("0", False, False, False),
    ],
)
def test_memory_arena_follows_the_setting(
    monkeypatch: pytest.MonkeyPatch,
    export_test_model: Any,
    photo: Path,
    setting: str | None,
    arena: bool,
    shrink: bool,
    shared: bool,
) -> None:
    """SAMEDGE_ORT_ARENA: the encoder keeps ONNX Runtime's arena (never memory-pattern
    planning, whose pre-allocated block is larger than the live tensors) unless it is 0;
    ``shrink`` returns the arena after every image. By default the encoder and the decoder
    graphs take their buffers from one shared arena; ``private`` gives each its own, and the
    encoder never shares an arena it shrinks or does not have. Encodings are the same
    either way."""
    if setting is None:
        monkeypatch.delenv("SAMEDGE_ORT_ARENA", raising=False)
    else:
        monkeypatch.setenv("SAMEDGE_ORT_ARENA", setting)
    p = Predictor.from_pretrained(export_test_model("sam2.1_hiera_tiny"), threads=2)
    sessions = p.graphs._sessions
    options = sessions["encoder"].get_session_options()
    assert options.enable_cpu_mem_arena is arena and options.enable_mem_pattern is False
    assert (p.graphs._encoder_options is not None) is shrink

    def shares(session: Any) -> bool:
        entries = session.get_session_options()
        try:
            return entries.get_session_config_entry("session.use_env_allocators") == "1"
        except RuntimeError:  # the entry was never set
            return False

    assert shares(sessions["encoder"]) is shared
    assert shares(sessions["decoder"]) is (setting != "private")
    if setting == "shrink":  # two images through a shrinking arena, against no arena
        monkeypatch.setenv("SAMEDGE_ORT_ARENA", "0")
        plain = Predictor.from_pretrained(export_test_model("sam2.1_hiera_tiny"), threads=2)
        for _ in range(2):
            np.testing.assert_allclose(
                p.encode(photo).image_embeddings, plain.encode(photo).image_embeddings, atol=1e-5
            )


# SAM's decoder on MobileSAM's encoder (ViT-B's costs 3x the time for the same decoder graphs)
@pytest.mark.parametrize("name", ["sam2.1_hiera_tiny", "mobile_sam"])
def test_split_decoder_draws_needed_masks_like_the_whole_decoder(
    export_test_model: Any, photo: Path, name: str
) -> None:
    """decoder_head.onnx + upscaler.onnx give decoder.onnx's outputs, drawing masks only
    where asked; a folder without them (older or quantized) draws every mask."""
    p = Predictor.from_pretrained(export_test_model(name), threads=2)
    graphs = p.graphs
    assert graphs.can_split
    emb = p.encode(photo)
    rng = np.random.default_rng(5)
    xy = rng.uniform(0, 1, (6, 1, 2)) * np.array(emb.original_size[::-1])
    prompts = normalize_prompts(
        p.spec, emb.original_size, emb.input_size, points=xy, labels=np.ones((6, 1))
    )
    low_res, iou, obj = graphs.decode(emb, prompts)
    cut = float(np.median(iou[:, 0]))
    got, got_iou, got_obj, drawn = graphs.decode_needed(emb, prompts, lambda s: bool(s[0] > cut))
    np.testing.assert_array_equal(drawn, iou[:, 0] > cut)
    assert 0 < drawn.sum() < len(drawn)
    np.testing.assert_allclose(got_iou, iou, atol=1e-6)
    np.testing.assert_allclose(got[drawn], low_res[drawn], atol=1e-5)
    assert not got[~drawn].any()  # never drawn
    if obj is not None:
        np.testing.assert_allclose(got_obj, obj, atol=1e-6)

    files = p.artifact.manifest.files
    assert {"decoder_head", "upscaler"} <= set(files)
    without = {k: v for k, v in files.items() if k not in ("decoder_head", "upscaler")}
    plain = dataclasses.replace(
        p.artifact, manifest=dataclasses.replace(p.artifact.manifest, files=without)
    )
    old = Predictor(plain, threads=2).graphs
    assert not old.can_split
    got, got_iou, _, drawn = old.decode_needed(emb, prompts, lambda s: False)
    assert drawn.all()
    np.testing.assert_allclose(got, low_res, atol=1e-5)
