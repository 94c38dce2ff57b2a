"""samedge batch with the in-process executor on real photos: the merged COCO file, resume,
half-written shards, errors, a worker killed mid-run, segment everything and JSONL prompts."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from samedge.batch import BatchJob, BatchOptions, run_batch
from samedge.cli.main import main
from samedge.maskutils import rle_decode

from .conftest import MODEL, Dataset, Reference

#: Fields samedge batch sets in a box annotation; every other one stays as it was.
SET_FIELDS = {"segmentation", "area", "mask_score"}


def test_boxes_merged_file_keeps_the_coco_file(dataset: Dataset, reference: Reference) -> None:
    summary = reference.summary
    assert (summary.total, summary.done, summary.skipped, summary.failed) == (5, 4, 0, 1)
    assert summary.images_per_second > 0 and set(summary.stages) == {
        "read",
        "encode",
        "decode",
        "write",
    }
    source = json.loads(dataset.coco.read_text())
    merged = json.loads(reference.merged)
    assert merged.pop("samedge")["model"] == MODEL
    assert {k: v for k, v in merged.items() if k != "annotations"} == {
        k: v for k, v in source.items() if k != "annotations"
    }
    sizes = {im["id"]: (im["height"], im["width"]) for im in source["images"]}
    assert len(merged["annotations"]) == len(source["annotations"])
    for got, given in zip(merged["annotations"], source["annotations"], strict=True):
        if "bbox" not in given or given["image_id"] == 999:  # no box, or the broken image
            assert got == given
            continue
        assert {k: v for k, v in got.items() if k not in SET_FIELDS} == {
            k: v for k, v in given.items() if k not in SET_FIELDS
        }
        mask = rle_decode(got["segmentation"])
        assert mask.shape == sizes[given["image_id"]]
        assert got["area"] == int(mask.sum())
        assert np.isfinite(got["mask_score"])
    errors = [
        json.loads(line) for line in (reference.out / "errors.jsonl").read_text().splitlines()
    ]
    assert len(errors) == 1 and errors[0]["path"] == str(dataset.broken)
    assert "cannot read" in errors[0]["reason"] or "cannot identify" in errors[0]["reason"]


def test_box_masks_are_the_predictors(dataset: Dataset, reference: Reference, model_dir) -> None:
    """The shard of one image holds what Predictor.predict gives for its boxes (XYWH boxes
    turned into XYXY, the overhanging one clipped to the image)."""
    from samedge import Predictor
    from samedge.maskutils import rle_encode

    source = json.loads(dataset.coco.read_text())
    image = next(im for im in source["images"] if im["file_name"] == "teddy.jpg")
    anns = [a for a in source["annotations"] if a["image_id"] == image["id"]]
    xyxy = np.array([[x, y, x + w, y + h] for x, y, w, h in (a["bbox"] for a in anns)], float)
    xyxy = np.clip(xyxy, 0, [image["width"], image["height"]] * 2)
    path = Path(dataset.images.read_text().splitlines()[1:][dataset.names.index("teddy.jpg")])
    with Predictor.from_pretrained(model_dir, threads=1) as predictor:
        pred = predictor.predict(predictor.encode(path), boxes=xyxy, multimask_output=False)
    merged = {a["id"]: a for a in json.loads(reference.merged)["annotations"]}
    for i, ann in enumerate(anns):
        assert merged[ann["id"]]["segmentation"] == rle_encode(pred.masks[i, 0])
        assert merged[ann["id"]]["mask_score"] == pytest.approx(float(pred.scores[i, 0]), abs=1e-6)


def _shards(out: Path) -> list[Path]:
    return sorted((out / "shards").glob("*.json"))


def test_resume_skips_done_images_and_redoes_half_written_ones(
    dataset: Dataset, reference: Reference, model_dir, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    shutil.copytree(reference.out, out)
    job = BatchJob(model=str(model_dir), mode="boxes", out=str(out))
    again = run_batch(str(dataset.images), job, BatchOptions(), prompts=dataset.coco)
    assert (again.done, again.skipped, again.failed) == (0, 4, 1)
    assert (out / "masks.json").read_bytes() == reference.merged
    # A worker killed while writing leaves a temporary file and no shard; a shard cut short
    # (a copy, a full disk) does not read back: both images are redone.
    first, second = _shards(out)[:2]
    (first.parent / f".{first.name}.x1y2z3.tmp").write_bytes(first.read_bytes()[:50])
    first.unlink()
    second.write_bytes(second.read_bytes()[:-10])
    redo = run_batch(str(dataset.images), job, BatchOptions(), prompts=dataset.coco)
    assert (redo.done, redo.skipped, redo.failed) == (2, 2, 1)
    assert not list(out.rglob("*.tmp"))
    # One worker with two threads gives the same bytes as two single-threaded workers.
    assert (out / "masks.json").read_bytes() == reference.merged


def _children(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (Linux /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _is_spawned_worker(pid: int) -> bool:
    try:
        return b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def _batch_command(dataset: Dataset, model_dir: Path, out: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "samedge",
        "batch",
        str(dataset.images),
        "--model",
        str(model_dir),
        "--out",
        str(out),
        "--boxes",
        str(dataset.coco),
        "--no-progress",
        *extra,
    ]


def wait_for_first_shard(process: subprocess.Popen, out: Path, timeout: float = 120) -> int:
    """Shards done when the first one appears (the run still going)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = len(_shards(out)) if (out / "shards").is_dir() else 0
        if done:
            return done
        assert process.poll() is None, process.communicate()
        time.sleep(0.02)
    raise AssertionError("no shard written in time")


def check_one_record_per_image(dataset: Dataset, out: Path, reference: Reference) -> None:
    merged = json.loads((out / "masks.json").read_text())
    source = json.loads(dataset.coco.read_text())
    assert [a["id"] for a in merged["annotations"]] == [a["id"] for a in source["annotations"]]
    shards = _shards(out)
    assert len(shards) == len(dataset.names)
    image_ids = [json.loads(s.read_text())["image"]["id"] for s in shards]
    assert sorted(image_ids) == sorted(set(image_ids))
    assert (out / "masks.json").read_bytes() == reference.merged


def test_killed_worker_process_then_rerun(
    dataset: Dataset, reference: Reference, model_dir, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    command = _batch_command(dataset, model_dir, out, "--workers", "2")
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    done_at_kill = wait_for_first_shard(process, out)
    workers = [pid for pid in _children(process.pid) if _is_spawned_worker(pid)]
    assert len(workers) == 2, workers
    os.kill(workers[0], signal.SIGKILL)
    _, stderr = process.communicate(timeout=120)
    assert done_at_kill < len(dataset.names)
    assert process.returncode == 2, stderr
    assert "a worker process died" in stderr and "run the same command again" in stderr
    assert not (out / "masks.json").exists()
    rerun = subprocess.run(command, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    assert "skipped (already done)" in rerun.stdout
    check_one_record_per_image(dataset, out, reference)


def test_everything_records_are_samedge_everythings(
    dataset: Dataset, model_dir, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    photo = dataset.images.read_text().splitlines()[1 + dataset.names.index("teddy.jpg")]
    listing = tmp_path / "one.txt"
    listing.write_text(photo + "\n")
    flags = ["--fast", "--points-per-side", "6", "--pred-iou-thresh", "0", "--threads", "2"]
    flags += ["--stability-score-thresh", "0", "--model", str(model_dir)]
    out = tmp_path / "out"
    code = main(["batch", str(listing), "--everything", "--out", str(out), "--no-progress", *flags])
    assert code == 0
    assert "1 images: 1 done, 0 skipped (already done), 0 failed" in capsys.readouterr().out
    assert main(["everything", photo, "--out", str(tmp_path / "one.json"), *flags]) == 0
    single = json.loads((tmp_path / "one.json").read_text())
    merged = json.loads((out / "masks.json").read_text())
    assert merged["info"]["settings"] == single["settings"] and single["settings"]["fast"]
    assert merged["images"] == [{"id": 1, "file_name": photo, "width": 284, "height": 398}]
    assert len(single["annotations"]) > 0
    assert [
        {k: v for k, v in a.items() if k not in ("id", "image_id")} for a in merged["annotations"]
    ] == [{k: v for k, v in a.items() if k != "id"} for a in single["annotations"]]


def test_points_prompts_and_errors(
    dataset: Dataset, model_dir, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """JSONL prompts give Predictor.predict's masks; an unreadable image, an oversized one and
    a name not in INPUT go to the errors file and the run goes on."""
    from samedge import Predictor
    from samedge.maskutils import rle_encode

    lines = [
        # id and image_id are the merged file's numbering: the line's are dropped.
        {
            "image": "teddy.jpg",
            "points": [[140, 200]],
            "labels": [1],
            "category_id": 5,
            "id": 2,
            "image_id": 77,
        },
        {
            "image": "teddy.jpg",
            "points": [[140, 200], [10, 10]],
            "labels": [1, 0],
            "box": [50, 60, 250, 380],
        },
        {"image": "person1.jpg", "points": [[300, 200]], "labels": [1]},  # oversized here
        {"image": "broken.jpg", "points": [[1, 1]], "labels": [1]},
        {"image": "elsewhere.jpg", "points": [[1, 1]], "labels": [1]},
    ]
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps(line) + "\n" for line in lines))
    monkeypatch.setenv("SAMEDGE_MAX_PIXELS", "200000")  # teddy 113,032 pixels; person1 270,000
    out = tmp_path / "out"
    job = BatchJob(model=str(model_dir), mode="points", out=str(out), threads=2)
    summary = run_batch(str(dataset.images), job, BatchOptions(), prompts=prompts)
    assert (summary.total, summary.done, summary.failed) == (4, 1, 3)
    errors = {
        Path(e["path"]).name: e["reason"]
        for e in map(json.loads, (out / "errors.jsonl").read_text().splitlines())
    }
    assert set(errors) == {"person1.jpg", "broken.jpg", "elsewhere.jpg"}
    assert "megapixels" in errors["person1.jpg"] and "SAMEDGE_MAX_PIXELS" in errors["person1.jpg"]
    assert errors["elsewhere.jpg"] == "not found in INPUT"
    merged = json.loads((out / "masks.json").read_text())
    teddy = next(p for p in dataset.images.read_text().splitlines() if p.endswith("teddy.jpg"))
    with Predictor.from_pretrained(model_dir, threads=2) as predictor:
        embedding = predictor.encode(teddy)
        click = predictor.predict(embedding, points=[[140, 200]], labels=[1], best_only=True)
        more = predictor.predict(
            embedding,
            **{k: lines[1][k] for k in ("points", "labels", "box")},
            multimask_output=False,
        )
    first, second = merged["annotations"]
    assert first["segmentation"] == rle_encode(click.masks[0, 0])
    assert second["segmentation"] == rle_encode(more.masks[0, 0])
    assert first["category_id"] == 5 and first["points"] == [[140, 200]]
    assert [a["id"] for a in merged["annotations"]] == [1, 2]
    assert [i["file_name"] for i in merged["images"]] == [teddy]
    assert [a["image_id"] for a in merged["annotations"]] == [merged["images"][0]["id"]] * 2
    shard = json.loads(next((out / "shards").glob("*.json")).read_text())
    assert "id" not in shard["annotations"][0] and "image_id" not in shard["annotations"][0]


def test_command_line_errors(
    dataset: Dataset, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    base = ["batch", "--model", "efficientvit_sam_l0", "--no-progress"]
    cases = [
        ([str(tmp_path / "none"), "--out", str(tmp_path / "o"), "--everything"], "not found"),
        (
            [
                str(dataset.images),
                "--out",
                str(tmp_path / "o"),
                "--boxes",
                str(dataset.coco),
                "--fast",
            ],
            "--fast only work with --everything",
        ),
        ([str(dataset.images), "--out", str(dataset.coco), "--everything"], "not a folder"),
        (
            [str(dataset.images), "--out", str(tmp_path / "o"), "--everything", "--workers", "0"],
            "at least 1",
        ),
        (
            [
                str(dataset.images),
                "--out",
                str(tmp_path / "o"),
                "--everything",
                "--cpus-per-worker",
                "2",
            ],
            "only work with --ray",
        ),
    ]
    for argv, message in cases:
        assert main(base + argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert err.startswith("samedge: error: ") and message in err and "\n" not in err
    assert not (tmp_path / "o").exists()


def test_readme_commands_parse() -> None:
    """The README's batch commands are valid command lines of this parser."""
    import re
    import shlex

    from samedge.cli.main import build_parser
    from tests.conftest import ROOT

    text = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- batch -->\s*```bash\n(.*?)\n```", text, re.S)
    assert block, "README has no '<!-- batch -->' command block"
    lines = block.group(1).splitlines()
    assert len(lines) == 3 and all(line.startswith("samedge batch ") for line in lines)
    parser = build_parser()
    parsed = [parser.parse_args(shlex.split(line)[1:]) for line in lines]
    assert parsed[0].boxes and parsed[0].workers == 2
    assert parsed[1].ray == "" and parsed[2].everything and parsed[2].fast


def test_no_resume_deletes_the_shards_and_a_changed_job_is_refused(
    dataset: Dataset, model_dir, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    listing = tmp_path / "broken.txt"
    listing.write_text(f"{dataset.broken}\n")  # fails before any encoder run
    out = tmp_path / "out"
    argv = ["batch", str(listing), "--model", str(model_dir), "--out", str(out)]
    argv += ["--everything", "--points-per-side", "4", "--no-progress"]
    assert main(argv) == 0
    assert "1 images: 0 done, 0 skipped (already done), 1 failed" in capsys.readouterr().out
    stale = out / "shards" / "stale-0123456789.json"
    stale.parent.mkdir()
    stale.write_text(json.dumps({"key": "stale-0123456789", "annotations": []}))
    assert main([*argv[:-3], "--points-per-side", "5", "--no-progress"]) == 2
    assert "holds results of a different run" in capsys.readouterr().err
    assert stale.exists()
    assert main([*argv[:-3], "--points-per-side", "5", "--no-progress", "--no-resume"]) == 0
    assert not stale.exists()
    assert json.loads((out / "job.json").read_text())["settings"]["points_per_side"] == 5


def test_ray_without_the_extra_is_one_line(
    dataset: Dataset, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch
) -> None:
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "ray" else find_spec(name, *a)
    )
    argv = ["batch", str(dataset.images), "--model", "m", "--out", str(tmp_path / "o")]
    assert main([*argv, "--everything", "--ray", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        "samedge: error: samedge batch --ray needs the 'ray' extra (ray is not installed): "
        "pip install 'samedge[ray]'"
    )
    assert not (tmp_path / "o").exists()


def test_progress_bar_counts_images_on_stderr(
    dataset: Dataset, model_dir, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    listing = tmp_path / "broken.txt"
    listing.write_text(f"{dataset.broken}\n")  # fails before any encoder run
    job = BatchJob(model=str(model_dir), mode="everything", out=str(tmp_path / "out"))
    run_batch(str(listing), job, BatchOptions(progress=True))
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "batch: 100%" in captured.err and "1/1" in captured.err and "img/s" in captured.err


def test_a_box_outside_its_image_gets_no_mask_and_an_error_line(
    dataset: Dataset, model_dir, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """Overhanging boxes are clamped; one with no area inside the image is an error of that
    annotation (its id, the image size), also when the run is resumed."""
    teddy = next(p for p in dataset.images.read_text().splitlines() if p.endswith("teddy.jpg"))
    boxes = {1: [50, 60, 200, 300], 2: [250, 10, 34.5, 50], 3: [300, 10, 20, 20]}
    boxes |= {4: [-50, 10, 20, 20], 5: [10, 10, 0, 20]}
    coco = {
        "images": [{"id": 7, "file_name": "teddy.jpg"}],
        "annotations": [{"id": i, "image_id": 7, "bbox": b} for i, b in boxes.items()],
    }
    (tmp_path / "coco.json").write_text(json.dumps(coco))
    out = tmp_path / "out"
    argv = ["batch", teddy, "--model", str(model_dir), "--out", str(out)]
    argv += ["--boxes", str(tmp_path / "coco.json"), "--no-progress", "--threads", "2"]
    for done in (1, 0):
        assert main(argv) == 0
        stdout = capsys.readouterr().out
        assert f"1 images: {done} done, {1 - done} skipped (already done), 0 failed, " in stdout
        assert "3 prompts without a mask (reasons in" in stdout
        merged = json.loads((out / "masks.json").read_text())
        masked = [a["id"] for a in merged["annotations"] if "segmentation" in a]
        assert masked == [1, 2]
        errors = [json.loads(line) for line in (out / "errors.jsonl").read_text().splitlines()]
        assert [e["path"] for e in errors] == [teddy] * 3
        for error, ident in zip(errors, (3, 4, 5), strict=True):
            assert error["reason"].startswith(f"annotation {ident}: bbox {boxes[ident]}")
            assert "no area inside the 284x398 image" in error["reason"]
