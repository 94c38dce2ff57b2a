"""Static INT8 calibration methods (minmax, entropy, percentile) on the seed-0 SAM 2.1 tiny
decoder: each makes a loadable QDQ folder whose manifest records the method and an honest
fidelity verdict, ranges behave as each method promises, and bounding calibration memory
(tensor groups, one sample at a time, onnxruntime without a calibration cache) does not
change the ranges.

Calibration images are ../shared/data/images and fidelity prompts come from GrabCut (disjoint).
"""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from samedge.quantize import CalibrationOptions, QuantizeConfig, quantize_model
from samedge.quantize.calibration import decoder_feeds, list_images
from samedge.quantize.convert import STATIC_OPS, staged, to_int8_static
from samedge.quantize.ranges import collect_ranges, entropy_threshold, tensor_groups
from samedge.runtime.predictor import Predictor

from ..conftest import shared_path

MODEL = "sam2.1_hiera_tiny"


@pytest.fixture(scope="module")
def parent(export_test_model) -> Path:
    return export_test_model(MODEL)


@pytest.fixture(scope="module")
def decoder_samples(parent) -> Callable[[], Iterator[dict[str, np.ndarray]]]:
    """The decoder's calibration samples of one image (three prompt sets), computed once."""
    images = list_images(shared_path("data", "images"), 1)
    feeds = list(decoder_feeds(images, Predictor.from_pretrained(parent, threads=2)))
    return lambda: iter(feeds)


def test_each_calibration_image_is_encoded_once_per_run(parent) -> None:
    """The decoder graphs' calibration passes share the parent's embeddings: encoding is
    the costly part of a decoder calibration, and histogram methods read the samples twice
    per graph. The shared embeddings give the same feeds as fresh ones."""
    images = list_images(shared_path("data", "images"), 1)
    predictor = Predictor.from_pretrained(parent, threads=2)
    encoded: list[Path] = []
    encode = predictor.encode

    def counting(path: Any) -> Any:
        encoded.append(path)
        return encode(path)

    predictor.encode = counting  # type: ignore[method-assign]
    fresh = list(decoder_feeds(images, predictor))
    assert encoded == images
    shared: dict[Path, Any] = {}
    passes = [list(decoder_feeds(images, predictor, with_mask, shared)) for with_mask in (0, 0, 1)]
    assert encoded == images * 2 and list(shared) == images
    assert len(fresh) == 3 and [f.keys() for f in passes[0]] == [f.keys() for f in fresh]
    for a, b in zip(fresh, passes[1], strict=True):
        for name in a:
            np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    # the refinement samples carry the fp32 prediction as a mask prompt: two inputs more
    assert [len(f) for f in passes[2]] == [len(f) + 2 for f in fresh]


def _ranges(parent: Path, samples: Any, **options: Any) -> dict[str, Any]:
    with staged(parent / "decoder.onnx") as model:
        result = collect_ranges(
            model, samples, STATIC_OPS, CalibrationOptions(**options), model.parent, threads=2
        )
    return {name: data.range_value for name, data in result.items()}


def test_entropy_threshold_matches_onnxruntime() -> None:
    from onnxruntime.quantization.calibrate import HistogramCollector

    rng = np.random.default_rng(0)
    samples = [
        rng.standard_normal(50_000) ** 3,
        rng.laplace(size=50_000),
        np.abs(rng.standard_normal(5_000)),
        np.concatenate([np.zeros(10_000), rng.standard_normal(100)]),
    ]
    for num_bins in (128, 300, 1024):
        for x in samples:
            collector = HistogramCollector("entropy", False, num_bins, 128, 99.999, "same")
            with contextlib.redirect_stdout(io.StringIO()):
                collector.collect({"t": x.astype(np.float32)})
                collector.collect({"t": (1.7 * x).astype(np.float32)})  # bins grow on merge
            histogram = collector.histogram_dict["t"]
            expected = collector.get_entropy_threshold(histogram, 128)
            got = entropy_threshold(histogram, 128)
            assert got == expected, (num_bins, got, expected)
            assert got[0].dtype == np.float32 and got[1].dtype == np.float32


def test_tensor_groups_respect_the_budget() -> None:
    sizes = {"a": 40, "b": 70, "c": 30, "d": 200, "e": 10}
    groups = tensor_groups(list(sizes), sizes, budget=100)
    assert groups == [["a"], ["b", "c"], ["d"], ["e"]]
    assert [n for g in groups for n in g] == list(sizes)  # every tensor once, in order
    assert tensor_groups(list(sizes), sizes, budget=10**6) == [list(sizes)]


def test_calibration_options_are_checked_and_recorded() -> None:
    assert CalibrationOptions("percentile").is_symmetric
    assert not CalibrationOptions("entropy").is_symmetric
    assert CalibrationOptions("minmax").record() == {"method": "minmax", "symmetric": False}
    assert CalibrationOptions("entropy").record() == {
        "method": "entropy",
        "symmetric": False,
        "num_bins": 2048,
        "num_quantized_bins": 128,
    }
    assert CalibrationOptions("percentile", percentile=99.9).record()["percentile"] == 99.9
    for bad in ({"method": "kl"}, {"num_bins": 64}, {"percentile": 0}, {"budget_mb": 0}):
        with pytest.raises(ValueError):
            CalibrationOptions(**{"method": "entropy", **bad})


@pytest.mark.slow
def test_methods_give_the_ranges_they_promise(parent, decoder_samples) -> None:
    minmax = _ranges(parent, decoder_samples, method="minmax")
    percentile = _ranges(parent, decoder_samples, method="percentile", num_bins=512)
    entropy = _ranges(parent, decoder_samples, method="entropy", num_bins=512)
    assert set(minmax) == set(percentile) == set(entropy) and len(minmax) > 100
    clipped = {"percentile": 0, "entropy": 0}
    for name, (low, high) in minmax.items():
        assert low <= high
        p_low, p_high = percentile[name]
        e_low, e_high = entropy[name]
        # both are clippings of the observed range
        assert low <= p_low <= p_high <= high and low <= e_low <= e_high <= high
        clipped["percentile"] += bool(p_high - p_low < (high - low) * 0.999)
        clipped["entropy"] += bool(e_high - e_low < (high - low) * 0.999)
    # both methods really clip outliers: on the image-sized tensors of this decoder (the
    # many token-sized ones, a few hundred values each, may have nothing to clip)
    assert clipped["percentile"] > len(minmax) // 3 and clipped["entropy"] > len(minmax) // 3


@pytest.mark.slow
def test_memory_budget_does_not_change_the_ranges(parent, decoder_samples) -> None:
    # ~99 MB of observed tensors per decoder sample: 30 MB makes several passes
    one = _ranges(parent, decoder_samples, method="percentile", num_bins=256)
    split = _ranges(parent, decoder_samples, method="percentile", num_bins=256, budget_mb=30)
    assert one.keys() == split.keys()
    for name, (low, high) in one.items():
        assert split[name] == (low, high), name


@pytest.mark.slow
def test_onnxruntime_without_calibration_cache_gives_the_same_model(
    parent, decoder_samples, tmp_path, monkeypatch
) -> None:
    import onnx
    import onnxruntime.quantization as ortq
    from onnx import numpy_helper

    new = tmp_path / "new.onnx"
    to_int8_static(parent / "decoder.onnx", new, decoder_samples, "minmax", threads=2)
    real = ortq.quantize_static

    def older_quantize_static(model_input, model_output, calibration_data_reader, **kwargs):
        return real(model_input, model_output, calibration_data_reader, **kwargs)

    monkeypatch.setattr(ortq, "quantize_static", older_quantize_static)
    old = tmp_path / "old.onnx"
    to_int8_static(parent / "decoder.onnx", old, decoder_samples, "minmax", threads=2)

    def scales(path: Path) -> dict[str, np.ndarray]:
        graph = onnx.load(path).graph
        return {i.name: numpy_helper.to_array(i) for i in graph.initializer if "scale" in i.name}

    got, expected = scales(old), scales(new)
    assert got.keys() == expected.keys() and len(got) > 100
    for name, value in expected.items():
        np.testing.assert_array_equal(got[name], value, err_msg=name)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["entropy", "percentile"])
def test_static_decoder_with_method(parent, method, tmp_path) -> None:
    out = tmp_path / method
    before = sorted(p.name for p in parent.iterdir())
    cfg = QuantizeConfig(
        precision="int8-static",
        component="decoder",
        calibration=shared_path("data", "images"),
        method=method,
        calibration_options={"num_bins": 512},  # 2048 (the default) costs ~4x the time
        num_images=1,
        fidelity_data=shared_path("data", "interactive", "GrabCut"),
        fidelity_limit=1,
        threads=2,
        force=True,
    )
    result = quantize_model(parent, out, cfg)
    # onnxruntime's shape-inferred copies were made in a scratch folder, not in the parent
    assert sorted(p.name for p in parent.iterdir()) == before
    data = json.loads((out / "samedge.json").read_text())
    assert data["precision"] == {"encoder": "fp32", "decoder": "int8-static"}
    q = data["extra"]["quantization"]
    assert q["method"] == method and q["calibration"]["method"] == method
    assert q["calibration"]["num_bins"] == 512 and q["calibration_images"] == ["cars.jpg"]
    fid = data["extra"]["fidelity"]
    # the verdict is the measured numbers against the threshold, nothing else
    expected = all(fid["stats"][p]["mean_iou"] >= fid["threshold"] for p in ("center", "box"))
    assert fid["passed"] is expected is result.passed
    assert fid["forced"] is (not expected)
    assert 0.0 <= fid["stats"]["all"]["min_iou"] <= fid["stats"]["all"]["mean_iou"] <= 1.0
    import onnx

    graph = onnx.load(out / "decoder.onnx").graph
    assert sum(n.op_type == "QuantizeLinear" for n in graph.node) > 50
    # the fidelity check ran the folder through the unchanged Predictor: both prompts scored
    assert fid["stats"]["center"]["prompts"] == fid["stats"]["box"]["prompts"] == 1
