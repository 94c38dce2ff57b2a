"""Every command with every model family, generated from the registry (as timm generates its
tests from its model list): a newly registered family is tested by being registered.

Each family is exercised through its smallest variant (the first one registered: the
registry lists variants from small to large), exported once per session with seeded random
weights, so masks are meaningless but every graph, spec field and host-side step is real.
The other variants of a family share its code path (same builder, same spec fields but
sizes) and are exported and compared with their official predictors by the family's own
tests, so they are not run again here (CI budget). SAM and SAM 2 (:data:`COVERED`) run every
command in the commands' own test modules; the families here are the rest.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

from samedge.amg import AmgSettings, MaskGenerator
from samedge.cli.main import main
from samedge.maskutils import rle_decode
from samedge.registry import get_spec, list_models
from samedge.runtime import diagnostics
from samedge.runtime.predictor import Predictor
from samedge.specs import AmgDefaults, ModelSpec

from .conftest import SHARED, requires_export, shared_path

#: Families whose commands are tested in each command's own module (sam_vit_b,
#: sam2.1_hiera_tiny there).
COVERED = ("sam", "sam2")


def _by_family() -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for name in list_models():
        groups.setdefault(get_spec(name).family, []).append(name)
    return groups


FAMILIES = _by_family()
#: The smallest variant of each family not in COVERED.
SMALLEST = [names[0] for family, names in FAMILIES.items() if family not in COVERED]

pytestmark = [requires_export, pytest.mark.export]
family_models = pytest.mark.parametrize("name", SMALLEST)

PHOTO = ("data", "images", "groceries.jpg")  # 800 x 534


def _spec(name: str) -> ModelSpec:
    return get_spec(name)


def _reference_path(spec: ModelSpec, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make a family's official code importable where it has no package (EfficientSAM:
    ``../shared/reference``), for this process and the bench's worker processes."""
    if spec.reference_source is None:
        return
    folder = SHARED / "reference" / "EfficientSAM"
    if not folder.is_dir():
        pytest.skip(f"{folder} not found: the official EfficientSAM code is not beside this")
    monkeypatch.syspath_prepend(str(folder))
    path = os.environ.get("PYTHONPATH")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (str(folder), path) if p))


def test_every_family_has_a_default_run_variant() -> None:
    assert set(FAMILIES) - set(COVERED), "no family left to test here"
    for family, names in FAMILIES.items():
        assert names, family
    # registry order is small to large within a family, so names[0] is the cheapest
    assert {"mobile_sam", "efficientvit_sam_l0", "efficientsam_ti"} <= set(SMALLEST)


@family_models
def test_segment_cli_point_and_box(
    name: str, export_test_model: Callable[[str], Path], tmp_path: Path, capsys
) -> None:
    folder = export_test_model(name)
    photo = shared_path(*PHOTO)
    out, overlay, doc = tmp_path / "m.png", tmp_path / "o.png", tmp_path / "m.json"
    argv = [
        "segment", str(photo), "--model", str(folder), "--point", "400,267",
        "--point", "100,100,0", "--box", "250,150,600,450", "--out", str(out),
        "--overlay", str(overlay), "--json", str(doc), "--threads", "2",
    ]  # fmt: skip
    assert main(argv) == 0
    record = json.loads(doc.read_text())
    assert record["model"] == name and record["weights"] == "random-init"
    assert record["prompts"]["boxes"] == [[250.0, 150.0, 600.0, 450.0]]
    assert record["prompts"]["labels"] == [1.0, 0.0]
    (mask,) = record["masks"]
    decoded = rle_decode(mask["segmentation"])
    png = cv2.imread(str(out), cv2.IMREAD_UNCHANGED)
    assert png.shape == (534, 800) and decoded.shape == (534, 800)
    np.testing.assert_array_equal(png > 0, decoded)
    assert mask["area"] == int(decoded.sum()) and np.isfinite(mask["score"])
    # the overlay is the photo with the prompts (and mask) drawn: not the photo itself
    drawn = cv2.imread(str(overlay))
    original = cv2.imread(str(photo))
    assert drawn.shape == original.shape
    assert np.abs(drawn.astype(int) - original).max() > 100
    assert record["timings_ms"]["encode"] > 0
    assert f"{out}: score" in capsys.readouterr().out


@family_models
def test_segment_everything_with_the_family_defaults(
    name: str, export_test_model: Callable[[str], Path], tmp_path: Path, capsys
) -> None:
    """The CLI on the family's official generator defaults (a 4 x 4 grid instead of 32 x 32
    keeps it within CI's budget; every other setting is the default)."""
    spec = _spec(name)
    folder = export_test_model(name)
    out = tmp_path / "everything.json"
    argv = [
        "everything", str(shared_path(*PHOTO)), "--model", str(folder), "--out", str(out),
        "--points-per-side", "4", "--threads", "2", "--quiet",
    ]  # fmt: skip
    assert main(argv) == 0
    document = json.loads(out.read_text())
    settings = document["settings"]
    for field in dataclasses.fields(AmgDefaults):
        if field.name not in ("generator", "points_per_side"):
            assert settings[field.name] == getattr(spec.amg, field.name), field.name
    assert settings["points_per_side"] == 4 and settings["mask_threshold"] == spec.mask_threshold
    assert document["stats"]["prompts"] == 16
    assert document["settings_source"] == AmgSettings.source(spec)
    err = capsys.readouterr().err
    assert f"generator settings: {AmgSettings.source(spec)}" in err
    if spec.amg.generator is None:
        assert "has no official mask generator: using SamAutomaticMaskGenerator" in err
    else:
        assert f"defaults of {spec.amg.generator}" in err
    for ann in document["annotations"]:
        assert rle_decode(ann["segmentation"]).shape == (534, 800)


@family_models
def test_everything_keeps_masks_with_lowered_thresholds(
    name: str, export_test_model: Callable[[str], Path]
) -> None:
    """Random weights give few confident masks at the official thresholds: lowered ones
    show the generator's whole path (decode, filters, NMS, small regions) yields masks."""
    predictor = Predictor.from_pretrained(export_test_model(name), threads=2)
    settings = AmgSettings.for_spec(
        predictor.spec,
        points_per_side=4,
        pred_iou_thresh=0.0,
        stability_score_thresh=0.0,
        box_nms_thresh=1.0,
        min_mask_region_area=50,
    )
    image = cv2.cvtColor(cv2.imread(str(shared_path(*PHOTO))), cv2.COLOR_BGR2RGB)
    result = MaskGenerator(predictor, settings).generate_masks(image)
    assert len(result) > 0
    assert result.masks.shape[1:] == (534, 800)
    assert all(m.any() for m in result.masks)


@family_models
def test_eval_noc_on_grabcut(
    name: str, export_test_model: Callable[[str], Path], tmp_path: Path, capsys
) -> None:
    spec = _spec(name)
    grabcut = shared_path("data", "interactive", "GrabCut")
    out = tmp_path / "eval"
    clicks = (spec.max_points or 8) + 1  # more clicks than a fixed-size prompt takes
    argv = [
        "eval", "--model", str(export_test_model(name)), "--dataset", str(grabcut),
        "--format", "interactive", "--protocol", "clicks", "--max-clicks", str(clicks),
        "--limit", "2", "--out", str(out), "--no-progress", "--threads", "2",
    ]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr()
    assert "clicks: 2 samples, mIoU" in printed.out and "NoC@90" in printed.out
    records = [json.loads(x) for x in (out / "records.jsonl").read_text().splitlines()]
    assert len(records) == 2
    for r in records:
        assert 1 <= len(r["ious"]) <= clicks and all(0.0 <= v <= 1.0 for v in r["ious"])
        if spec.max_points is not None:
            assert len(r["clicks"]) <= spec.max_points
    if not spec.mask_prompt:
        assert f"{spec.title} takes no mask prompt" in printed.err
    if spec.max_points is not None:
        assert (
            f"{spec.title} " in printed.err and f"at most {spec.max_points} points" in printed.err
        )


def _check_quantized(folder: Path, spec: ModelSpec, precision: str) -> None:
    """The folder's manifest, fidelity report, and that it loads and predicts."""
    from samedge.manifest import Manifest, required_roles

    manifest = Manifest.read(folder)
    assert manifest.precision == {"encoder": precision, "decoder": precision}
    assert set(required_roles(spec.mask_prompt)) <= set(manifest.files)
    assert ("decoder_mask" in manifest.files) == spec.mask_prompt
    stats = manifest.extra["fidelity"]["stats"]
    for protocol in ("center", "box", "all"):
        assert 0.0 <= stats[protocol]["mean_iou"] <= 1.0, (precision, protocol)
    predictor = Predictor.from_pretrained(folder, threads=2)
    image = np.zeros((240, 320, 3), np.uint8)
    image[60:180, 80:240] = 200
    emb = predictor.encode(image)
    result = predictor.predict(emb, points=[[160, 120]], labels=[1], multimask_output=False)
    assert result.masks.shape == (1, 1, 240, 320) and np.isfinite(result.scores).all()


def _quantised_weights_in_folded_products(path: Path) -> list[str]:
    """Products of constants alone (no graph input upstream) that read a dequantised
    weight."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    varying = {i.name for i in graph.input} - {t.name for t in graph.initializer}
    for node in graph.node:
        if varying.intersection(node.input):
            varying.update(node.output)
    dequantised = {n.output[0] for n in graph.node if n.op_type == "DequantizeLinear"}
    return [
        n.name
        for n in graph.node
        if n.op_type in ("MatMul", "Gemm", "Conv")
        and not varying.intersection(n.input)
        and dequantised.intersection(n.input)
    ]


@family_models
def test_quantize_int8_static_with_its_fidelity_report(
    name: str, export_test_model: Callable[[str], Path], tmp_path: Path, capsys
) -> None:
    """Static INT8 of encoder and decoder(s), calibrated on one photo, with the fidelity
    report against the fp32 parent (random weights: the IoU is measured, not required)."""
    folder = export_test_model(name)
    grabcut = shared_path("data", "interactive", "GrabCut")
    out = tmp_path / "int8-static"
    argv = [
        "quantize", str(folder), "--precision", "int8-static", "--out", str(out),
        "--fidelity", str(grabcut), "--fidelity-limit", "1", "--calibration",
        str(shared_path("data", "images")), "--num-images", "1", "--force",
        "--threads", "2", "--no-progress",
    ]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert f"wrote {out}" in printed and "fidelity    box: 1 prompts, mean IoU" in printed
    assert "image embedding error (relative L2) over 1 images: mean 0.0" in printed
    _check_quantized(out, _spec(name), "int8-static")
    error = json.loads((out / "samedge.json").read_text())["extra"]["fidelity"]["embedding_error"]
    assert 0.0 < error["mean"] < 0.2  # INT8 moved the embedding, by a few percent
    record = json.loads((out / "samedge.json").read_text())["extra"]["quantization"]
    assert record["encoder_runtime"] == "onnxruntime"  # ONNX Runtime's operators
    assert record["int8_ops"] == {c: list(_spec(name).int8_ops) for c in ("encoder", "decoder")}
    # A weight that a product of constants reads (folded when the graph loads: SAM's point
    # encoding matrix) stays fp32 everywhere, which ONNX Runtime's exact 8-bit mode needs.
    for role in ("encoder", "decoder"):
        assert not _quantised_weights_in_folded_products(out / f"{role}.onnx"), role
    # Where the fidelity was measured: the same graph agrees less where 8-bit products
    # saturate, which samedge's ONNX Runtime sessions never let them do.
    where = json.loads((out / "samedge.json").read_text())["extra"]["fidelity"]["measured_on"]
    products = "exact" if diagnostics.saturating_int8_cpu() else "native"
    cpu = diagnostics.cpu_info()[0]
    assert where == {"cpu": cpu, "encoder": "CPUExecutionProvider", "int8_products": products}
    assert f"  measured with CPUExecutionProvider on {cpu}, 8-bit products {products}" in printed


@pytest.mark.slow
@family_models
def test_quantize_fp16_and_int8_dynamic(
    name: str, export_test_model: Callable[[str], Path], tmp_path: Path
) -> None:
    from samedge.quantize import QuantizeConfig, quantize_model

    grabcut = shared_path("data", "interactive", "GrabCut")
    common = {"fidelity_data": grabcut, "fidelity_limit": 1, "threads": 2, "force": True}
    for precision in ("fp16", "int8-dynamic"):
        cfg = QuantizeConfig(precision=precision, **common)
        result = quantize_model(export_test_model(name), tmp_path / precision, cfg)
        assert result.folder == tmp_path / precision
        _check_quantized(result.folder, _spec(name), precision)


def test_web_dropdown_lists_every_family_from_the_cache(
    export_test_model: Callable[[str], Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The model dropdown is the registry's models found in the cache, in registry order."""
    from samedge.web.models import discover_models

    monkeypatch.setenv("SAMEDGE_HOME", str(tmp_path))
    (tmp_path / "models").mkdir()
    for name in SMALLEST:
        (tmp_path / "models" / name).symlink_to(export_test_model(name))
    entries = discover_models()
    assert [e.label for e in entries] == [n for n in list_models() if n in SMALLEST]
    assert all(e.random_weights and e.precision == "fp32" for e in entries)


@family_models
def test_web_engine_click_and_box(
    name: str, export_test_model: Callable[[str], Path], tmp_path: Path
) -> None:
    from samedge.web.cache import EmbeddingCache
    from samedge.web.engine import Choice, Engine
    from samedge.web.models import ModelCatalog, PredictorPool, discover_models
    from samedge.web.state import Prompts

    entries = discover_models([str(export_test_model(name))])
    engine = Engine(
        ModelCatalog(entries, ["cpu"]),
        out_dir=tmp_path,
        cache=EmbeddingCache(2),
        pool=PredictorPool(threads=2),
    )
    choice = Choice(entries[0].label, entries[0].precision, "cpu")
    image = engine.load(shared_path(*PHOTO), "groceries.jpg")
    click = engine.segment(image, Prompts("point").add("positive", 400, 267), choice, "s")
    assert click.masks is not None and click.masks.shape == (1, 534, 800)
    assert click.encode_ms is not None and click.decode_ms is not None
    boxes = Prompts("box").add("corner", 100, 100).add("corner", 400, 400)
    boxes = boxes.add("corner", 450, 100).add("corner", 700, 500)
    result = engine.segment(image, boxes, choice, "s")
    assert result.masks is not None and result.masks.shape == (2, 534, 800)
    assert result.encode_ms is None  # the embedding was cached by the click
    record = json.loads(result.json_path.read_text())
    assert record["model"] == name and len(record["masks"]) == 2


@pytest.mark.slow
@family_models
def test_bench_compare_torch_against_the_official_predictor(
    name: str,
    export_test_model: Callable[[str], Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spec = _spec(name)
    _reference_path(spec, monkeypatch)
    out = tmp_path / "bench.json"
    argv = [
        "bench", "--model", str(export_test_model(name)), "--images",
        str(shared_path(*PHOTO)), "--runs", "1", "--repeats", "1", "--prompts-per-image", "1",
        "--threads", "2", "--import-tries", "1", "--no-progress", "--json", str(out),
        "--compare-torch",
    ]  # fmt: skip
    assert main(argv) == 0
    result = json.loads(out.read_text())
    sides = result["sides"]
    assert list(sides) == ["samedge", "official"]
    assert sides["official"]["package"] == spec.reference_package
    assert sides["official"]["weights"].startswith("random-init seed 0")
    for side in sides.values():
        assert side["stages_ms"]["encoder"]["median"] > 0
        assert side["stages_ms"]["click"]["median"] > 0
    assert result["ratios"]["stages_median"]["encoder"] > 0


def test_models_list_ends_with_which_model_to_pick(capsys: pytest.CaptureFixture[str]) -> None:
    from samedge.cli.models import GUIDE

    assert main(["models", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 + len(list_models()) + 1 + len(GUIDE.splitlines())
    assert lines[-len(GUIDE.splitlines()) :] == GUIDE.splitlines()
    assert all(len(line) <= 100 for line in GUIDE.splitlines())
    rows = [line for line in GUIDE.splitlines() if line.startswith("  ")]
    assert len(rows) >= len(FAMILIES)
    for row in rows:  # the second column (from character 20) names a registered model
        assert row[20:].split()[0] in list_models(), row
    for family in FAMILIES:  # every family has a row
        assert any(set(row.split()) & set(FAMILIES[family]) for row in rows), family


@family_models
def test_static_int8_default_ops_hold_the_encoders_weight_products(
    name: str, export_test_model: Callable[[str], Path]
) -> None:
    """``ModelSpec.int8_ops`` names operators that carry weights in the exported encoder:
    otherwise int8-static would quantise nothing (EfficientViT-SAM's linear layers are
    1 x 1 convolutions, so its spec adds Conv)."""
    import onnx

    graph = onnx.load(str(export_test_model(name) / "encoder.onnx"), load_external_data=False)
    weights = {init.name for init in graph.graph.initializer}
    with_weights = [
        node.op_type
        for node in graph.graph.node
        if node.op_type in _spec(name).int8_ops and len(node.input) > 1 and node.input[1] in weights
    ]
    assert with_weights, f"no {_spec(name).int8_ops} with weights in {name}'s encoder"


def test_int8_static_that_quantises_nothing_is_an_error(tmp_path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from samedge.quantize.graph import quantized_products

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    w = numpy_helper.from_array(np.eye(4, dtype=np.float32), "w")
    plain = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "g", [x], [y], [w])
    onnx.save(helper.make_model(plain), tmp_path / "plain.onnx")
    assert quantized_products(tmp_path / "plain.onnx") == 0
    nodes = [
        helper.make_node("DequantizeLinear", ["xq", "s"], ["xd"]),
        helper.make_node("DequantizeLinear", ["wq", "s"], ["wd"]),
        helper.make_node("MatMul", ["xd", "wd"], ["y"]),
    ]
    xq = helper.make_tensor_value_info("xq", TensorProto.UINT8, [1, 4])
    inits = [
        numpy_helper.from_array(np.ones((4, 4), np.int8), "wq"),
        numpy_helper.from_array(np.array(0.1, np.float32), "s"),
    ]
    onnx.save(
        helper.make_model(helper.make_graph(nodes, "q", [xq], [y], inits)), tmp_path / "q.onnx"
    )
    assert quantized_products(tmp_path / "q.onnx") == 1
