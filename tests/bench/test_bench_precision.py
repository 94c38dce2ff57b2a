"""``samedge bench`` with several precisions of one model: the fp32 seed-0 SAM 2.1 tiny
export and an int8-dynamic decoder copy quantised here get one row each, with precision and
fidelity read from their manifests and speed-ups consistent with the timings. No speed is
asserted (benchmarks are not timed tests)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from samedge.bench.report import PRECISION_STAGES
from samedge.bench.worker import STAGES
from samedge.cli.main import main
from samedge.quantize import QuantizeConfig, quantize_model
from samedge.runtime.session import ProviderSettings, available_providers

from ..conftest import shared_path

MODEL = "sam2.1_hiera_tiny"


@pytest.fixture(scope="module")
def folders(
    export_test_model: Callable[[str], Path], tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Path]:
    fp32 = export_test_model(MODEL)
    int8 = tmp_path_factory.mktemp("precision") / "tiny-int8-decoder"
    cfg = QuantizeConfig(
        precision="int8-dynamic",
        component="decoder",
        fidelity_data=shared_path("data", "interactive", "GrabCut"),
        fidelity_limit=1,
        threads=2,
        force=True,
    )
    quantize_model(fp32, int8, cfg)
    return fp32, int8


@pytest.fixture(scope="module")
def bench(folders: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Any:
    fp32, int8 = folders
    out = tmp_path_factory.mktemp("bench-precision")
    argv = [
        "bench", "--model", str(fp32), "--model", str(int8),
        "--images", str(shared_path("data", "images", "dog.jpg")),
        "--runs", "1", "--repeats", "1", "--prompts-per-image", "1", "--threads", "2",
        "--no-floors", "--import-tries", "1", "--no-progress",
        "--json", str(out / "bench.json"), "--markdown", str(out / "bench.md"),
        # GPU options reach every worker; on a CPU-only build they fall back to the CPU
        "--provider", "tensorrt,cpu", "--trt-fp16", "--trt-cache", str(out / "trt"),
    ]  # fmt: skip
    assert main(argv) == 0
    return json.loads((out / "bench.json").read_text()), (out / "bench.md").read_text(), out


@pytest.mark.slow
@pytest.mark.export
def test_precision_rows_in_json(bench: Any, folders: tuple[Path, Path]) -> None:
    result, _, out = bench
    fp32, int8 = folders
    settings = result["config"]["provider_settings"]
    assert settings["trt_fp16"] is True and settings["trt_cache"] == str(out / "trt")
    assert ProviderSettings(**settings).trt_fp16  # round-trips
    assert result["config"]["provider_requested"] == "tensorrt,cpu"
    assert result["targets"] == {}  # no --targets: no figure is judged
    if "TensorrtExecutionProvider" not in available_providers():
        assert not (out / "trt").exists()
    rows = result["precision"]
    assert [r["label"] for r in rows] == ["fp32", "encoder fp32 + decoder int8-dynamic"]
    assert [r["model_folder"] for r in rows] == [str(fp32), str(int8)]
    assert rows[1]["precision"] == {"encoder": "fp32", "decoder": "int8-dynamic"}
    assert result["config"]["variants"] == [
        {"model_folder": str(int8), "precision": rows[1]["precision"]}
    ]
    # the baseline row is the samedge side; its speed-ups are 1
    assert rows[0]["stages_ms"] == result["sides"]["samedge"]["stages_ms"]
    assert rows[0]["fidelity"] is None and rows[0]["quantization"] is None
    assert all(v == 1.0 for v in rows[0]["speedup_median"].values())
    for row in rows:
        assert set(row["stages_ms"]) == set(STAGES) == set(row["speedup_median"])
        assert row["providers"]["encoder"] == "CPUExecutionProvider"
        assert row["peak_rss_mib"] > 50 and row["load_s"] > 0
        for stage in STAGES:
            expected = rows[0]["stages_ms"][stage]["median"] / row["stages_ms"][stage]["median"]
            assert row["speedup_median"][stage] == pytest.approx(expected, abs=2e-3)
        assert row["stages_ms"]["encoder"]["count"] == 1
        assert row["stages_ms"]["click"]["count"] == 1
    # fidelity as recorded by samedge quantize in the int8 folder's manifest
    manifest = json.loads((int8 / "samedge.json").read_text())["extra"]
    recorded = manifest["fidelity"]
    fid = rows[1]["fidelity"]
    assert fid["mean_iou"] == recorded["stats"]["all"]["mean_iou"]
    assert fid["min_iou"] == recorded["stats"]["all"]["min_iou"]
    assert fid["prompts"] == recorded["stats"]["all"]["prompts"] == 2
    assert fid["passed"] is recorded["passed"] and fid["threshold"] == 0.95
    assert rows[1]["quantization"]["components"] == ["decoder"]
    assert result["config"]["order"] == "alternating repeats: samedge 1, variant 1 1"


@pytest.mark.slow
@pytest.mark.export
def test_precision_rows_in_markdown(bench: Any, folders: tuple[Path, Path]) -> None:
    result, md, _ = bench
    _, int8 = folders
    table = md[md.index("| precision | folder |") :].splitlines()
    assert len(table) == 4  # header, separator, one row per model
    for stage in PRECISION_STAGES:
        assert f" {stage} ms | × |" in table[0]
    fp32_row, int8_row = table[2], table[3]
    assert fp32_row.startswith("| fp32 |") and "| reference | – |" in fp32_row
    assert int8_row.startswith(f"| encoder fp32 + decoder int8-dynamic | {int8.name} |")
    fid = result["precision"][1]["fidelity"]
    assert f"{fid['mean_iou']:.3f} / {fid['p1_iou']:.3f} / {fid['min_iou']:.3f}" in int8_row
    speedup = result["precision"][1]["speedup_median"]["decoder"]
    assert f"| {speedup:.2f} |" in int8_row


def test_every_model_must_be_the_same_model(
    export_test_model: Callable[[str], Path], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    tiny = export_test_model(MODEL)
    # a folder that says it holds another model (the check runs before anything is loaded)
    other = tmp_path / "other"
    other.mkdir()
    for path in tiny.iterdir():
        if path.name != "samedge.json":
            (other / path.name).symlink_to(path)
    manifest = json.loads((tiny / "samedge.json").read_text())
    manifest["model"] = "sam2.1_hiera_small"
    (other / "samedge.json").write_text(json.dumps(manifest))
    out = tmp_path / "r.json"
    argv = ["bench", "--model", str(tiny), "--model", str(other), "--json", str(out)]
    assert main([*argv, "--images", str(shared_path("data", "images", "dog.jpg"))]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("samedge: error: ") and "\n" not in err
    assert "is sam2.1_hiera_small, not sam2.1_hiera_tiny" in err and not out.exists()
