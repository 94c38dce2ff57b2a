"""Typed benchmark results and target files, on a stored result: no benchmark runs here.

``data/bench-before-typed-results.json`` is what ``samedge bench --compare-torch`` wrote for
the seed-0 SAM 2.1 tiny export (1 image, 1 run, 1 repeat, 1 prompt, 1 thread) before results
were typed and targets moved into a file: its layout is the one JSON consumers know, and its
``targets`` are the verdicts of the limits that were then hard-coded in the library.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from samedge.bench.report import console_summary, markdown
from samedge.bench.results import FIGURES, BenchResult, GroupCheck, StageStats, TargetCheck
from samedge.bench.targets import all_met, check_targets, load_targets, parse_targets
from samedge.cli.main import main
from samedge.errors import SamedgeError

OLD = Path(__file__).parent / "data" / "bench-before-typed-results.json"
ISSUE7 = Path(__file__).parents[2] / "benchmarks" / "targets-issue7.json"


@pytest.fixture
def old() -> dict[str, Any]:
    return json.loads(OLD.read_text())


def test_the_stored_layout_round_trips_key_for_key(old: dict[str, Any]) -> None:
    result = BenchResult.from_dict(old)
    assert isinstance(result.ours.stages_ms["encoder"], StageStats)
    assert result.official is not None and result.official.package == "sam2"
    assert result.official.details == {
        "torch_threads": 1,
        "weights": "random-init seed 0 (rebuilt)",
    }
    written = result.to_dict()
    # the one addition: the figures, always computed (here read from the old targets' values)
    figures = written.pop("figures")
    assert written == old
    assert json.dumps(written) == json.dumps(old)  # same key order at every level
    assert figures == {k: t["value"] for k, t in old["targets"].items() if "value" in t}
    assert BenchResult.from_dict(result.to_dict()) == result


def test_figures_computed_from_the_measurements_equal_the_old_targets_values(
    old: dict[str, Any],
) -> None:
    from samedge.bench.results import measure_figures

    result = BenchResult.from_dict(old)
    figures = measure_figures(result.ours, result.official, result.compute, result.imports)
    assert list(figures) == list(FIGURES)
    assert figures == {name: old["targets"][name]["value"] for name in FIGURES}


def test_results_are_immutable_and_validated(old: dict[str, Any]) -> None:
    result = BenchResult.from_dict(old)
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.ours.load_s = 0  # type: ignore[misc]
    with pytest.raises(ValueError, match="at least one sample"):
        StageStats(count=0, min=1, median=1, mean=1, p90=1, max=1)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda d: d.pop("sides"), "without field 'sides'"),
        (lambda d: d["sides"]["samedge"]["stages_ms"]["encoder"].pop("p90"), "field 'p90'"),
        (lambda d: d.update(schema="samedge-eval/1"), "not a samedge-bench/1 result"),
        (lambda d: d["compute"].update(flops=1), "field 'compute.flops'"),
    ],
)
def test_a_damaged_result_names_the_field(old: dict[str, Any], damage: Any, message: str) -> None:
    damaged = copy.deepcopy(old)
    damage(damaged)
    with pytest.raises(ValueError, match=message):
        BenchResult.from_dict(damaged)


def test_the_issue7_file_gives_the_verdicts_the_library_used_to_hard_code(
    old: dict[str, Any],
) -> None:
    result = BenchResult.from_dict(old)
    targets = load_targets(ISSUE7)
    checks = check_targets(targets, result)
    written = {name: check.to_dict() for name, check in checks.items()}
    for name, check in old["targets"].items():
        if "limit" in check:
            assert written[name] == check, name
    # the issue's encoder rule is "whichever is easier"; its click is met against the
    # official decoder's floor although samedge's own (stricter) floor is missed
    assert written["encoder"]["met"] is old["targets"]["encoder"]["met"] is False
    assert written["click_vs_floor"]["met"] is False
    assert written["click_floor"]["met"] is True
    assert all_met(targets, checks) is False


def test_model_patterns_and_unmeasured_figures(old: dict[str, Any]) -> None:
    result = BenchResult.from_dict(old)
    targets = parse_targets(
        {
            "targets": {
                "import_and_load_s": {"limit": 2, "models": "sam2.1_hiera_*"},
                "click_vs_official": 0.4,
            }
        },
        "test",
    )
    checks = check_targets(targets, result)
    assert checks["import_and_load_s"] == TargetCheck(value=1.5962, limit=2.0, met=True)
    assert all_met(targets, checks) is True
    vit_b = dataclasses.replace(
        result,
        config=dataclasses.replace(result.config, model="sam_vit_b"),
        figures={**result.figures, "click_vs_official": None},
    )
    checks = check_targets(targets, vit_b)
    assert list(checks) == ["click_vs_official"]
    assert checks["click_vs_official"].met is None
    assert all_met(targets, checks) is None


def test_a_group_is_met_by_any_member_and_its_members_alone_do_not_count() -> None:
    targets = parse_targets(
        {"targets": {"encoder_vs_floor": 1.3, "encoder_vs_official_set_image": 0.8},
         "any_of": {"encoder": ["encoder_vs_floor", "encoder_vs_official_set_image"]}},
        "test",
    )  # fmt: skip
    checks = {
        "encoder_vs_floor": TargetCheck(value=2.0, limit=1.3, met=False),
        "encoder_vs_official_set_image": TargetCheck(value=0.7, limit=0.8, met=True),
        "encoder": GroupCheck(met=True, rule="any"),
    }
    assert all_met(targets, checks) is True


def test_without_targets_nothing_is_judged(old: dict[str, Any]) -> None:
    result = dataclasses.replace(BenchResult.from_dict(old), targets={})
    assert result.to_dict()["targets"] == {}
    assert "target" not in console_summary(result)
    md = markdown(result)
    assert "| figure | value |\n|---|---:|\n| encoder_vs_official_set_image | 0.854 |" in md
    assert "limit" not in md and "met" not in md
    judged = dataclasses.replace(result, targets=check_targets(load_targets(ISSUE7), result))
    assert "| encoder_vs_floor | 1.677 | 1.3 | no |" in markdown(judged)
    assert "target click_vs_official: 0.226 <= 0.4: met" in console_summary(judged)


BAD_FILES = [
    ("{", "is not valid JSON: Expecting property name"),
    ("[]", "expected a JSON object"),
    ('{"targets": {}}', "'targets' must be a non-empty object"),
    ('{"targets": {"encoder": 0.8}}', "unknown figure 'encoder'"),
    ('{"targets": {"click_vs_official": "0.4"}}', "limit of 'click_vs_official' must be a number"),
    ('{"targets": {"click_vs_official": true}}', "must be a number, got True"),
    ('{"targets": {"click_vs_official": -1}}', "must be above 0"),
    ('{"targets": {"click_vs_official": {"max": 1}}}', "unknown key 'max'"),
    ('{"targets": {"click_vs_official": {"models": ["x"]}}}', "has no 'limit'"),
    ('{"targets": {"click_vs_official": {"limit": 1, "models": [3]}}}', "'models' of"),
    ('{"target": {"click_vs_official": 1}}', "unknown key 'target'"),
    ('{"targets": {"click_vs_official": 1}, "any_of": {"g": ["encoder_vs_floor"]}}',
     "group 'g' names 'encoder_vs_floor', which is not in 'targets'"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "message"), BAD_FILES)
def test_a_bad_targets_file_names_the_problem(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "t.json"
    path.write_text(text)
    with pytest.raises(SamedgeError) as exc:
        load_targets(path)
    assert message in str(exc.value) and str(path) in str(exc.value)
    assert "\n" not in str(exc.value)


@pytest.mark.parametrize(("text", "message"), [BAD_FILES[3], (None, "cannot be read")])
def test_bench_with_a_bad_targets_file_exits_2_before_running(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str | None, message: str
) -> None:
    path = tmp_path / "t.json"
    if text is not None:
        path.write_text(text)
    out = tmp_path / "r.json"
    # the model is never resolved: the targets file is read before anything runs
    argv = ["bench", "--model", "no-such-model", "--targets", str(path), "--json", str(out)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"samedge: error: targets file {path}") and message in err
    assert "\n" not in err and not out.exists()


def test_the_console_gives_each_stage_against_its_floor_and_the_peak_it_rests_on(
    old: dict[str, Any],
) -> None:
    summary = console_summary(BenchResult.from_dict(old))
    header, encoder = summary.splitlines()[0], summary.splitlines()[2]
    assert header.split()[-2:] == ["x", "floor"]
    # encoder median 5054.8 ms over a floor of 3014.1 ms; stages without a floor get a dash
    assert encoder.split()[0] == "encoder" and encoder.split()[-1] == "1.68"
    assert summary.splitlines()[1].split()[-1] == "–"  # load_preprocess
    peak = "floors: fp32 GEMM peak 95.3 GFLOP/s (1 thread; best of 2 samples, 92.5-95.3)"
    assert peak in summary
