"""Small Gradio helpers shared by the tabs of :mod:`samedge.web.app` (needs Gradio)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

import gradio as gr

from ..errors import SamedgeError

log = logging.getLogger(__name__)

UNEXPECTED = "unexpected server error (the details are in the server log)"


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Show a user error as one line in the browser, never a stack trace."""
    try:
        yield
    except gr.Error:
        raise
    except SamedgeError as exc:
        raise gr.Error(str(exc), print_exception=False) from None
    except Exception:
        log.exception("samedge web: unexpected error")
        raise gr.Error(UNEXPECTED, print_exception=False) from None


def upload_fields(value: Any) -> tuple[str | None, str | None]:
    """``(server path, name the user gave)`` of an unprocessed ``gr.Image`` payload."""
    if value is None:
        return None, None
    if isinstance(value, dict):
        return value.get("path"), value.get("orig_name")
    return getattr(value, "path", None), getattr(value, "orig_name", None)


def fraction_slider(value: float, label: str, elem_id: str, step: float = 0.01) -> Any:
    """A slider over [0, 1] (thresholds and IoU limits)."""
    return gr.Slider(0.0, 1.0, value=value, step=step, label=label, elem_id=elem_id)
