"""The manifest of an exported model folder (``samedge.json``) and its integrity checks."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shlex
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
#: The mask-prompt decoder, which models whose decoder takes no mask prompt
#: (``ModelSpec.mask_prompt`` false, EfficientSAM) do not have.
MASK_ROLE = "decoder_mask"


def required_roles(mask_prompt: bool) -> tuple[str, ...]:
    """The :data:`ROLES` a model folder must hold: all but :data:`MASK_ROLE` for a model
    without a mask prompt (pass ``spec.mask_prompt``)."""
    return ROLES if mask_prompt else tuple(r for r in ROLES if r != MASK_ROLE)


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
        family: the registry family (``"sam"``, ``"sam2"``, ``"efficientvit_sam"``, ...).
        opset: the newest ONNX opset among the graphs (the decoders' is 17; an encoder may
            need a newer one, see ``samedge.export.exporter.ENCODER_OPSET``).
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
        """Read and check ``folder/samedge.json``.

        Raises:
            ArtifactError: no manifest, or one that is not valid JSON, from another samedge
                format, or has a missing or mistyped field; one line naming the file, the
                field and the fix.
        """
        path = folder / MANIFEST_NAME
        if not path.is_file():
            raise ArtifactError(
                f"{folder} is not a samedge model folder (no {MANIFEST_NAME}); "
                f"create one with 'samedge export'"
            )
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError) as exc:
            reason = " ".join(str(exc).split()) or type(exc).__name__
            raise ArtifactError(
                f"{path} is corrupt ({reason}); {_reexport(None, folder)}"
            ) from None
        fields = _Fields(data, path, folder)
        known = {"format", "format_version", *(f.name for f in dataclasses.fields(cls))}
        unknown = sorted(set(fields.data) - known)
        if unknown and fields.data.get("format_version") == FORMAT_VERSION:
            raise fields.error(unknown[0], "is unknown (additions belong under 'extra')")
        if fields.data.get("format") != FORMAT:
            raise fields.error("format", f"is not '{FORMAT}' (not a samedge manifest)")
        version = fields.get("format_version", int)
        if version > FORMAT_VERSION:
            raise ArtifactError(
                f"{path} was written by a newer samedge (format {version}); upgrade samedge"
            )
        if version < FORMAT_VERSION:
            raise ArtifactError(
                f"{path} was written by an older samedge (format {version}; this one reads "
                f"format {FORMAT_VERSION}); {_reexport(fields.model, folder)}"
            )
        return cls(
            model=fields.get("model", str),
            family=fields.get("family", str),
            opset=fields.get("opset", int),
            precision=fields.mapping("precision", str),
            weights=fields.mapping("weights"),
            files=fields.files(),
            parity=fields.mapping("parity", required=False),
            exporter=fields.mapping("exporter", str, required=False),
            created=fields.get("created", str, required=False) or "",
            extra=fields.mapping("extra", required=False),
        )

    def export_command(self, folder: Path) -> str:
        """The ``samedge export`` command that writes this model into ``folder`` again, with
        the same weights (``--random-init SEED`` for a random-weight export)."""
        weights = ""
        if self.weights.get("source") == "random-init":
            weights = f" --random-init {self.weights.get('seed', 0)}"
        return f"samedge export {self.model}{weights} --out {shlex.quote(str(folder))}"

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
                        f"with '{self.export_command(folder)}'"
                    )
                size = path.stat().st_size
                if size != entry.bytes or (check_hashes and sha256_file(path) != entry.sha256):
                    raise ArtifactError(
                        f"{folder}: {entry.path} does not match its manifest (corrupt or "
                        f"replaced); re-export the model with '{self.export_command(folder)}'"
                    )


def _reexport(model: str | None, folder: Path) -> str:
    return f"re-export the model with 'samedge export {model or 'MODEL'} --out {folder}'"


_TYPE_NAMES = {str: "a string", int: "an integer", dict: "an object", list: "a list"}


class _Fields:
    """Typed access to a parsed manifest; every problem is one :class:`ArtifactError` line
    that names the file, the field and the fix."""

    def __init__(self, data: object, path: Path, folder: Path) -> None:
        self.path = path
        self.folder = folder
        if not isinstance(data, dict):
            raise ArtifactError(
                f"{path} is corrupt (a JSON {type(data).__name__}, not an object); "
                f"{_reexport(None, folder)}"
            )
        self.data: dict[str, Any] = data
        model = data.get("model")
        self.model = model if isinstance(model, str) and model.isprintable() else None

    def error(self, field: str, problem: str) -> ArtifactError:
        fix = _reexport(self.model, self.folder)
        # repr: a key read from the file may hold a newline; the message stays one line.
        return ArtifactError(f"{self.path} is corrupt: field {field!r} {problem}; {fix}")

    def check(self, field: str, value: object, kind: type) -> Any:
        # bool is an int to Python, but never a valid opset, size or version.
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            got = "null" if value is None else type(value).__name__
            raise self.error(field, f"must be {_TYPE_NAMES[kind]}, not {got}")
        return value

    def get(self, field: str, kind: type, required: bool = True) -> Any:
        if field not in self.data:
            if required:
                raise self.error(field, "is missing")
            return None
        return self.check(field, self.data[field], kind)

    def mapping(
        self, field: str, values: type | None = None, required: bool = True
    ) -> dict[str, Any]:
        found = self.get(field, dict, required)
        if found is None:
            return {}
        if values is not None:
            for key, value in found.items():
                self.check(f"{field}.{key}", value, values)
        return dict(found)

    def files(self) -> dict[str, list[FileEntry]]:
        files: dict[str, list[FileEntry]] = {}
        for role, entries in self.mapping("files", list).items():
            files[role] = []
            for i, entry in enumerate(entries):
                where = f"files.{role}[{i}]"
                self.check(where, entry, dict)
                unknown = sorted(set(entry) - {"path", "sha256", "bytes"})
                if unknown:
                    raise self.error(where, f"has unknown keys {', '.join(map(repr, unknown))}")
                name = self.check(f"{where}.path", entry.get("path"), str)
                # Graphs live in the folder: a manifest must not point a session elsewhere.
                if not name or Path(name).is_absolute() or ".." in Path(name).parts:
                    raise self.error(f"{where}.path", f"is not a file name in {self.folder}")
                files[role].append(
                    FileEntry(
                        name,
                        self.check(f"{where}.sha256", entry.get("sha256"), str),
                        self.check(f"{where}.bytes", entry.get("bytes"), int),
                    )
                )
        return files
