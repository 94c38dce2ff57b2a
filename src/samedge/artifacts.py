"""Exported model folders: finding them by name or path, and checking them before use."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .errors import ArtifactError, ModelNotFoundError
from .hub import models_dir
from .manifest import Manifest, required_roles
from .registry import get_spec, list_models, unknown_model_message
from .specs import ModelSpec


@dataclass(frozen=True)
class ModelArtifact:
    """An exported model folder whose manifest has been read and checked."""

    folder: Path
    manifest: Manifest
    spec: ModelSpec

    def path(self, role: str) -> Path:
        """The ``.onnx`` graph of ``role`` (one of :data:`samedge.manifest.ROLES`)."""
        return self.folder / self.manifest.files[role][0].path

    def has(self, role: str) -> bool:
        """Whether the folder holds the graph of ``role`` (for
        :data:`samedge.manifest.OPTIONAL_ROLES`)."""
        return bool(self.manifest.files.get(role))

    def cache_name(self, role: str) -> str:
        """The engine-cache folder name of ``role``'s graph (TensorRT, OpenVINO): model,
        role and the file's sha256, so a re-export never loads a stale engine, and the
        image predictor and the video tracker share the encoder's."""
        return f"{self.spec.name}-{role}-{self.manifest.files[role][0].sha256[:16]}"

    @property
    def encoder_path(self) -> Path:
        return self.path("encoder")

    @property
    def decoder_path(self) -> Path:
        return self.path("decoder")

    @property
    def random_weights(self) -> bool:
        return self.manifest.weights.get("source") == "random-init"

    @classmethod
    def open(cls, folder: str | os.PathLike[str], verify: bool = True) -> ModelArtifact:
        """Read ``folder``'s manifest and check its files (sizes always, sha256 if ``verify``).

        Raises:
            ArtifactError: not a model folder, or files missing, corrupt or mismatching.
        """
        folder = Path(folder)
        manifest = Manifest.read(folder)
        try:
            spec = get_spec(manifest.model)
        except ModelNotFoundError:
            raise ArtifactError(
                f"{folder} holds model '{manifest.model}', which this samedge does not know; "
                f"upgrade samedge"
            ) from None
        size = manifest.extra.get("image_size")
        if size is not None and size != spec.image_size:
            try:
                if not isinstance(size, int) or isinstance(size, bool):
                    raise ValueError(f"not a whole number: {size!r}")
                spec = spec.at_image_size(size)
            except ValueError as exc:
                raise ArtifactError(
                    f"{folder}: the manifest's extra.image_size is wrong ({exc}); "
                    f"re-export the model"
                ) from None
        for role in required_roles(spec.mask_prompt):
            if not manifest.files.get(role):
                raise ArtifactError(f"{folder}: the manifest lists no {role}; re-export the model")
        manifest.verify(folder, check_hashes=verify)
        return cls(folder=folder, manifest=manifest, spec=spec)


def default_model_folder(name: str) -> Path:
    """Where ``samedge export NAME`` writes by default: ``$SAMEDGE_HOME/models/NAME``."""
    return models_dir() / name


def sized_name(name: str, size: int | str) -> str:
    """The cache name of ``samedge export NAME --image-size N``, ``NAME-Npx`` (``size="*"``:
    the glob of every size); :func:`resolve_model` opens it by that name."""
    return f"{name}-{size}px"


def export_name(spec: ModelSpec) -> str:
    """The cache name ``samedge export`` writes ``spec`` under: its registry name, or
    :func:`sized_name` for an input size other than the registry's."""
    if spec.image_size == get_spec(spec.name).image_size:
        return spec.name
    return sized_name(spec.name, spec.image_size)


def resolve_model(name_or_dir: str | os.PathLike[str], verify: bool = True) -> ModelArtifact:
    """Open a model given a registry name (looked up in the cache), ``NAME-Npx`` (the cache's
    ``samedge export NAME --image-size N``) or an exported folder.

    Raises:
        ModelNotFoundError: unknown name (with suggestions) or a known model not exported yet
            (with the commands that export it).
        ArtifactError: the folder exists but is not a valid model folder.
    """
    text = os.fspath(name_or_dir)
    path = Path(text)
    if path.is_dir():
        return ModelArtifact.open(path, verify=verify)
    name, _, tail = text.rpartition("-")
    size = tail.removesuffix("px")
    sized = (
        name in list_models()
        and size.isascii()
        and size.isdigit()
        and text == sized_name(name, size)
    )
    if text in list_models() or sized:
        folder = default_model_folder(text)
        if folder.is_dir():
            return ModelArtifact.open(folder, verify=verify)
        how = (
            f"'samedge export {name} --image-size {size}'"
            if sized
            else f"'samedge models pull {text}' then 'samedge export {text}'"
        )
        raise ModelNotFoundError(
            f"model '{text}' has not been exported yet: run {how} (needs pip install "
            f"'samedge[export]'), or pass an exported folder"
        )
    if os.sep in text or text.startswith("."):
        raise ModelNotFoundError(f"model folder not found: {text}")
    raise ModelNotFoundError(unknown_model_message(text))
