"""Checking a benchmark's figures against limits read from a targets file.

Targets are a project's or a paper's goals, not library knowledge: ``samedge bench
--targets FILE`` reads them from a JSON file (``benchmarks/targets-issue7.json`` holds the
ones issue #7 set)::

    {
      "about": "what these targets are",
      "targets": {
        "click_vs_official": 0.4,
        "import_and_load_s": {"limit": 1.5, "models": ["sam2.1_hiera_*"]}
      },
      "any_of": {"encoder": ["encoder_vs_official_set_image", "encoder_vs_floor"]}
    }

Each key of ``targets`` is one of :data:`samedge.bench.results.FIGURES`; a target is met when
the figure is at most its limit. ``models`` (shell patterns over the registered model name)
restricts a target to some models. A figure named in an ``any_of`` group need not be met on
its own: the group is met when any of its figures is.
"""

from __future__ import annotations

import fnmatch
import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import SamedgeError
from .results import FIGURES, BenchResult, GroupCheck, TargetCheck


@dataclass(frozen=True)
class Target:
    """A figure's limit (met when ``figure <= limit``), for the models matching ``models``
    (every model when empty)."""

    figure: str
    limit: float
    models: tuple[str, ...] = ()

    def applies_to(self, model: str) -> bool:
        return not self.models or any(fnmatch.fnmatchcase(model, p) for p in self.models)


@dataclass(frozen=True)
class TargetSet:
    """The contents of a targets file."""

    targets: tuple[Target, ...]
    any_of: dict[str, tuple[str, ...]]
    about: str = ""


def _limit(name: str, value: Any, where: str) -> float:
    # bool is an int subclass: "true" is not a limit
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise SamedgeError(f"{where}: the limit of {name!r} must be a number, got {value!r}")
    if value <= 0:
        raise SamedgeError(f"{where}: the limit of {name!r} must be above 0, got {value!r}")
    return float(value)


def _target(name: str, spec: Any, where: str) -> Target:
    if name not in FIGURES:
        raise SamedgeError(f"{where}: unknown figure {name!r} (figures: {', '.join(FIGURES)})")
    if not isinstance(spec, Mapping):
        return Target(name, _limit(name, spec, where))
    unknown = set(spec) - {"limit", "models"}
    if unknown:
        raise SamedgeError(
            f"{where}: target {name!r} has an unknown key {sorted(unknown)[0]!r} "
            f"(keys: limit, models)"
        )
    if "limit" not in spec:
        raise SamedgeError(f"{where}: target {name!r} has no 'limit'")
    models = spec.get("models", [])
    if isinstance(models, str):
        models = [models]
    if not isinstance(models, list) or not all(isinstance(m, str) and m for m in models):
        raise SamedgeError(
            f"{where}: 'models' of {name!r} must be a model name pattern or a list of them"
        )
    return Target(name, _limit(name, spec["limit"], where), tuple(models))


def parse_targets(data: Any, where: str) -> TargetSet:
    """A :class:`TargetSet` from a targets file's parsed JSON.

    Raises:
        SamedgeError: one line, starting with ``where``, naming the first problem.
    """
    if not isinstance(data, Mapping):
        raise SamedgeError(f"{where}: expected a JSON object with a 'targets' object")
    unknown = set(data) - {"about", "targets", "any_of"}
    if unknown:
        raise SamedgeError(
            f"{where}: unknown key {sorted(unknown)[0]!r} (keys: about, targets, any_of)"
        )
    raw = data.get("targets")
    if not isinstance(raw, Mapping) or not raw:
        raise SamedgeError(f"{where}: 'targets' must be a non-empty object of figure: limit")
    targets = tuple(_target(name, spec, where) for name, spec in raw.items())
    groups = data.get("any_of", {})
    if not isinstance(groups, Mapping):
        raise SamedgeError(f"{where}: 'any_of' must be an object of group name: [figures]")
    any_of: dict[str, tuple[str, ...]] = {}
    for group, members in groups.items():
        if group in raw:
            raise SamedgeError(f"{where}: group {group!r} has the name of a target")
        if not isinstance(members, list) or not members:
            raise SamedgeError(f"{where}: group {group!r} must be a non-empty list of figures")
        for member in members:
            if member not in raw:
                raise SamedgeError(
                    f"{where}: group {group!r} names {member!r}, which is not in 'targets'"
                )
        any_of[group] = tuple(members)
    about = data.get("about", "")
    if not isinstance(about, str):
        raise SamedgeError(f"{where}: 'about' must be a string")
    return TargetSet(targets=targets, any_of=any_of, about=about)


def load_targets(path: str | os.PathLike[str]) -> TargetSet:
    """Read and validate a targets file.

    Raises:
        SamedgeError: the file cannot be read, is not JSON, or is not a valid targets file;
            one line naming the file and the problem.
    """
    where = f"targets file {path}"
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SamedgeError(f"{where}: cannot be read ({exc.__class__.__name__})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SamedgeError(
            f"{where} is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        ) from None
    return parse_targets(data, where)


def check_targets(targets: TargetSet, result: BenchResult) -> dict[str, TargetCheck | GroupCheck]:
    """Each target that applies to the result's model against its figure, then each group
    with at least one applicable member."""
    model = result.config.model
    checks: dict[str, TargetCheck | GroupCheck] = {}
    for target in targets.targets:
        if target.applies_to(model):
            value = result.figures.get(target.figure)
            met = None if value is None else bool(value <= target.limit)
            checks[target.figure] = TargetCheck(value=value, limit=target.limit, met=met)
    for group, members in targets.any_of.items():
        member_met = [c.met for m in members if isinstance(c := checks.get(m), TargetCheck)]
        if member_met:
            checks[group] = GroupCheck(
                met=True if True in member_met else (None if None in member_met else False),
                rule=f"any of {', '.join(members)} within its limit",
            )
    return checks


def all_met(targets: TargetSet, checks: Mapping[str, TargetCheck | GroupCheck]) -> bool | None:
    """Whether every check is met, counting each ``any_of`` group once instead of its
    members; ``None`` when none is missed but some figure was not measured."""
    grouped = {m for members in targets.any_of.values() for m in members}
    verdicts = [c.met for name, c in checks.items() if name not in grouped]
    if False in verdicts:
        return False
    return None if None in verdicts else True
