"""Which exported models the web UI offers, and the predictors it has loaded.

The catalog is fixed when the server starts: registry models that have an export in the
local cache (``$SAMEDGE_HOME/models/NAME``), plus the ``--model`` the operator gave on the
command line (a name or a folder path; the operator is trusted). The browser only ever
sends a *label* from the catalog, which is looked up here; it never supplies a path.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..artifacts import ModelArtifact, default_model_folder, resolve_model, sized_name
from ..errors import ModelNotFoundError, SamedgeError
from ..manifest import MANIFEST_NAME, Manifest
from ..registry import list_models

if TYPE_CHECKING:
    from ..runtime.predictor import Predictor


@dataclass(frozen=True)
class ModelEntry:
    """One exported model folder the UI may use.

    Attributes:
        label: what the model dropdown shows (unique per model group).
        model: registry name, e.g. ``"sam2.1_hiera_tiny"``.
        precision: e.g. ``"fp32"``, or ``"encoder fp16, decoder fp32"`` when they differ.
        folder: the exported folder (server side only).
        random_weights: exported with seeded random weights (masks are meaningless).
    """

    label: str
    model: str
    precision: str
    folder: Path
    random_weights: bool

    @property
    def key(self) -> str:
        """Identifies the exported files (part of the embedding cache key)."""
        return os.fspath(self.folder.resolve())


def precision_label(precision: dict[str, str]) -> str:
    """``"fp32"`` when every component has the same precision, else one per component."""
    values = {v for v in precision.values()}
    if len(values) == 1:
        return values.pop()
    return ", ".join(f"{role} {value}" for role, value in sorted(precision.items()))


def _entry(folder: Path, label: str, manifest: Manifest | None = None) -> ModelEntry:
    manifest = manifest or Manifest.read(folder)
    return ModelEntry(
        label=label,
        model=manifest.model,
        precision=precision_label(manifest.precision),
        folder=folder,
        random_weights=manifest.weights.get("source") == "random-init",
    )


def discover_models(extra: Sequence[str] = ()) -> list[ModelEntry]:
    """The operator's ``extra`` models (first, in order) and every exported model in the cache.

    A registry name in ``extra`` must be exported; a folder path labels its entry
    ``"MODEL (folder name)"``.

    Raises:
        ModelNotFoundError, ArtifactError: an ``extra`` model cannot be found or read.
    """
    entries: list[ModelEntry] = []
    seen: set[str] = set()

    def add(entry: ModelEntry) -> None:
        if entry.key not in seen:
            seen.add(entry.key)
            entries.append(entry)

    for item in extra:
        artifact = resolve_model(item, verify=False)
        if Path(os.fspath(item)).is_dir():
            label = f"{artifact.spec.name} ({artifact.folder.resolve().name})"
        else:
            label = artifact.spec.name
        add(_entry(artifact.folder, label, artifact.manifest))  # already read
    for name in list_models():
        folder = default_model_folder(name)
        # 'samedge export NAME --image-size N' writes NAME-Npx beside NAME.
        for candidate in [folder, *sorted(folder.parent.glob(sized_name(name, "*")))]:
            if not (candidate / MANIFEST_NAME).is_file():
                continue
            try:
                manifest = Manifest.read(candidate)
            except SamedgeError:
                continue  # a broken cache entry is not offered; 'samedge export' fixes it
            size = manifest.extra.get("image_size")
            if candidate == folder:
                add(_entry(candidate, name, manifest))
            elif manifest.model == name and isinstance(size, int):
                add(_entry(candidate, f"{name} ({size} px)", manifest))
    return entries


class ModelCatalog:
    """The models and providers offered in the dropdowns, by label."""

    def __init__(self, entries: Sequence[ModelEntry], providers: Sequence[str]) -> None:
        if not entries:
            from ..hub import models_dir

            raise ModelNotFoundError(
                f"no exported models found in {models_dir()}: run 'samedge export "
                f"sam2.1_hiera_tiny' (needs pip install 'samedge[export]') or pass "
                f"--model FOLDER"
            )
        self.entries = list(entries)
        self.providers = list(providers)

    @property
    def labels(self) -> list[str]:
        return list(dict.fromkeys(e.label for e in self.entries))

    def precisions(self, label: str) -> list[str]:
        return [e.precision for e in self.entries if e.label == label]

    def lookup(self, label: str | None, precision: str | None) -> ModelEntry:
        """The entry for a dropdown choice.

        Raises:
            SamedgeError: the label or precision is not one this server offers.
        """
        matches = [e for e in self.entries if e.label == label]
        if not matches:
            raise SamedgeError(f"model '{label}' is not offered by this server")
        for entry in matches:
            if precision in (None, entry.precision):
                return entry
        raise SamedgeError(f"model '{label}' has no {precision} export on this server")

    def check_provider(self, provider: str | None) -> str:
        if provider not in self.providers:
            raise SamedgeError(
                f"execution provider '{provider}' is not available; "
                f"choose one of {', '.join(self.providers)}"
            )
        return str(provider)


def provider_choices(available: Sequence[str], native_openvino: bool = False) -> list[str]:
    """Short provider names (``cpu``, ``cuda``, ...) for ONNX Runtime's provider names;
    ``native_openvino``: ``openvino`` too, which runs the encoder on OpenVINO's own runtime
    (:func:`samedge.runtime.session.native_openvino`)."""
    from ..runtime.providers import PROVIDER_NAMES

    short = {full: name for name, full in PROVIDER_NAMES.items()}
    # Providers samedge has no name for (AzureExecutionProvider calls remote endpoints, it
    # runs no local graph) are not offered.
    names = [short[p] for p in available if p in short]
    names += ["openvino"] if native_openvino else []
    # CPU first: it is what every build has and the default.
    return sorted(dict.fromkeys(names), key=lambda n: (n != "cpu", names.index(n)))


class PredictorPool:
    """Loaded predictors keyed by (model folder, provider), least recently used dropped.

    Loading checks every file's sha256 once (``ModelArtifact.open(verify=True)``).
    """

    def __init__(self, threads: int | None = None, capacity: int = 2) -> None:
        self.threads = threads
        self.capacity = max(1, capacity)
        self._items: OrderedDict[tuple[str, str], Predictor] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, entry: ModelEntry, provider: str) -> Predictor:
        from ..runtime.predictor import Predictor

        key = (entry.key, provider)
        with self._lock:
            predictor = self._items.get(key)
            if predictor is None:
                artifact = ModelArtifact.open(entry.folder, verify=True)
                predictor = Predictor(artifact, providers=provider, threads=self.threads)
                self._items[key] = predictor
            self._items.move_to_end(key)
            while len(self._items) > self.capacity:
                # Dropped, not closed: a request that took this predictor a moment ago may
                # still be decoding with it; its sessions are freed with the last reference.
                self._items.popitem(last=False)
            return predictor
