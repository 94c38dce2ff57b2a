"""Property tests of ``samedge.json`` parsing (:meth:`samedge.manifest.Manifest.read`):
malformed JSON, missing fields, wrong types and unknown fields give one
:class:`~samedge.errors.ArtifactError` line naming the file, the field and the fix, never a
KeyError or TypeError traceback; also through ``samedge segment --model FOLDER``.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from samedge.cli.main import main
from samedge.errors import ArtifactError
from samedge.manifest import FORMAT_VERSION, MANIFEST_NAME, ROLES, FileEntry, Manifest

from .conftest import shared_path

FAST = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
FIELDS = ("format", "format_version", "model", "family", "opset", "precision", "weights", "files")

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.floats() | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=8,
)


def valid_manifest() -> dict[str, Any]:
    """What ``samedge export`` writes (file hashes made up: only parsing is tested)."""
    files = {role: [FileEntry(f"{role}.onnx", "0" * 64, 1000 + i)] for i, role in enumerate(ROLES)}
    manifest = Manifest(
        model="sam2.1_hiera_tiny",
        family="sam2",
        opset=17,
        precision={"encoder": "fp32", "decoder": "fp32"},
        weights={"source": "random-init", "seed": 0},
        files=files,
        parity={"encoder": {"max_abs": 1e-5}},
        exporter={"samedge": "0.1.0"},
        created="2026-01-01T00:00:00Z",
    )
    return json.loads(manifest.to_json())


def read(folder: Path, text: str) -> Manifest | None:
    """Write ``text`` as the manifest and read it: a Manifest, or None after checking that
    the error is one line naming the file and a fix."""
    (folder / MANIFEST_NAME).write_text(text, encoding="utf-8")
    try:
        return Manifest.read(folder)
    except ArtifactError as exc:
        message = str(exc)
        assert "\n" not in message, message
        assert str(folder / MANIFEST_NAME) in message, message
        assert "re-export" in message or "upgrade samedge" in message, message
        return None


def test_what_export_writes_reads_back(tmp_path: Path) -> None:
    data = valid_manifest()
    manifest = read(tmp_path, json.dumps(data))
    assert manifest is not None and json.loads(manifest.to_json()) == data


@FAST
@given(text=st.text(max_size=200))
@example(text="{not json")
@example(text="[]")  # valid JSON, not an object: was AttributeError
@example(text="[" * 100_000)  # nesting deeper than the parser recurses: was RecursionError
def test_arbitrary_text(tmp_path: Path, text: str) -> None:
    assert read(tmp_path, text) is None


@FAST
@given(cut=st.integers(0, 2000))
def test_truncated_manifest(tmp_path: Path, cut: int) -> None:
    text = json.dumps(valid_manifest(), indent=2)
    if cut < len(text):
        assert read(tmp_path, text[:cut]) is None


@FAST
@given(field=st.sampled_from(FIELDS))
def test_missing_field_is_named(tmp_path: Path, field: str) -> None:
    data = valid_manifest()
    del data[field]
    (tmp_path / MANIFEST_NAME).write_text(json.dumps(data))
    with pytest.raises(ArtifactError) as err:
        Manifest.read(tmp_path)
    assert f"'{field}'" in str(err.value) or field == "format_version"


def _paths(data: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key path inside a manifest, e.g. ``("files", "encoder", 0, "bytes")``."""
    found = [prefix] if prefix else []
    if isinstance(data, dict):
        for key, value in data.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            found += _paths(value, (*prefix, index))
    return found


@FAST
@given(where=st.data(), value=json_values)
@example(where=None, value="17")  # opset as a string
@example(where=None, value=True)  # bool where an int goes
def test_wrong_types_anywhere(tmp_path: Path, where: st.DataObject | None, value: Any) -> None:
    data = valid_manifest()
    paths = _paths(data)
    path = ("opset",) if where is None else where.draw(st.sampled_from(paths))
    target = data
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    manifest = read(tmp_path, json.dumps(data))
    if manifest is not None:
        # Accepted: then every typed field really has its type.
        assert isinstance(manifest.model, str) and isinstance(manifest.opset, int)
        assert all(isinstance(v, str) for v in manifest.precision.values())
        for entries in manifest.files.values():
            for entry in entries:
                assert isinstance(entry.path, str) and isinstance(entry.sha256, str)
                assert type(entry.bytes) is int


@FAST
@given(
    key=st.text(min_size=1, max_size=10).filter(lambda k: k not in valid_manifest()),
    value=json_values,
    inside=st.sampled_from(["top", "file entry"]),
)
def test_unknown_fields(tmp_path: Path, key: str, value: Any, inside: str) -> None:
    data = valid_manifest()
    target = data if inside == "top" else data["files"]["decoder"][0]
    target[key] = value
    assert read(tmp_path, json.dumps(data)) is None


@FAST
@given(name=st.sampled_from(["../outside.onnx", "/etc/hostname", "", "a/../../b.onnx"]))
def test_file_entries_stay_in_the_folder(tmp_path: Path, name: str) -> None:
    data = valid_manifest()
    data["files"]["encoder"][0]["path"] = name
    assert read(tmp_path, json.dumps(data)) is None


def test_versions_name_the_fix(tmp_path: Path) -> None:
    for version, fix in ((FORMAT_VERSION + 1, "upgrade samedge"), (1, "re-export")):
        (tmp_path / MANIFEST_NAME).write_text(
            json.dumps(valid_manifest() | {"format_version": version})
        )
        with pytest.raises(ArtifactError, match=fix):
            Manifest.read(tmp_path)


@pytest.mark.parametrize(
    ("damage", "field"),
    [
        (lambda d: d.pop("files"), "'files' is missing"),
        (lambda d: d.update(opset="seventeen"), "'opset' must be an integer"),
        (lambda d: d["files"].update(encoder=[{"path": "encoder.onnx"}]), "sha256"),
        (lambda d: d.update(weights=[]), "'weights' must be an object"),
        (lambda d: d.update(model=None), "'model' must be a string"),
        (lambda d: d.update(model="sam_vit_q"), "which this samedge does not know"),
        (lambda d: d["files"].pop("decoder"), "lists no decoder"),
        (lambda d: None, "encoder file encoder.onnx is missing"),
    ],
)
def test_cli_segment_with_a_broken_manifest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], damage: Any, field: str
) -> None:
    data = copy.deepcopy(valid_manifest())
    damage(data)
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / MANIFEST_NAME).write_text(json.dumps(data))
    image = shared_path("data", "images", "dog.jpg")
    argv = ["segment", str(image), "--model", str(folder), "--point", "10,10"]
    assert main([*argv, "--out", str(tmp_path / "mask.png")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("samedge: error: ") and field in err, err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "mask.png").exists()
