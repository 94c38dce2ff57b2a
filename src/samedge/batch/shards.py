"""Per-image result files ("shards") of a batch run and the state of its output folder.

An image is done when ``<out>/shards/<key>.json`` exists and reads back as the shard of that
key. Shards are written to a temporary name in the same folder and renamed (by
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


def read_shard(out: str | os.PathLike[str], key: str) -> dict[str, Any] | None:
    """The shard of ``key``, or ``None`` when it is missing or unreadable (to redo)."""
    try:
        data = json.loads(shard_path(out, key).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("key") != key or "annotations" not in data:
        return None
    return data


def done_keys(out: str | os.PathLike[str], keys: list[str]) -> set[str]:
    """The keys among ``keys`` whose shard is complete."""
    folder = Path(out) / SHARDS
    if not folder.is_dir():
        return set()
    present = {p.name[: -len(".json")] for p in folder.glob("*.json")}
    return {key for key in keys if key in present and read_shard(out, key) is not None}


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
