"""What every predictor over one exported model shares: loading it by registry name or
folder, the sessions' providers, and releasing them.

:class:`~samedge.runtime.predictor.Predictor` (images) and
:class:`~samedge.video.predictor.VideoPredictor` (video) are both a :class:`LoadedModel`
over their own graph object.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Generic, Protocol, TypeVar

from ..artifacts import ModelArtifact, resolve_model
from ..specs import ModelSpec
from .providers import ProviderSettings
from .types import Closeable

log = logging.getLogger(__name__)


class Graphs(Protocol):
    """The sessions a predictor runs (``ModelGraphs``, ``VideoGraphs``)."""

    @property
    def providers(self) -> dict[str, str]: ...

    def close(self) -> None: ...


G = TypeVar("G", bound=Graphs)
L = TypeVar("L", bound="LoadedModel")


class LoadedModel(Closeable, Generic[G]):
    """An exported model with its sessions open (:attr:`graphs`).

    Subclasses say which graph object they run with :meth:`open_graphs`. :meth:`close`, or
    the end of a ``with`` block, releases the sessions; the object cannot be used after.
    """

    def __init__(
        self,
        artifact: ModelArtifact,
        providers: str | Sequence[str] | None = None,
        threads: int | None = None,
        provider_settings: ProviderSettings | None = None,
    ) -> None:
        self.artifact = artifact
        self.spec: ModelSpec = artifact.spec
        self.graphs: G = self.open_graphs(artifact, providers, threads, provider_settings)
        if artifact.random_weights:
            log.warning(
                "%s was exported with random weights (seed %s): masks are meaningless",
                self.spec.name,
                artifact.manifest.weights.get("seed"),
            )

    def open_graphs(
        self,
        artifact: ModelArtifact,
        providers: str | Sequence[str] | None,
        threads: int | None,
        provider_settings: ProviderSettings | None,
    ) -> G:
        """The sessions this predictor runs (raises ``SamedgeError`` for a folder it
        cannot run)."""
        raise NotImplementedError

    @classmethod
    def from_pretrained(
        cls: type[L],
        name_or_dir: str | os.PathLike[str],
        providers: str | Sequence[str] | None = None,
        threads: int | None = None,
        verify: bool = True,
        provider_settings: ProviderSettings | None = None,
    ) -> L:
        """Load an exported model by registry name (from the cache) or folder path.

        Args:
            name_or_dir: e.g. ``"sam2.1_hiera_tiny"`` or ``"models/sam_vit_b"``.
            providers: execution providers in order of preference, e.g. ``["cuda", "cpu"]``;
                CPU is always the fallback. ``"openvino"`` first, without ONNX Runtime's
                OpenVINO provider but with the ``openvino`` package: the image encoder runs
                on OpenVINO's own runtime (:mod:`samedge.runtime.openvino_native`).
            threads: intra-op threads per session (default: all usable cores).
            verify: check every file's sha256 against the manifest.
            provider_settings: options of the GPU and accelerator providers (TensorRT
                engine cache and FP16, CUDA device, OpenVINO device...).

        Raises:
            SamedgeError: unknown or unexported model, or a folder this predictor cannot
                run (e.g. video tracking with a model that cannot track); one line naming
                the fix.
        """
        return cls(resolve_model(name_or_dir, verify=verify), providers, threads, provider_settings)

    def close(self) -> None:
        """Release the sessions (and any decoding threads); the predictor cannot be used
        after this."""
        self.graphs.close()

    @property
    def providers(self) -> dict[str, str]:
        """The execution provider that actually runs each graph."""
        return self.graphs.providers
