"""``samedge segment`` and friends, as a user runs them: outputs and one-line errors."""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from samedge.cli.main import main
from samedge.maskutils import rle_decode

from .conftest import requires_export, shared_path

TRUCK = ("data", "images", "truck.jpg")


@pytest.fixture(scope="module")
def model_dir(export_test_model: Any) -> Path:
    return export_test_model("sam2.1_hiera_tiny")


def _error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("samedge: error: ") and err.count("\n") == 1, err
    return err


@requires_export
def test_segment_writes_mask_overlay_and_json(model_dir: Path, tmp_path: Path) -> None:
    image = shared_path(*TRUCK)
    out = tmp_path / "mask.png"
    code = main(
        [
            "segment",
            str(image),
            "--model",
            str(model_dir),
            "--point",
            "500,375",
            "--point",
            "1200,500,0",
            "--out",
            str(out),
            "--overlay",
            str(tmp_path / "overlay.png"),
            "--json",
            str(tmp_path / "result.json"),
        ]
    )
    assert code == 0
    mask = np.asarray(Image.open(out))
    assert mask.shape == (1200, 1800) and set(np.unique(mask)) <= {0, 255}
    overlay = np.asarray(Image.open(tmp_path / "overlay.png"))
    photo = np.asarray(Image.open(image))
    inside = mask > 0
    assert overlay.shape == photo.shape
    assert np.abs(overlay[inside].astype(int) - photo[inside]).mean() > 10  # tinted
    result = json.loads((tmp_path / "result.json").read_text())
    record = result["masks"][0]
    np.testing.assert_array_equal(rle_decode(record["segmentation"]), inside)
    assert record["area"] == int(inside.sum())
    assert result["prompts"]["labels"] == [1.0, 0.0]
    assert set(result["timings_ms"]) == {"encode", "decode"}


@requires_export
def test_segment_multimask_and_several_boxes(model_dir: Path, tmp_path: Path) -> None:
    image = str(shared_path(*TRUCK))
    out = tmp_path / "m.png"
    assert (
        main(
            [
                "segment",
                image,
                "--model",
                str(model_dir),
                "--box",
                "100,100,900,700",
                "--out",
                str(out),
                "--multimask",
            ]
        )
        == 0
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m_0.png", "m_1.png", "m_2.png"]
    out2 = tmp_path / "boxes" / "b.png"
    assert (
        main(
            [
                "segment",
                image,
                "--model",
                str(model_dir),
                "--box",
                "100,100,900,700",
                "--box",
                "900,200,1700,1100",
                "--out",
                str(out2),
            ]
        )
        == 0
    )
    assert sorted(p.name for p in out2.parent.iterdir()) == ["b_0.png", "b_1.png"]


@requires_export
def test_bad_inputs_fail_with_one_line_and_write_nothing(
    model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image = str(shared_path(*TRUCK))
    out = tmp_path / "out" / "mask.png"
    model = str(model_dir)
    assert "image not found" in _error(
        capsys, ["segment", "nope.jpg", "--model", model, "--point", "1,1", "--out", str(out)]
    )
    (tmp_path / "notes.txt").write_text("not an image")
    assert "not an image" in _error(
        capsys,
        [
            "segment",
            str(tmp_path / "notes.txt"),
            "--model",
            model,
            "--point",
            "1,1",
            "--out",
            str(out),
        ],
    )
    assert "outside the 1800x1200 image" in _error(
        capsys, ["segment", image, "--model", model, "--point", "1900,10", "--out", str(out)]
    )
    assert "outside" in _error(
        capsys, ["segment", image, "--model", model, "--box=-5,0,100,100", "--out", str(out)]
    )
    assert "no prompt" in _error(capsys, ["segment", image, "--model", model, "--out", str(out)])
    # PNG data was written under a .jpg name
    argv = ["segment", image, "--model", model, "--point", "1,1", "--out", str(out)]
    assert "--overlay must be a .png file" in _error(capsys, [*argv, "--overlay", "o.jpg"])
    assert "did you mean sam_vit_b" in _error(
        capsys, ["segment", image, "--model", "sam_vit_bb", "--point", "1,1", "--out", str(out)]
    )
    assert "model folder not found" in _error(
        capsys, ["segment", image, "--model", "./missing-dir", "--point", "1,1", "--out", str(out)]
    )
    # A model folder with a missing, a corrupt and a replaced graph.
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "samedge.json").write_text((model_dir / "samedge.json").read_text())
    for path in model_dir.iterdir():  # every graph and weight file but decoder.onnx
        if path.name not in ("samedge.json", "decoder.onnx"):
            (broken / path.name).symlink_to(path)
    assert "decoder file decoder.onnx is missing" in _error(
        capsys, ["segment", image, "--model", str(broken), "--point", "1,1", "--out", str(out)]
    )
    data = bytearray((model_dir / "decoder.onnx").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (broken / "decoder.onnx").write_bytes(bytes(data))
    assert "does not match its manifest" in _error(
        capsys, ["segment", image, "--model", str(broken), "--point", "1,1", "--out", str(out)]
    )
    (broken / "samedge.json").write_text("{not json")
    assert "corrupt" in _error(
        capsys, ["segment", image, "--model", str(broken), "--point", "1,1", "--out", str(out)]
    )
    # A folder exported by samedge before the decoder was split into context + decoders.
    old = json.loads((model_dir / "samedge.json").read_text()) | {"format_version": 1}
    (broken / "samedge.json").write_text(json.dumps(old))
    assert "written by an older samedge (format 1" in _error(
        capsys, ["segment", image, "--model", str(broken), "--point", "1,1", "--out", str(out)]
    )
    assert not out.parent.exists()


@requires_export
def test_model_swapped_for_another_is_detected(
    model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A manifest edited to claim another model does not get past the graph I/O check."""
    other = tmp_path / "other"
    shutil.copytree(model_dir, other, copy_function=lambda s, d: Path(d).symlink_to(s))
    manifest = json.loads((model_dir / "samedge.json").read_text())
    manifest["model"] = "sam_vit_b"
    (other / "samedge.json").unlink()
    (other / "samedge.json").write_text(json.dumps(manifest))
    err = _error(
        capsys,
        [
            "segment",
            str(shared_path(*TRUCK)),
            "--model",
            str(other),
            "--point",
            "1,1",
            "--out",
            str(tmp_path / "m.png"),
        ],
    )
    assert "not those of sam_vit_b" in err


@requires_export
def test_encoder_of_another_input_size_is_detected(
    export_test_model: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """MobileSAM's folder claiming to be EfficientViT-SAM L0: the graphs' names match, the
    encoder's 1024-pixel input does not (it was an ONNX Runtime traceback at encode)."""
    mobile = export_test_model("mobile_sam")
    other = tmp_path / "other"
    shutil.copytree(mobile, other, copy_function=lambda s, d: Path(d).symlink_to(s))
    manifest = json.loads((mobile / "samedge.json").read_text())
    manifest |= {"model": "efficientvit_sam_l0", "family": "efficientvit_sam"}
    (other / "samedge.json").unlink()
    (other / "samedge.json").write_text(json.dumps(manifest))
    argv = ["segment", str(shared_path(*TRUCK)), "--model", str(other), "--point", "1,1"]
    err = _error(capsys, [*argv, "--out", str(tmp_path / "m.png")])
    assert "takes images of shape [1, 3, 1024, 1024], efficientvit_sam_l0 512 x 512" in err
    assert not (tmp_path / "m.png").exists()


def test_missing_export_extra_is_named(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda n, *a: None if n == "torch" else real(n, *a)
    )
    err = _error(capsys, ["export", "sam_vit_b", "--random-init", "0", "--out", "x"])
    assert "pip install 'samedge[export]'" in err


def test_debug_shows_traceback(tmp_path: Path) -> None:
    argv = [
        sys.executable,
        "-m",
        "samedge",
        "segment",
        "nope.jpg",
        "--model",
        "sam_vit_b",
        "--point",
        "1,1",
        "--out",
        str(tmp_path / "m.png"),
    ]
    plain = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin", "SAMEDGE_HOME": str(tmp_path)},
    )
    assert plain.returncode == 2 and "Traceback" not in plain.stderr
    debug = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin", "SAMEDGE_HOME": str(tmp_path), "SAMEDGE_DEBUG": "1"},
    )
    assert debug.returncode != 0 and "Traceback" in debug.stderr


def test_models_list(
    model_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("SAMEDGE_HOME", str(tmp_path))
    assert main(["models", "list", "sam2*"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 5 and lines[1].startswith("sam2.1_hiera_tiny")
    # An export in the cache says whether it holds random weights; a broken one says so
    # (an empty manifest showed as 'exported').
    shutil.copytree(model_dir, tmp_path / "models" / "sam2.1_hiera_tiny")
    (tmp_path / "models" / "sam2.1_hiera_small").mkdir(parents=True)
    (tmp_path / "models" / "sam2.1_hiera_small" / "samedge.json").write_text("{}")
    assert main(["models", "list", "sam2.1_hiera_[ts]*"]) == 0
    tiny, small = capsys.readouterr().out.splitlines()[1:]
    assert "exported (random weights)" in tiny and "export unreadable: export it again" in small


#: A valid command line of every command that shows progress.
PROGRESS_COMMANDS = {
    "export": ["export", "sam_vit_b"],
    "quantize": ["quantize", "m", "--precision", "fp16", "--out", "o", "--fidelity", "d"],
    "everything": ["everything", "a.jpg", "--model", "m", "--out", "a.json"],
    "batch": ["batch", "images", "--model", "m", "--out", "o", "--everything"],
    "track": ["track", "v.mp4", "--model", "m", "--out", "o"],
    "eval": ["eval", "--model", "m", "--dataset", "d", "--format", "folder", "--out", "o"],
    "bench": ["bench", "--model", "m"],
    "gaze": ["gaze", "--image", "a.jpg", "--model", "m"],
    "models pull": ["models", "pull", "sam_vit_b"],
}


def _subcommands(parser: argparse.ArgumentParser, prefix: str = "") -> Iterator[tuple[str, Any]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield f"{prefix}{name}", sub
                yield from _subcommands(sub, f"{prefix}{name} ")


def test_one_progress_flag_with_both_spellings_on_every_command_that_shows_progress() -> None:
    from samedge.cli.main import build_parser

    parser = build_parser()
    flagged = {
        name
        for name, sub in _subcommands(parser)
        if any("--no-progress" in a.option_strings for a in sub._actions)
    }
    assert flagged == set(PROGRESS_COMMANDS)
    for argv in PROGRESS_COMMANDS.values():
        assert parser.parse_args(argv).no_progress is False
        for flag in ("--no-progress", "--quiet"):
            assert parser.parse_args([*argv, flag]).no_progress is True, (argv, flag)


def test_every_threads_option_takes_a_positive_integer() -> None:
    """--threads 0 meant 'all cores' on some commands and -2 a ValueError traceback."""
    from samedge.cli.main import build_parser
    from samedge.cli.options import positive_int

    threads = {
        name: action.type
        for name, sub in _subcommands(build_parser())
        for action in sub._actions
        if "--threads" in action.option_strings
    }
    assert {"segment", "everything", "export", "web", "gaze", "bench", "track"} <= set(threads)
    assert {name for name, kind in threads.items() if kind is not positive_int} == set()


def test_step_lines_go_to_stderr_only_and_stop_with_no_progress(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from samedge.cli.options import step_printer

    step_printer(argparse.Namespace(no_progress=False))("encoder: tracing")
    captured = capsys.readouterr()
    assert captured.out == "" and re.fullmatch(
        r"samedge: \[ *\d+\.\d s\] encoder: tracing\n", captured.err
    )
    step_printer(argparse.Namespace(no_progress=True))("encoder: tracing")
    assert capsys.readouterr() == ("", "")


@requires_export
def test_openvino_precision_without_openvino_is_refused(
    model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without ``--provider openvino`` the option would do nothing: one line naming the fix."""
    argv = ["segment", str(shared_path(*TRUCK)), "--model", str(model_dir), "--point"]
    argv += ["500,375", "--out", str(tmp_path / "m.png"), "--openvino-precision", "bf16"]
    err = _error(capsys, argv)
    assert "--openvino-precision bf16 applies to OpenVINO: add --provider openvino" in err
    assert not (tmp_path / "m.png").exists()


@requires_export
def test_unknown_provider_is_refused_before_any_work(
    model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A mistyped ``--provider`` was a ValueError traceback in every command, and batch
    reported it as a dead worker after writing its job file."""
    image = str(shared_path(*TRUCK))
    mask = tmp_path / "m.png"
    argv = ["segment", image, "--model", str(model_dir), "--point", "500,375", "--out", str(mask)]
    err = _error(capsys, [*argv, "--provider", "cuda,fooo"])
    assert "unknown execution provider 'fooo': use one of cpu, cuda," in err
    out = tmp_path / "batch"
    argv = ["batch", image, "--model", str(model_dir), "--everything", "--out", str(out)]
    assert "unknown execution provider 'fooo'" in _error(capsys, [*argv, "--provider", "fooo"])
    assert not mask.exists() and not out.exists()
