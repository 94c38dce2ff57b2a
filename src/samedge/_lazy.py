"""Lazy package attributes (PEP 562): a name is imported from its module on first use, so
that importing a package loads neither onnxruntime nor torch."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_getattr(package: str, table: dict[str, str], namespace: dict[str, Any]) -> Callable:
    """A module ``__getattr__`` for ``package`` that imports ``name`` from ``table[name]``
    and keeps it in ``namespace`` (the package's ``globals()``)."""

    def __getattr__(name: str) -> Any:
        if name not in table:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(table[name]), name)
        namespace[name] = value
        return value

    return __getattr__
