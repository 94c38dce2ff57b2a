"""ModelGraphs: the role table from the spec, the device map, close() and ``with``."""

from __future__ import annotations

import gc
import weakref
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from samedge import Predictor
from samedge.artifacts import ModelArtifact
from samedge.manifest import OPTIONAL_ROLES, ROLES
from samedge.registry import get_spec, list_models
from samedge.runtime.graphs import ModelGraphs, graph_io
from samedge.runtime.preprocess import preprocess
from samedge.runtime.prompts import normalize_prompts

from .conftest import shared_path

MODEL = "sam2.1_hiera_tiny"


@pytest.fixture(scope="module")
def folder(export_test_model: Any) -> Path:
    return export_test_model(MODEL)


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    from samedge.imageio import load_image

    return load_image(shared_path("data", "images", "dog.jpg"))


def test_every_role_of_every_model_has_its_names_in_the_table() -> None:
    for name in list_models():
        spec = get_spec(name)
        io = graph_io(spec)
        assert set(io) == {*ROLES, *OPTIONAL_ROLES}
        # The prompt decoders and the split decoder end in what the runtime reads back.
        assert io["decoder"].outputs == io["decoder_mask"].outputs == spec.decoder_outputs
        assert io["decoder_mask"].inputs[: len(io["decoder"].inputs)] == io["decoder"].inputs
        assert io["context"].inputs == io["encoder"].outputs
        assert set(io["upscaler"].inputs) <= {*io["decoder_head"].outputs, *spec.context_outputs}


@pytest.mark.parametrize("name", [MODEL, "sam_vit_b", "mobile_sam"])
def test_the_table_names_what_each_exported_graph_has(export_test_model: Any, name: str) -> None:
    """Every graph file of an export has exactly the table's inputs and at least its
    outputs, under the spec's names: the runtime binds nothing by position."""
    onnx = pytest.importorskip("onnx")
    folder = export_test_model(name)
    artifact = ModelArtifact.open(folder, verify=False)
    table = graph_io(artifact.spec)
    for role in (*ROLES, *OPTIONAL_ROLES):
        graph = onnx.load(artifact.path(role), load_external_data=False).graph
        inputs, outputs = table[role]
        assert sorted(i.name for i in graph.input) == sorted(inputs), role
        assert set(outputs) <= {o.name for o in graph.output}, role


def test_close_shuts_the_pool_down_and_drops_every_session(folder: Path, photo: Any) -> None:
    predictor = Predictor.from_pretrained(folder, threads=2)
    graphs = predictor.graphs
    # The device map is fixed when the graphs load, the mask decoder's included.
    assert dict(graphs.devices) == dict.fromkeys(("encoder", "context", "decoder", "decoder_mask"))
    emb = predictor.encode(photo)
    prompts = normalize_prompts(
        predictor.spec, emb.original_size, emb.input_size,
        points=[[[100, 100]], [[400, 300]], [[700, 50]]], labels=np.ones((3, 1)),
    )  # fmt: skip
    graphs.decode_needed(emb, prompts, lambda iou: True)  # the pool and the serial sessions
    pool = graphs._pool
    assert pool is not None and graphs._serial
    sessions = [weakref.ref(s) for s in (*graphs._sessions.values(), *graphs._serial.values())]
    threads = list(pool._threads)
    assert threads

    predictor.close()
    assert graphs.closed and pool._shutdown
    assert not any(t.is_alive() for t in threads)
    gc.collect()
    assert all(ref() is None for ref in sessions)  # nothing else held a session
    message = f"the {MODEL} sessions were closed"
    for call in (
        lambda: predictor.encode(photo),
        lambda: predictor.predict(emb, points=[[400, 300]], labels=[1]),
        lambda: graphs.decode(emb, prompts),
        lambda: graphs.decode_needed(emb, prompts, lambda iou: True),
        lambda: graphs.decoder_feeds(emb, prompts),
        lambda: predictor.providers,
    ):
        with pytest.raises(RuntimeError, match=message):
            call()
    predictor.close()  # again: nothing to do
    assert graphs._pool is None


def test_parallel_decoding_can_be_opened_before_the_first_batch(folder: Path, photo: Any) -> None:
    """What the first multi-prompt call would open (single-threaded decoder sessions and
    their threads) is opened up front, e.g. by the gaze pipeline; the results do not change,
    and nothing more is opened by the call."""
    boxes = np.array([[50, 60, 400, 300], [300, 100, 700, 500]], np.float32)
    with Predictor.from_pretrained(folder, threads=2) as lazy:
        expected = lazy.predict(lazy.encode(photo), boxes=boxes, multimask_output=False)
    with Predictor.from_pretrained(folder, threads=2) as ready:
        graphs = ready.graphs
        assert graphs._pool is None and not graphs._serial
        ready.open_parallel_decoding()
        opened = {**graphs._serial}
        assert graphs._pool is not None and set(opened) == {"decoder"}  # what predict uses
        got = ready.predict(ready.encode(photo), boxes=boxes, multimask_output=False)
        assert graphs._serial == opened  # the call found everything open
    np.testing.assert_array_equal(got.masks, expected.masks)
    np.testing.assert_allclose(got.low_res_logits, expected.low_res_logits, atol=1e-5)
    assert expected.masks.any() and not expected.masks.all()  # non-trivial masks
    with Predictor.from_pretrained(folder, threads=1) as single:
        single.open_parallel_decoding()  # one thread: calls run in turn, nothing to open
        assert single.graphs._pool is None and not single.graphs._serial


def test_with_blocks_close_the_predictor_and_the_graphs(folder: Path, photo: Any) -> None:
    with Predictor.from_pretrained(folder, threads=1) as predictor:
        emb = predictor.encode(photo)
        prompts = normalize_prompts(
            predictor.spec, emb.original_size, emb.input_size, points=[[400, 300]], labels=[1]
        )
        expected = predictor.graphs.decode(emb, prompts)[0]
    assert predictor.graphs.closed
    with pytest.raises(RuntimeError, match="closed"):
        predictor.encode(photo)

    artifact = ModelArtifact.open(folder, verify=False)
    tensor, input_size = preprocess(photo, artifact.spec)
    with ModelGraphs(artifact, threads=1) as graphs:
        low_res = graphs.decode(graphs.encode(tensor, input_size, photo.shape[:2]), prompts)[0]
    assert graphs.closed
    np.testing.assert_array_equal(low_res, expected)


def test_an_exception_in_a_with_block_still_closes(folder: Path) -> None:
    artifact = ModelArtifact.open(folder, verify=False)
    with pytest.raises(KeyError), ModelGraphs(artifact, threads=1) as graphs:
        raise KeyError("inside")
    assert graphs.closed
