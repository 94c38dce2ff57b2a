"""The layering rules of ``docs/architecture.md`` that a test can check.

Family knowledge lives in :class:`~samedge.specs.ModelSpec` (``specs.py``, ``registry.py``)
and in the torch-side builders (``export/``): no other module may test a model family or a
model name, so that adding a family means a spec and an export builder, nothing else.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from samedge.registry import get_spec, list_models

SRC = Path(__file__).resolve().parents[1] / "src" / "samedge"
#: Modules allowed to know the families (paths relative to ``SRC``).
FAMILY_AWARE = ("specs.py", "registry.py", "export/")

NAMES = frozenset(list_models())
FAMILIES = frozenset(get_spec(name).family for name in NAMES)
#: Attributes that hold a family or a model's registry name.
FAMILY_ATTRS = frozenset({"family"})
NAME_ATTRS = frozenset({"name", "model"})
STRING_METHODS = frozenset({"startswith", "endswith", "find", "index", "count", "split"})


def _is_model_token(value: object) -> bool:
    """A family name, a model name, or a prefix of one (``"sam2"``, ``"sam2.1_hiera"``)."""
    if not isinstance(value, str) or len(value) < 3:
        return False
    return value in FAMILIES or any(name.startswith(value) for name in NAMES)


def _constants(node: ast.AST) -> list[str]:
    """String constants in ``node`` (a comparison operand, tuples and sets included)."""
    found = []
    for sub in ast.walk(node):
        if isinstance(sub, ast.Constant) and isinstance(sub.value, str):
            found.append(sub.value)
    return found


def _spec_attribute(node: ast.AST, attrs: frozenset[str]) -> bool:
    """``x.family`` / ``x["family"]``, or for ``.name`` an object whose name ends in
    ``spec`` (``spec.name``, ``self.spec.name``, ``artifact.spec.name``)."""
    if isinstance(node, ast.Subscript):
        key = node.slice
        return isinstance(key, ast.Constant) and key.value in attrs
    if not isinstance(node, ast.Attribute) or node.attr not in attrs:
        return False
    if attrs is FAMILY_ATTRS:
        return True
    owner = node.value
    owner_name = owner.attr if isinstance(owner, ast.Attribute) else getattr(owner, "id", "")
    return owner_name.lower().endswith("spec")


def family_tests(source: str, filename: str = "<source>") -> list[str]:
    """``"file:line: what"`` for every test of a model family or model name in ``source``.

    Flagged: a comparison involving ``.family`` (or ``["family"]``), or a lookup keyed by
    it (``DEFAULTS[spec.family]``); a comparison of a
    spec's ``.name`` with a string; a comparison, ``str`` method call (``startswith`` ...) or
    dict key whose string constant is a family name, a model name or a prefix of one.
    """
    hits = []
    for node in ast.walk(ast.parse(source, filename)):
        line = f"{filename}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            if any(_spec_attribute(op, FAMILY_ATTRS) for op in operands):
                hits.append(f"{line}: compares a model family")
                continue
            names = [op for op in operands if _spec_attribute(op, NAME_ATTRS)]
            strings = [c for op in operands if op not in names for c in _constants(op)]
            if names and strings:
                hits.append(f"{line}: compares a model name with {strings[0]!r}")
                continue
            tokens = [c for c in strings if _is_model_token(c)]
            if tokens:
                hits.append(f"{line}: compares with the model token {tokens[0]!r}")
        elif isinstance(node, ast.Subscript) and _spec_attribute(node.slice, FAMILY_ATTRS):
            hits.append(f"{line}: looks up by model family")
        elif isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Attribute) and func.attr in STRING_METHODS:
                tokens = [c for arg in node.args for c in _constants(arg) if _is_model_token(c)]
                if tokens:
                    hits.append(f"{line}: .{func.attr}() with the model token {tokens[0]!r}")
        elif isinstance(node, ast.Dict):
            keys = [k.value for k in node.keys if isinstance(k, ast.Constant)]
            tokens = [k for k in keys if _is_model_token(k)]
            if tokens:
                hits.append(f"{line}: dict keyed by the model token {tokens[0]!r}")
    return hits


def _checked_modules() -> list[Path]:
    out = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC).as_posix()
        if not any(rel == allowed or rel.startswith(allowed) for allowed in FAMILY_AWARE):
            out.append(path)
    return out


def test_only_specs_and_export_know_the_model_families() -> None:
    modules = _checked_modules()
    assert len(modules) > 50  # the walk found the package
    hits = [
        hit
        for path in modules
        for hit in family_tests(path.read_text(), path.relative_to(SRC).as_posix())
    ]
    assert not hits, "family knowledge outside specs/registry/export:\n" + "\n".join(hits)


@pytest.mark.parametrize(
    "source",
    [
        'if spec.family == "sam": pass',
        'ok = self.spec.family != "sam2"',
        'x = artifact.spec.family in ("sam", "sam2")',
        'x = manifest["family"] == "sam"',
        'if "sam2" in name: pass',
        'if name.startswith("sam2"): pass',
        'x = model.endswith("sam_vit_h")',
        'if spec.name == "sam2.1_hiera_tiny": pass',
        'if spec.name == "anything": pass',
        'if config["model"] == "sam2.1_hiera_tiny": pass',
        'DEFAULTS = {"sam": 0.88, "sam2": 0.8}',
        "x = DEFAULTS[self.spec.family]",
        'x = {"sam_vit_b": 1}',
        'x = "sam" if spec.family == "sam" else "sam2"',
    ],
)
def test_family_checker_flags_family_tests(source: str) -> None:
    assert family_tests(source), source


@pytest.mark.parametrize(
    "source",
    [
        'if spec.small_regions == "low_res": pass',
        'if path.name == "decoder.onnx": pass',
        "if embedding.model != self.spec.name: pass",
        "x = spec.reference_package",
        'x = {"samedge": 1, "torch": 2}',
        'if mode in ("binary_mask", "coco_rle"): pass',
        'if name.startswith("s"): pass',
    ],
)
def test_family_checker_accepts_spec_fields(source: str) -> None:
    assert family_tests(source) == []
