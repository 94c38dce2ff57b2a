"""samedge batch on Ray Data (a local Ray with 2 CPUs): the same merged file as the
in-process executor, and an actor killed mid-run."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
from pathlib import Path

import pytest

from samedge.batch import BatchJob, BatchOptions, run_batch

from .conftest import Dataset, Reference
from .test_local import _batch_command, check_one_record_per_image, wait_for_first_shard

ray = pytest.importorskip("ray", reason="needs the [ray] extra: pip install 'samedge[ray]'")


@pytest.fixture(scope="module")
def ray_address():
    """One local Ray for the module (its start-up is paid once): its GCS address."""
    ray.init(
        num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING
    )
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


def test_ray_gives_the_local_executors_file(
    ray_address: str, dataset: Dataset, reference: Reference, model_dir, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    job = BatchJob(model=str(model_dir), mode="boxes", out=str(out))
    options = BatchOptions(workers=2, ray=True, cpus_per_worker=1)
    summary = run_batch(str(dataset.images), job, options, prompts=dataset.coco)
    assert (summary.done, summary.skipped, summary.failed) == (len(dataset.names), 0, 1)
    assert (out / "masks.json").read_bytes() == reference.merged
    assert (out / "errors.jsonl").read_bytes() == (reference.out / "errors.jsonl").read_bytes()
    assert ray.is_initialized()  # a Ray the caller started is left running


def _actor_processes() -> list[int]:
    """Ray Data's map actors on this machine (Ray names their processes after the class)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if b"MapWorker(MapBatches(RayWorker))" in cmdline.read_bytes():
                found.append(int(cmdline.parent.name))
        except OSError:
            continue
    return found


def test_killed_actor_then_rerun(
    ray_address: str, dataset: Dataset, reference: Reference, model_dir, tmp_path: Path
) -> None:
    """SIGKILL one actor of a run that joined this Ray by address; Ray Data restarts it and
    retries its image, or the run fails: either way a rerun leaves one record per image and
    the uninterrupted run's file."""
    out = tmp_path / "out"
    command = _batch_command(dataset, model_dir, out, "--ray", ray_address, "--workers", "2")
    command += ["--cpus-per-worker", "1"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    done_at_kill = wait_for_first_shard(process, out)
    actors = _actor_processes()
    assert actors, "no Ray Data actor process found"
    os.kill(actors[0], signal.SIGKILL)
    _, stderr = process.communicate(timeout=180)
    assert done_at_kill < len(dataset.names)
    assert process.returncode in (0, 2), stderr
    rerun = subprocess.run(command, capture_output=True, text=True, timeout=180)
    assert rerun.returncode == 0, rerun.stderr
    check_one_record_per_image(dataset, out, reference)
    errors = [json.loads(line) for line in (out / "errors.jsonl").read_text().splitlines()]
    assert [e["path"] for e in errors] == [str(dataset.broken)]
