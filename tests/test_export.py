"""The exporter: manifest, parity gate, checkpoints (needs the [export] extra)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from samedge.errors import ExportError
from samedge.manifest import Manifest, sha256_file
from samedge.registry import get_spec

from .conftest import TEST_SEED, CheckpointExport, requires_export

pytestmark = [requires_export, pytest.mark.export]


@pytest.mark.parametrize("name", ["sam2.1_hiera_tiny", "sam_vit_b", "mobile_sam"])
def test_export_writes_verified_graphs_and_manifest(export_test_model: Any, name: str) -> None:
    import onnx

    folder = export_test_model(name)
    expected = [
        "context.onnx",  # under the external-data threshold
        "decoder.onnx",
        "decoder.onnx.data",
        "decoder_head.onnx",  # decoder.onnx in two graphs, for segment everything
        "decoder_head.onnx.data",
        "decoder_mask.onnx",
        "decoder_mask.onnx.data",
        "encoder.onnx",
        "encoder.onnx.data",
        "samedge.json",
        "upscaler.onnx",
    ]
    video = get_spec(name).video
    if video is not None:  # SAM 2.1: the video tracking graphs too (tests/video)
        expected += [f"{role}.onnx{ext}" for role in video.roles for ext in ("", ".data")]
    assert sorted(p.name for p in folder.iterdir()) == sorted(expected)
    manifest = Manifest.read(folder)
    assert manifest.model == name and manifest.opset == 17
    assert manifest.weights == {"source": "random-init", "seed": TEST_SEED}
    for entries in manifest.files.values():
        for entry in entries:
            assert sha256_file(folder / entry.path) == entry.sha256
    assert manifest.parity["passed"] is True
    assert manifest.parity["encoder_max_rel_error"] < 1e-4
    assert manifest.parity["decoder_max_rel_error"] < 1e-5
    assert manifest.precision == {"encoder": "fp32", "decoder": "fp32"}
    spec = get_spec(name)
    # The version of the distribution that installed the official package is recorded
    # (mobile_sam: mobilesam-mirror).
    from importlib import metadata

    (dist,) = metadata.packages_distributions()[spec.reference_package]
    assert manifest.exporter[dist] == metadata.version(dist)
    for graph, names in (
        ("decoder", spec.decoder_inputs),
        ("decoder_mask", spec.mask_decoder_inputs),
    ):
        decoder = onnx.load(str(folder / f"{graph}.onnx"))
        inputs = {i.name: i for i in decoder.graph.input}
        assert list(inputs) == list(names)
        dims = inputs["point_coords"].type.tensor_type.shape.dim
        assert [d.dim_param for d in dims[:2]] == ["batch", "num_points"]  # B, N dynamic
        assert [o.name for o in decoder.graph.output] == list(spec.decoder_outputs)
    for graph, names, outputs in (
        ("decoder_head", spec.head_inputs, spec.head_outputs),
        ("upscaler", spec.upscaler_inputs, ("low_res_masks",)),
    ):
        split = onnx.load(str(folder / f"{graph}.onnx"))
        assert [i.name for i in split.graph.input] == list(names)
        assert [o.name for o in split.graph.output] == list(outputs)
    context = onnx.load(str(folder / "context.onnx"))
    assert [i.name for i in context.graph.input] == list(spec.context_inputs)
    shapes = [
        tuple(d.dim_value for d in o.type.tensor_type.shape.dim) for o in context.graph.output
    ]
    assert shapes == list(spec.context_shapes)


@pytest.mark.slow
def test_failed_parity_gate_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from samedge.export import exporter

    monkeypatch.setattr(exporter, "DECODER_TOL", 0.0)
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("user file")
    with pytest.raises(ExportError, match=r"beyond tolerance.*nothing was written"):
        # the cheapest export (EfficientViT-SAM L0's encoder at 512 pixels): the gate is shared
        exporter.export_model(get_spec("efficientvit_sam_l0"), out, seed=TEST_SEED)
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]


def test_failed_export_leaves_no_folder_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """An export that fails removes the folders it created (they were left empty), and an
    output path that is a file, or a missing checkpoint, is one line before anything is
    created (the first was a FileExistsError traceback)."""
    from samedge.cli.main import main
    from samedge.export import exporter

    def fail(*_args: Any) -> None:
        raise ExportError("failed on purpose")

    monkeypatch.setattr(exporter, "_export_into", fail)
    out = tmp_path / "new" / "model"
    with pytest.raises(ExportError, match="failed on purpose"):
        exporter.export_model(get_spec("mobile_sam"), out, seed=TEST_SEED)
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "file.png").write_bytes(b"x")
    argv = ["export", "mobile_sam", "--random-init", "0", "--out", str(tmp_path / "file.png")]
    assert main([*argv, "--quiet"]) == 2
    assert "exists and is not a folder" in capsys.readouterr().err
    argv = ["export", "mobile_sam", "--checkpoint", str(tmp_path / "none.pt"), "--out", str(out)]
    assert main([*argv, "--quiet"]) == 2
    assert "checkpoint not found" in capsys.readouterr().err
    assert [p.name for p in tmp_path.iterdir()] == ["file.png"]


def test_image_size_option(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--image-size``: SAM 2 only, a multiple of 32, one line and exit 2 otherwise; the
    exporter gets the resized spec and, without --out, a folder of its own beside the
    model's default one (``samedge export NAME`` at 1024 keeps its folder)."""
    import samedge.export
    from samedge.cli.main import main

    monkeypatch.setenv("SAMEDGE_HOME", str(tmp_path / "home"))
    seen: list[tuple[int, Path]] = []

    def export(spec: Any, out: Path, **_kwargs: Any) -> None:
        seen.append((spec.image_size, out))
        raise ExportError("stopped here")

    monkeypatch.setattr(samedge.export, "export_model", export)
    base = ["export", "sam2.1_hiera_tiny", "--random-init", "0", "--quiet"]
    for argv, message in [
        (["export", "mobile_sam", "--image-size", "512"], "only SAM 2 models"),
        ([*base, "--image-size", "500"], "a positive multiple of 32, got 500"),
        ([*base, "--image-size", "512"], "stopped here"),
        ([*base, "--image-size", "1024"], "stopped here"),
    ]:
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err, err
    models = tmp_path / "home" / "models"
    assert seen == [(512, models / "sam2.1_hiera_tiny-512px"), (1024, models / "sam2.1_hiera_tiny")]
    with pytest.raises(SystemExit) as exit_info:  # argparse's own line
        main(["export", "sam2.1_hiera_tiny", "--image-size", "0"])
    assert exit_info.value.code == 2


def test_unreadable_checkpoint_names_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The cached checkpoint: pull it again with --force (a plain pull keeps a file it
    cannot verify: EfficientSAM publishes neither sha256 nor size); a file of the user's:
    is it a checkpoint at all."""
    from samedge.cli.main import main
    from samedge.hub import checkpoint_path

    monkeypatch.setenv("SAMEDGE_HOME", str(tmp_path / "home"))
    cached = checkpoint_path(get_spec("efficientsam_ti"))
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"PK\x03\x04 not really a zip")
    out = tmp_path / "out"
    assert main(["export", "efficientsam_ti", "--out", str(out), "--quiet"]) == 2
    assert "models pull efficientsam_ti --force'" in capsys.readouterr().err
    mine = tmp_path / "mine.pt"
    mine.write_bytes(b"<html>")
    argv = ["export", "efficientsam_ti", "--checkpoint", str(mine), "--out", str(out)]
    assert main([*argv, "--quiet"]) == 2
    assert "is it a PyTorch checkpoint?" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.slow
def test_export_from_checkpoint_uses_its_weights_at_the_size_asked(
    checkpoint_export: CheckpointExport,
) -> None:
    """A checkpoint file in the official layout (SAM 2: {'model': state_dict}) loads safely
    and its weights are the ones exported: ``checkpoint_export`` (``--image-size 256``; the
    seeded weights, only the object-score head's bias changed) gives the image embedding of
    the official SAM2ImagePredictor at 256 pixels with the seeded weights."""
    import torch

    from samedge import Predictor
    from samedge.export.build import build_model, official_predictor

    assert checkpoint_export.returncode == 0, checkpoint_export.stderr[-2000:]
    out, ckpt = checkpoint_export.folder, checkpoint_export.checkpoint
    manifest = json.loads((out / "samedge.json").read_text())
    assert manifest["weights"] == {
        "source": "checkpoint",
        "file": ckpt.name,
        "sha256": sha256_file(ckpt),
    }
    assert manifest["extra"] == {"image_size": checkpoint_export.image_size}
    spec = get_spec("sam2.1_hiera_tiny").at_image_size(checkpoint_export.image_size)
    image = np.random.default_rng(0).integers(0, 255, (300, 400, 3), dtype=np.uint8)
    ours = Predictor.from_pretrained(out).encode(image).image_embeddings
    official = official_predictor(spec, build_model(spec, seed=TEST_SEED))
    with torch.inference_mode():
        official.set_image(image)
    reference = official._features["image_embed"].numpy()
    assert ours.shape == reference.shape == (1, 256, 16, 16)
    scale = float(np.abs(reference).max())
    assert scale > 0.1  # not a degenerate embedding
    np.testing.assert_allclose(ours, reference, rtol=0, atol=1e-4 * scale)
    # Other seeded weights give another embedding: the comparison can fail.
    other = official_predictor(spec, build_model(spec, seed=TEST_SEED + 1))
    with torch.inference_mode():
        other.set_image(image)
    assert np.abs(other._features["image_embed"].numpy() - ours).max() > 0.1 * scale


def test_mismatched_and_unsafe_checkpoints_are_rejected(tmp_path: Path) -> None:
    import torch

    from samedge.export.build import build_model

    wrong = tmp_path / "wrong.pth"
    torch.save({"image_encoder.weight": torch.zeros(3)}, wrong)
    with pytest.raises(ExportError, match=r"does not match sam_vit_b.*another model"):
        build_model(get_spec("sam_vit_b"), checkpoint=wrong)

    class Evil:
        def __reduce__(self) -> tuple:
            return (print, ("code ran",))

    evil = tmp_path / "evil.pth"
    torch.save({"x": Evil()}, evil)
    with pytest.raises(ExportError, match="cannot read checkpoint"):
        build_model(get_spec("sam_vit_b"), checkpoint=evil)
    with pytest.raises(ExportError, match="not found"):
        build_model(get_spec("sam_vit_b"), checkpoint=tmp_path / "missing.pth")


def test_weights_beside_the_graph_are_listed_and_verified(
    export_test_model: Any, tmp_path: Path
) -> None:
    """Graphs over 4 MB are written as <graph>.onnx + <graph>.onnx.data (less memory when
    loaded; protobuf's 2 GB limit for SAM ViT-H), and the data file is checked on load."""
    import shutil

    from samedge import Predictor

    out = tmp_path / "model"
    shutil.copytree(export_test_model("sam2.1_hiera_tiny"), out)
    manifest = Manifest.read(out)
    assert [e.path for e in manifest.files["encoder"]] == ["encoder.onnx", "encoder.onnx.data"]
    assert (out / "encoder.onnx").stat().st_size < 2_000_000
    predictor = Predictor.from_pretrained(out)
    image = np.random.default_rng(0).integers(0, 255, (200, 300, 3), dtype=np.uint8)
    result = predictor.predict(predictor.encode(image), points=[[150, 100]], labels=[1])
    assert result.masks.shape == (1, 3, 200, 300)
    (out / "encoder.onnx.data").write_bytes(b"truncated")
    from samedge.errors import ArtifactError

    with pytest.raises(ArtifactError, match=r"encoder\.onnx\.data does not match its manifest"):
        Predictor.from_pretrained(out)
