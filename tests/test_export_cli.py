"""``samedge export`` as a user sees it: steps on stderr, no exporter noise, readable files."""

from __future__ import annotations

import stat

import pytest

from .conftest import CheckpointExport, requires_export

pytestmark = [requires_export, pytest.mark.export, pytest.mark.slow]

GRAPHS = ("encoder", "context", "decoder", "decoder_mask", "decoder_head", "upscaler")


def test_export_shows_each_step_on_stderr_and_writes_files_for_the_umask(
    checkpoint_export: CheckpointExport,
) -> None:
    """``samedge export sam2.1_hiera_tiny --checkpoint FILE --image-size 256`` run under
    umask 027 (by the session's ``checkpoint_export``)."""
    run, out = checkpoint_export, checkpoint_export.folder
    assert run.returncode == 0, run.stderr[-2000:]
    # The exporter's shape inference used to warn once per fused attention block (~28 lines).
    assert "MultiHeadAttention" not in run.stderr and "Warning" not in run.stderr
    steps = [line.split("] ", 1)[1] for line in run.stderr.splitlines()]
    assert all(line.startswith("samedge: [") for line in run.stderr.splitlines())
    expected = ["building sam2.1_hiera_tiny in torch"]
    for graph in GRAPHS:
        expected += [f"{graph}: tracing", f"{graph}: checking"]
    assert steps[: len(expected)] == expected
    assert [s for s in steps if "parity" in s] == [
        "encoder: parity with torch",
        "decoder: parity with torch (and decoder_head + upscaler)",
        "decoder_mask: parity with torch",
        # SAM 2.1's video tracking graphs (samedge.export.video)
        "memory_attention: parity with torch",
        "memory_encoder: parity with torch",
        "track_decoder: parity with torch",
        "mask_prompt: parity with torch",
    ]
    assert steps[-1] == f"writing {out}"
    # stdout keeps the result only.
    assert len(run.stdout.splitlines()) == 1 and "(parity passed)" in run.stdout
    # Every file as open() makes it under umask 027, the .data files (onnx: 0600) included.
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in out.iterdir()}
    assert "encoder.onnx.data" in modes and set(modes.values()) == {0o640}
    assert stat.S_IMODE(out.stat().st_mode) == 0o750
