"""The manifest of an exported model folder (``samedge.json``) and its integrity checks."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .errors import ArtifactError

MANIFEST_NAME = "samedge.json"
FORMAT = "samedge-model"
#: 2: the decoder is split into context.onnx, decoder.onnx and decoder_mask.onnx.
#: 3: the context holds the keys with the positional encoding and the first block's
#: transposed keys; the decoders never project the image side (see samedge.export.wrappers).
#: 4: the context's SAM 2 high-res features include the upscaling's biases, and a
#: single-prompt decoder call adds them inside its products (samedge.export.graph).
FORMAT_VERSION = 4
#: The graphs (file roles) that make up each component a precision applies to.
COMPONENT_ROLES: dict[str, tuple[str, ...]] = {
    "encoder": ("encoder",),
    "decoder": ("context", "decoder", "decoder_mask"),
}
ROLES = tuple(role for roles in COMPONENT_ROLES.values() for role in roles)
#: Graphs a model folder may also hold, which the runtime uses when they are there: the
#: decoder split in two (scores first, then masks on demand; see
#: samedge.export.wrappers.DecoderHead) for segment everything. Folders exported before
#: them, and quantized folders, have none and decode with ``decoder.onnx``.
OPTIONAL_ROLES = ("decoder_head", "upscaler")


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class FileEntry:
    """One file of an exported graph: name relative to the folder, sha256, size in bytes."""

    path: str
    sha256: str
    bytes: int


@dataclass
class Manifest:
    """Contents of ``samedge.json``.

    Attributes:
        model: registry name of the exported model.
        family: ``"sam"`` or ``"sam2"``.
        opset: ONNX opset of both graphs.
        precision: precision per component, e.g. ``{"encoder": "fp32", "decoder": "fp32"}``
            (components and their graphs: :data:`COMPONENT_ROLES`).
        weights: where the weights came from (``{"source": "checkpoint", "sha256": ...}`` or
            ``{"source": "random-init", "seed": 0}``).
        files: per graph (:data:`ROLES`: ``"encoder"``, ``"context"``, ``"decoder"``,
            ``"decoder_mask"``), the files that make it up, the ``.onnx`` graph first.
        parity: the export's parity report against torch.
        exporter: package versions used to export.
        created: UTC timestamp.
    """

    model: str
    family: str
    opset: int
    precision: dict[str, str]
    weights: dict[str, Any]
    files: dict[str, list[FileEntry]]
    parity: dict[str, Any] = field(default_factory=dict)
    exporter: dict[str, str] = field(default_factory=dict)
    created: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        data = {"format": FORMAT, "format_version": FORMAT_VERSION, **asdict(self)}
        return json.dumps(data, indent=2, sort_keys=False) + "\n"

    @classmethod
    def read(cls, folder: Path) -> Manifest:
        path = folder / MANIFEST_NAME
        if not path.is_file():
            raise ArtifactError(
                f"{folder} is not a samedge model folder (no {MANIFEST_NAME}); "
                f"create one with 'samedge export'"
            )
        try:
            data = json.loads(path.read_text())
            if data.get("format") != FORMAT:
                raise ValueError("not a samedge manifest")
            version = int(data.get("format_version", 0))
            if version > FORMAT_VERSION:
                raise ArtifactError(
                    f"{path} was written by a newer samedge (format {version}); upgrade samedge"
                )
            if version < FORMAT_VERSION:
                raise ArtifactError(
                    f"{path} was written by an older samedge (format {version}; this one "
                    f"reads format {FORMAT_VERSION}); re-export the model with 'samedge export "
                    f"{data.get('model', 'MODEL')} --out {folder}'"
                )
            files = {
                role: [FileEntry(**entry) for entry in entries]
                for role, entries in data["files"].items()
            }
            return cls(
                model=data["model"],
                family=data["family"],
                opset=int(data["opset"]),
                precision=dict(data["precision"]),
                weights=dict(data["weights"]),
                files=files,
                parity=dict(data.get("parity", {})),
                exporter=dict(data.get("exporter", {})),
                created=str(data.get("created", "")),
                extra=dict(data.get("extra", {})),
            )
        except ArtifactError:
            raise
        except (ValueError, KeyError, TypeError) as exc:
            raise ArtifactError(
                f"{path} is corrupt ({type(exc).__name__}: {exc}); re-export the model"
            ) from None

    def verify(self, folder: Path, check_hashes: bool = True) -> None:
        """Check that every listed file exists with the recorded size (and sha256).

        Raises:
            ArtifactError: a file is missing, truncated or altered; the message names it.
        """
        for role, entries in self.files.items():
            for entry in entries:
                path = folder / entry.path
                if not path.is_file():
                    raise ArtifactError(
                        f"{folder}: {role} file {entry.path} is missing; re-export the model "
                        f"with 'samedge export {self.model} --out {folder}'"
                    )
                size = path.stat().st_size
                if size != entry.bytes or (check_hashes and sha256_file(path) != entry.sha256):
                    raise ArtifactError(
                        f"{folder}: {entry.path} does not match its manifest (corrupt or "
                        f"replaced); re-export the model with 'samedge export {self.model} "
                        f"--out {folder}'"
                    )
