"""Prompt state (undo / clear per tab), click mapping, and the embedding cache's LRU logic."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from samedge.errors import PromptError
from samedge.runtime.types import ImageEmbedding
from samedge.web.cache import EmbeddingCache
from samedge.web.state import MAX_POINTS, LoadedImage, Prompts, image_digest


def test_point_mode_collects_positive_and_negative_points() -> None:
    prompts = Prompts("point").add("positive", 10, 20).add("negative", 30.5, 40)
    assert prompts.points == ((10, 20), (30.5, 40))
    assert prompts.labels == (1, 0)
    kwargs = prompts.predict_kwargs()
    assert kwargs is not None
    np.testing.assert_array_equal(kwargs["points"], [[10, 20], [30.5, 40]])
    np.testing.assert_array_equal(kwargs["labels"], [1, 0])
    assert kwargs["multimask_output"] is False  # several points: one unambiguous mask
    single = Prompts("point").add("positive", 1, 2).predict_kwargs()
    assert single is not None and single["multimask_output"] is True
    assert prompts.summary() == "2 points (1 positive, 1 negative)"


def test_point_mode_rejects_box_corners() -> None:
    with pytest.raises(PromptError, match="point tab takes positive, negative clicks"):
        Prompts("point").add("corner", 1, 1)
    with pytest.raises(PromptError, match="box tab takes corner clicks"):
        Prompts("box").add("positive", 1, 1)


def test_box_mode_two_clicks_per_box_and_one_prompt_set_per_box() -> None:
    half = Prompts("box").add("corner", 50, 60)
    assert half.empty and half.predict_kwargs() is None
    assert half.corner == (50, 60)
    assert "opposite corner" in half.summary()
    # Corners in any order give an XYXY box.
    one = half.add("corner", 10, 90)
    assert one.boxes == ((10, 60, 50, 90),) and one.corner is None
    two = one.add("corner", 100, 100).add("corner", 200, 150)
    kwargs = two.predict_kwargs()
    assert kwargs is not None
    np.testing.assert_array_equal(kwargs["boxes"], [[10, 60, 50, 90], [100, 100, 200, 150]])
    assert "points" not in kwargs and kwargs["multimask_output"] is False


def test_box_points_mode_keeps_one_box_and_undo_restores_the_previous_one() -> None:
    first = Prompts("box_points").add("corner", 0, 0).add("corner", 10, 10)
    with_point = first.add("positive", 5, 5).add("negative", 8, 2)
    second = with_point.add("corner", 20, 20).add("corner", 40, 30)
    assert second.boxes == ((20, 20, 40, 30),)  # replaced, not added
    assert second.labels == (1, 0)
    kwargs = second.predict_kwargs()
    assert kwargs is not None
    np.testing.assert_array_equal(kwargs["box"], [20, 20, 40, 30])
    np.testing.assert_array_equal(kwargs["points"], [[5, 5], [8, 2]])
    assert kwargs["multimask_output"] is False
    # Undo goes back click by click: the pending corner, then the old box is back.
    assert second.undo().boxes == ((0, 0, 10, 10),)
    assert second.undo().corner == (20, 20)
    assert second.undo().undo() == with_point


def test_undo_to_empty_and_clear() -> None:
    prompts = Prompts("point").add("positive", 1, 1).add("positive", 2, 2)
    assert prompts.undo().points == ((1, 1),)
    empty = prompts.undo().undo()
    assert empty.empty and not empty.can_undo
    assert empty.undo() == empty  # nothing left to undo
    cleared = prompts.clear()
    assert cleared.empty and not cleared.can_undo and cleared.mode == "point"


def test_prompt_count_is_bounded() -> None:
    prompts = Prompts("point")
    for i in range(MAX_POINTS):
        prompts = prompts.add("positive", i, i)
    with pytest.raises(PromptError, match=f"at most {MAX_POINTS} points"):
        prompts.add("positive", 0, 0)


def test_loaded_image_maps_display_clicks_to_original_pixels() -> None:
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (600, 1000, 3), dtype=np.uint8)
    image = LoadedImage.create(pixels, "photo", max_display_side=500)
    assert image.scale == pytest.approx(0.5)
    assert image.display.shape == (300, 500, 3)
    assert image.to_original(250, 150) == (500.0, 300.0)
    assert image.to_original(-5, 10_000) == (0.0, 600.0)  # clamped to the image
    small = LoadedImage.create(pixels, "photo", max_display_side=2000)
    assert small.scale == 1.0 and small.display is small.pixels
    assert not small.pixels.flags.writeable


def test_image_digest_is_a_content_hash() -> None:
    a = np.zeros((4, 5, 3), dtype=np.uint8)
    b = a.copy()
    assert image_digest(a) == image_digest(b)
    b[0, 0, 0] = 1
    assert image_digest(a) != image_digest(b)
    # Same bytes, different shape: a different image.
    assert image_digest(a) != image_digest(a.reshape(5, 4, 3))


def _embedding(model: str, value: float = 0.0) -> ImageEmbedding:
    return ImageEmbedding(
        model=model,
        image_embeddings=np.full((1, 2, 2, 2), value, dtype=np.float32),
        high_res_features=(),
        original_size=(4, 4),
        input_size=(4, 4),
    )


class _CountingEncoder:
    def __init__(self, model: str, delay: float = 0.0) -> None:
        self.model = model
        self.calls = 0
        self.delay = delay

    def __call__(self) -> ImageEmbedding:
        self.calls += 1
        time.sleep(self.delay)
        return _embedding(self.model, self.calls)


def test_cache_encodes_once_per_image_and_model() -> None:
    cache = EmbeddingCache(capacity=4)
    tiny, vitb = _CountingEncoder("sam2.1_hiera_tiny"), _CountingEncoder("sam_vit_b")
    first = cache.get_or_encode("img1", "tiny|cpu", tiny)
    again = cache.get_or_encode("img1", "tiny|cpu", tiny)
    assert not first.cached and first.encode_seconds is not None
    assert again.cached and again.embedding is first.embedding
    assert tiny.calls == 1
    # Switching model must not reuse the other model's embedding...
    switched = cache.get_or_encode("img1", "vitb|cpu", vitb)
    assert not switched.cached and switched.embedding.model == "sam_vit_b"
    # ...and switching back finds the first one again.
    back = cache.get_or_encode("img1", "tiny|cpu", tiny)
    assert back.cached and back.embedding.model == "sam2.1_hiera_tiny"
    assert (tiny.calls, vitb.calls) == (1, 1)
    # Another image under the same model is a new encode.
    assert not cache.get_or_encode("img2", "tiny|cpu", tiny).cached
    assert (cache.hits, cache.misses) == (2, 3)


def test_cache_evicts_least_recently_used() -> None:
    cache = EmbeddingCache(capacity=2)
    enc = _CountingEncoder("m")
    cache.get_or_encode("a", "m", enc)
    cache.get_or_encode("b", "m", enc)
    cache.get_or_encode("a", "m", enc)  # a is now the most recent
    cache.get_or_encode("c", "m", enc)  # evicts b
    assert cache.keys() == [("a", "m"), ("c", "m")]
    assert len(cache) == 2
    assert cache.get_or_encode("a", "m", enc).cached
    assert not cache.get_or_encode("b", "m", enc).cached
    assert enc.calls == 4


def test_cache_runs_one_encoder_for_concurrent_requests() -> None:
    cache = EmbeddingCache()
    enc = _CountingEncoder("m", delay=0.2)
    results = []
    threads = [
        threading.Thread(target=lambda: results.append(cache.get_or_encode("x", "m", enc)))
        for _ in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert enc.calls == 1
    assert sum(not r.cached for r in results) == 1
    assert len({id(r.embedding) for r in results}) == 1


def test_cache_does_not_store_failed_encodes() -> None:
    cache = EmbeddingCache()

    def broken() -> ImageEmbedding:
        raise RuntimeError("encoder failed")

    with pytest.raises(RuntimeError):
        cache.get_or_encode("x", "m", broken)
    assert len(cache) == 0
    assert not cache.get_or_encode("x", "m", _CountingEncoder("m")).cached
