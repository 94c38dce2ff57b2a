"""The evaluation loop with honest stand-in predictors: an oracle and an empty one."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from samedge.errors import SamedgeError
from samedge.eval import EvalConfig, PromptPredictor, evaluate, open_dataset, write_report
from samedge.eval.protocols import PROTOCOLS

from ..conftest import shared_path
from .predictors import EmptyPredictor, OraclePredictor

LIMIT = 8


@pytest.fixture(scope="module")
def grabcut():
    dataset = open_dataset(shared_path("data", "interactive", "GrabCut"), "interactive")
    dataset.entries = dataset.entries[:LIMIT]
    return dataset


@pytest.fixture(scope="module")
def oracle(grabcut) -> OraclePredictor:
    return OraclePredictor(grabcut)


def test_stand_ins_satisfy_the_protocol(oracle) -> None:
    assert isinstance(oracle, PromptPredictor)
    assert isinstance(EmptyPredictor(), PromptPredictor)


def test_oracle_scores_iou_one_and_noc_one(grabcut, oracle) -> None:
    config = EvalConfig(protocols=PROTOCOLS, num_points=3, max_clicks=20)
    oracle.encode_calls = oracle.predict_calls = 0
    result = evaluate(oracle, grabcut, config)
    assert result.images == LIMIT and not result.skipped
    assert oracle.encode_calls == LIMIT  # once per image for all prompts and clicks
    assert len(result.records) == LIMIT * len(PROTOCOLS)
    assert all(r.iou == 1.0 for r in result.records)
    for name, summary in result.summaries.items():
        assert summary.samples == LIMIT and summary.miou == 1.0, name
    clicks = result.summaries["clicks"]
    assert clicks.noc == {"85": 1.0, "90": 1.0} and clicks.failures == {"85": 0, "90": 0}
    assert clicks.miou_per_click == [1.0] * 20
    # no error left after the first click: the simulator stops (one predictor call)
    assert all(len(r.ious or []) == 1 for r in result.records if r.protocol == "clicks")
    assert oracle.predict_calls == LIMIT * len(PROTOCOLS)


def test_empty_predictor_fails_every_sample(grabcut) -> None:
    result = evaluate(EmptyPredictor(), grabcut, EvalConfig(protocols=PROTOCOLS, max_clicks=5))
    assert all(r.iou == 0.0 for r in result.records)
    clicks = result.summaries["clicks"]
    assert clicks.failures == {"85": LIMIT, "90": LIMIT}
    assert clicks.noc == {"85": 5.0, "90": 5.0}
    assert clicks.miou_per_click == [0.0] * 5
    for record in result.records:
        if record.protocol == "clicks":
            assert record.noc == {"85": None, "90": None} and len(record.clicks or []) == 5
            # every click is positive: the whole object is still missed
            assert all(label == 1 for _, _, label in record.clicks or [])


def test_limit_counts_samples_and_seeded_points_repeat(grabcut, oracle) -> None:
    config = EvalConfig(protocols=("points",), num_points=4, seed=7, limit=3)
    first = evaluate(oracle, grabcut, config)
    again = evaluate(oracle, grabcut, config)
    other = evaluate(oracle, grabcut, EvalConfig(("points",), num_points=4, seed=8, limit=3))
    assert [r.sample_id for r in first.records] == [e.image_id for e in grabcut.entries[:3]]
    assert [r.prompt for r in first.records] == [r.prompt for r in again.records]
    assert [r.prompt for r in first.records] != [r.prompt for r in other.records]


def test_fidelity_between_two_models(grabcut, oracle) -> None:
    config = EvalConfig(protocols=("center", "clicks"), max_clicks=3, limit=2)
    same = evaluate(oracle, grabcut, config, reference=oracle, reference_name="oracle")
    assert same.fidelity is not None and same.fidelity["all"]["mean_iou"] == 1.0
    assert same.fidelity["all"]["share_above_0.99"] == 1.0
    differ = evaluate(oracle, grabcut, config, reference=EmptyPredictor())
    assert differ.fidelity is not None
    stats = differ.fidelity["all"]
    assert stats["prompts"] == 2 * 2 and stats["mean_iou"] == 0.0  # center + 1 click each
    assert stats["share_above_0.9"] == 0.0
    assert all(f.iou_gt == 1.0 and f.iou_gt_reference == 0.0 for f in differ.fidelity_records)
    assert same.embedding_error is None  # these predictors expose no image embedding


def test_a_shared_encoder_encodes_each_image_once(grabcut) -> None:
    """A reference whose encoder is the candidate's (a folder with only its decoder
    quantised) takes the candidate's embedding: each image is encoded once, and the
    fidelity is what the reference gives from its own encoding."""
    config = EvalConfig(protocols=("center", "box"), limit=3)
    candidate, own = OraclePredictor(grabcut), OraclePredictor(grabcut)
    apart = evaluate(candidate, grabcut, config, reference=own)
    assert own.encode_calls == candidate.encode_calls > 0
    before, reference = candidate.encode_calls, OraclePredictor(grabcut)
    shared = evaluate(candidate, grabcut, config, reference=reference, shared_encoder=True)
    assert reference.encode_calls == 0 and candidate.encode_calls - before == own.encode_calls
    assert reference.predict_calls == own.predict_calls > 0
    assert shared.fidelity == apart.fidelity


def test_empty_replays_the_clicks_it_is_given(grabcut) -> None:
    config = EvalConfig(protocols=("clicks",), max_clicks=4, limit=1)
    result = evaluate(EmptyPredictor(), grabcut, config, reference=EmptyPredictor())
    assert [f.step for f in result.fidelity_records] == [1, 2, 3, 4]
    assert all(f.iou == 1.0 for f in result.fidelity_records)  # both empty: identical


def test_berkeley_rotated_mask_is_reported_not_counted() -> None:
    dataset = open_dataset(shared_path("data", "interactive", "Berkeley"), "interactive")
    dataset.entries = [e for e in dataset.entries if e.image_id in ("101087", "189011")]
    result = evaluate(EmptyPredictor(), dataset, EvalConfig(protocols=("box",)))
    assert [r.sample_id for r in result.records] == ["189011", "189011a", "189011b"]
    assert [s.sample_id for s in result.skipped] == ["101087"]
    assert result.summary_json()["skipped_by_reason"] == {"rotated": 1}


def test_report_files(grabcut, oracle, tmp_path: Path) -> None:
    config = EvalConfig(protocols=("box", "clicks"), max_clicks=4, limit=3)
    result = evaluate(oracle, grabcut, config, reference=oracle, model_name="oracle")
    out = tmp_path / "out"
    write_report(result, out)
    names = sorted(p.name for p in out.iterdir())
    assert names == [
        "fidelity.jsonl", "miou_per_click.png", "records.jsonl", "summary.json", "summary.md"
    ]  # fmt: skip
    lines = (out / "records.jsonl").read_text().splitlines()
    assert len(lines) == 3 * 2
    record = json.loads(lines[1])
    assert record["protocol"] == "clicks" and record["noc"] == {"85": 1, "90": 1}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["protocols"]["clicks"]["noc"] == {"85": 1.0, "90": 1.0}
    assert summary["samples"] == 3 and summary["fidelity"]["all"]["mean_iou"] == 1.0
    md = (out / "summary.md").read_text()
    assert "| clicks | 3 | 1.000 |" in md and "## Fidelity" in md
    plot = cv2.imread(str(out / "miou_per_click.png"))
    assert plot is not None and plot.shape == (480, 720, 3)


def test_a_reused_out_folder_keeps_no_file_of_an_earlier_run(grabcut, oracle, tmp_path):
    """A clicks run with a reference, then a box run into the same folder: its
    miou_per_click.png and fidelity.jsonl stayed beside a summary listing only box."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    config = EvalConfig(protocols=("box", "clicks"), max_clicks=2, limit=1)
    write_report(evaluate(oracle, grabcut, config, reference=oracle), out)
    assert (out / "miou_per_click.png").is_file() and (out / "fidelity.jsonl").is_file()
    write_report(evaluate(oracle, grabcut, EvalConfig(protocols=("box",), limit=1)), out)
    names = sorted(p.name for p in out.iterdir())
    assert names == ["notes.txt", "records.jsonl", "summary.json", "summary.md"]


def test_report_into_a_file_fails_cleanly(grabcut, oracle, tmp_path: Path) -> None:
    result = evaluate(oracle, grabcut, EvalConfig(protocols=("box",), limit=1))
    target = tmp_path / "taken"
    target.write_text("x")
    with pytest.raises(SamedgeError, match="is a file"):
        write_report(result, target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]


def test_no_usable_sample_is_an_error_not_a_nan_result(tmp_path: Path) -> None:
    """Every sample skipped, or none at all: an mIoU of nan over 0 samples was returned (and
    written) as if it were a result."""
    from PIL import Image

    from samedge.eval import DatasetError

    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    with pytest.raises(DatasetError, match=r"holds no usable sample: no images/NAME\.ext"):
        evaluate(EmptyPredictor(), open_dataset(tmp_path, "folder"))
    for name in "abcd":
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "images" / f"{name}.png")
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "masks" / f"{name}.png")
    with pytest.raises(DatasetError) as err:
        evaluate(EmptyPredictor(), open_dataset(tmp_path, "folder"))
    assert str(err.value) == (
        f"{tmp_path} holds no usable sample; fix the 4 skipped: a: empty mask (no object "
        "pixels); b: empty mask (no object pixels); c: empty mask (no object pixels); and 1 more"
    )
    with pytest.raises(DatasetError, match="no usable sample among its first 2; fix the 2 "):
        evaluate(EmptyPredictor(), open_dataset(tmp_path, "folder"), EvalConfig(limit=2))


def test_importing_eval_loads_neither_torch_nor_onnxruntime() -> None:
    import subprocess
    import sys

    code = (
        "import sys, samedge.eval, samedge.cli.eval; "
        "print(sorted(m for m in ('torch', 'onnxruntime', 'pycocotools') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert out.stdout.strip() == "[]"
