"""Per-image result files ("shards") of a batch run and the state of its output folder.

An image is done when ``<out>/shards/<key>.json`` exists, reads back as the shard of that
key, and names the same image file as now (:func:`image_source`: its resolved path, size
and modification time). Shards are written to a temporary name in the same folder and renamed (by
:class:`samedge.outputs.OutputSet`), so a killed worker leaves at most a ``.tmp`` file,
which the next run deletes and whose image it redoes.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..errors import SamedgeError
from ..outputs import OutputSet

SHARDS = "shards"
JOB_FILE = "job.json"
MERGED = "masks.json"
ERRORS = "errors.jsonl"


def shard_path(out: str | os.PathLike[str], key: str) -> Path:
    return Path(out) / SHARDS / f"{key}.json"


def image_source(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """What a shard records of its image file: resolved path, size in bytes, modification
    time in ns (``None``: the file cannot be read).

    A stat, not a hash of the content: a resumed run checks every image, and on the network
    file systems batch runs use, reading each file again costs as much as the run's own
    reads (docs/batch.md). Another image under the same name has another path, size or
    modification time unless it was copied over this one keeping both.
    """
    try:
        stat = os.stat(path)
        resolved = str(Path(path).resolve())
    except (OSError, RuntimeError):
        return None
    return {"path": resolved, "bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def read_shard(out: str | os.PathLike[str], key: str) -> dict[str, Any] | None:
    """The shard of ``key``, or ``None`` when it is missing or unreadable (to redo)."""
    try:
        data = json.loads(shard_path(out, key).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("key") != key or "annotations" not in data:
        return None
    return data


def done_keys(out: str | os.PathLike[str], sources: dict[str, dict[str, Any] | None]) -> set[str]:
    """The keys of ``sources`` (key -> :func:`image_source` of its image now) whose shard
    is complete and was made from that same image file."""
    folder = Path(out) / SHARDS
    if not folder.is_dir():
        return set()
    present = {p.name[: -len(".json")] for p in folder.glob("*.json")}
    done = set()
    for key, source in sources.items():
        shard = read_shard(out, key) if key in present and source is not None else None
        if shard is not None and shard.get("source") == source:
            done.add(key)
    return done


def forget(out: str | os.PathLike[str], key: str) -> None:
    """Delete what an earlier run wrote for ``key`` (shard, PNGs, overlay), so that an image
    being redone merges nothing old if it fails this time."""
    root = Path(out)
    shard_path(root, key).unlink(missing_ok=True)
    (root / "overlays" / f"{key}.png").unlink(missing_ok=True)
    masks = root / "png" / key
    if masks.is_dir():
        for png in masks.glob("*.png"):
            png.unlink()


def remove_partial(out: str | os.PathLike[str]) -> int:
    """Delete the temporary files a killed run left in the output folder; their count."""
    removed = 0
    root = Path(out)
    if not root.is_dir():
        return 0
    for tmp in root.rglob(".*.tmp"):
        tmp.unlink(missing_ok=True)
        removed += 1
    return removed


def clear_shards(out: str | os.PathLike[str]) -> None:
    """Delete every shard (``--no-resume``)."""
    folder = Path(out) / SHARDS
    if folder.is_dir():
        for shard in folder.glob("*.json"):
            shard.unlink()


def check_job(out: str | os.PathLike[str], job: dict[str, Any], resume: bool) -> None:
    """Record ``job`` (model, work kind, settings) in ``<out>/job.json``; with ``resume``,
    refuse an output folder whose shards were made by a different job.

    Raises:
        SamedgeError: ``out`` holds another job's shards.
    """
    path = Path(out) / JOB_FILE
    if resume and path.exists():
        try:
            previous = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            previous = None
        if previous != job:
            raise SamedgeError(
                f"--out {out} holds results of a different run (model, work kind or "
                "settings differ); use another --out, or --no-resume to redo every image there"
            )
        return
    with OutputSet() as files:
        files.add_json(path, job)


def write_jsonl(path: str | os.PathLike[str], rows: list[dict[str, Any]]) -> None:
    """Write ``rows`` as JSON lines, atomically."""
    text = "".join(json.dumps(row) + "\n" for row in rows)
    with OutputSet() as files:
        files.add(path, text.encode())
