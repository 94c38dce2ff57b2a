"""``samedge quantize`` as a user sees it: progress on stderr, onnxruntime's pre-processing
advice left out (samedge skips that step on purpose), files readable as the umask allows."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

import pytest

from samedge.cli.main import main
from samedge.quantize.convert import without_preprocess_advice

from ..conftest import shared_path


@pytest.mark.slow
def test_quantize_shows_progress_on_stderr_without_the_advice(
    export_test_model,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    parent = export_test_model("sam2.1_hiera_tiny")
    out = tmp_path / "int8"
    argv = ["quantize", str(parent), "--precision", "int8-dynamic", "--component", "decoder"]
    argv += ["--fidelity", str(shared_path("data", "interactive", "GrabCut"))]
    argv += ["--fidelity-limit", "2", "--threshold", "0", "--threads", "2", "--out", str(out)]
    previous = os.umask(0o027)
    try:
        assert main(argv) == 0
    finally:
        os.umask(previous)
    captured = capfd.readouterr()
    assert "pre-processing" not in captured.err
    assert not [r for r in caplog.records if "pre-processing" in r.getMessage()]
    assert "samedge: [" in captured.err and "measuring fidelity" in captured.err
    assert "sample" in captured.err and "100%" in captured.err  # the fidelity progress bar
    assert "samedge: [" not in captured.out and "%|" not in captured.out
    assert captured.out.startswith(f"wrote {out} ")
    # The staged folder (mkdtemp: 0700) and the parent's copied files get the umask's modes.
    assert stat.S_IMODE(out.stat().st_mode) == 0o750
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in out.iterdir()}
    assert "encoder.onnx.data" in modes and set(modes.values()) == {0o640}


def test_only_the_pre_processing_advice_is_dropped(caplog: pytest.LogCaptureFixture) -> None:
    advice = (
        "Please consider to run pre-processing before quantization. Refer to example: "
        "https://github.com/microsoft/onnxruntime-inference-examples"
    )
    with without_preprocess_advice():
        logging.warning(advice)
        logging.warning("Please consider pre-processing before quantization. See ...")
        logging.warning("another warning")
    logging.warning(advice)  # outside the block: kept
    assert [r.getMessage() for r in caplog.records] == ["another warning", advice]
