"""User-facing errors.

Every error a user can cause (bad image, bad prompt, unknown model, corrupt artifact, failed
download, missing optional extra) is a :class:`SamedgeError` whose message is one line that
names the fix. The CLI prints that line and exits with code 2; a traceback is shown only
with ``SAMEDGE_DEBUG=1``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .specs import ModelSpec


class SamedgeError(Exception):
    """Base class: a problem the user can fix. ``str(err)`` is a one-line explanation."""


class ModelNotFoundError(SamedgeError, KeyError):
    """Unknown model name, or a known model that has not been exported yet."""

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0]) if self.args else ""


class ArtifactError(SamedgeError):
    """A model folder is missing files, or its ONNX files are corrupt or do not match."""


class ImageError(SamedgeError):
    """An image cannot be read, or is not something samedge can segment."""


class PromptError(SamedgeError, ValueError):
    """Points, boxes or mask inputs are malformed or lie outside the image."""


class ProviderError(SamedgeError, ValueError):
    """An execution provider name that neither samedge nor ONNX Runtime knows."""


class MissingExtraError(SamedgeError, ImportError):
    """A feature needs an optional dependency group (``pip install 'samedge[NAME]'``)."""


class DownloadError(SamedgeError):
    """A checkpoint could not be downloaded (offline, HTTP error, interrupted)."""


class ChecksumError(DownloadError):
    """A downloaded or local file does not have the expected sha256."""


class ExportError(SamedgeError):
    """An export could not be built, or failed its numeric parity gate."""


def require_reference(spec: ModelSpec, feature: str) -> None:
    """Raise :class:`MissingExtraError` if ``spec``'s official code cannot be imported: the
    ``export`` extra's package, or, where no package publishes it
    (``spec.reference_source``), one line saying where it comes from."""
    import importlib.util

    if spec.reference_source is None:
        require_extra(spec.reference_package, "export", feature)
    elif importlib.util.find_spec(spec.reference_package) is None:
        raise MissingExtraError(
            f"{feature} needs {spec.title}'s official code, which no package publishes: put "
            f"{spec.reference_source} on PYTHONPATH (import name {spec.reference_package})"
        )


def require_extra(module: str, extra: str, feature: str) -> None:
    """Raise :class:`MissingExtraError` if ``module`` cannot be imported.

    The message names the ``pip install`` command for the ``extra`` group.
    """
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise MissingExtraError(
            f"{feature} needs the '{extra}' extra ({module} is not installed): "
            f"pip install 'samedge[{extra}]'"
        )
