"""What a batch run works on: the images of INPUT and the prompts of each.

INPUT is a folder (every image below it, recursively), a glob pattern (``"photos/*.jpg"``,
``**`` allowed), a text file of image paths (one per line, relative to the text file's
folder; blank lines and lines starting with ``#`` are skipped) or one image file. Each image
becomes one :class:`WorkItem`; its ``key`` names its shard, so it is the same on every run
and every executor.
"""

from __future__ import annotations

import glob
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import SamedgeError
from ..imageio import IMAGE_SUFFIXES

#: The work kinds: one mask per COCO box, one per JSONL prompt, or segment everything.
MODES = ("boxes", "points", "everything")


@dataclass(frozen=True)
class WorkItem:
    """One image of a batch run and its prompts (plain data: it crosses process and Ray
    boundaries as JSON).

    Attributes:
        key: shard name, unique in the run and stable across runs (file-name safe).
        path: the image file.
        file_name: the image's name in the outputs (its COCO ``file_name``).
        image_id: its COCO ``images[].id``.
        prompts: ``boxes``: ``{"id", "bbox"}`` per annotation (COCO XYWH pixels);
            ``points``: the JSONL objects of this image; ``everything``: empty.
    """

    key: str
    path: str
    file_name: str
    image_id: int
    prompts: tuple[dict[str, Any], ...] = ()

    def to_json(self) -> str:
        return json.dumps(
            {
                "key": self.key,
                "path": self.path,
                "file_name": self.file_name,
                "image_id": self.image_id,
                "prompts": list(self.prompts),
            }
        )

    @classmethod
    def from_json(cls, text: str) -> WorkItem:
        data = json.loads(text)
        return cls(
            data["key"], data["path"], data["file_name"], data["image_id"], tuple(data["prompts"])
        )


@dataclass
class WorkList:
    """The images to process, in output order, and the problems found before any work
    (``(path, reason)``, written to the errors file).

    Attributes:
        items: one per image.
        errors: inputs that cannot be worked on, e.g. a COCO image missing from INPUT.
        coco: the ``--boxes`` COCO document (kept whole for the merged output), else ``None``.
    """

    items: list[WorkItem]
    errors: list[tuple[str, str]] = field(default_factory=list)
    coco: dict[str, Any] | None = None


def shard_key(file_name: str) -> str:
    """``<safe stem>-<10 hex of sha1(file_name)>``: readable and unique per image name."""
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(file_name).stem)[:60] or "image"
    return f"{stem}-{hashlib.sha1(file_name.encode()).hexdigest()[:10]}"


def list_images(source: str) -> list[tuple[Path, str]]:
    """``(path, file_name)`` of every image of INPUT, sorted by file name.

    ``file_name`` is the path relative to a folder INPUT, and the path as written for a
    glob or a list file.

    Raises:
        SamedgeError: INPUT does not exist, or names no image.
    """
    root = Path(source)
    found: list[tuple[Path, str]]
    if root.is_dir():
        found = [
            (p, p.relative_to(root).as_posix())
            for p in root.rglob("*")
            if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
        ]
    elif root.is_file() and root.suffix.lower() in IMAGE_SUFFIXES:
        found = [(root, root.name)]
    elif root.is_file():
        found = []
        try:
            lines = root.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise SamedgeError(f"cannot read the list of images {root}: {exc}") from None
        for line in lines:
            name = line.strip()
            if name and not name.startswith("#"):
                found.append((root.parent / name, name))
    elif glob.has_magic(source):
        found = [
            (Path(p), Path(p).as_posix())
            for p in glob.glob(source, recursive=True)
            if Path(p).is_file() and Path(p).suffix.lower() in IMAGE_SUFFIXES
        ]
    else:
        raise SamedgeError(
            f"INPUT {source} not found: give a folder, a glob pattern or a text file of image paths"
        )
    if not found:
        raise SamedgeError(f"INPUT {source} names no image (suffixes {', '.join(IMAGE_SUFFIXES)})")
    names = [name for _, name in found]
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise SamedgeError(f"INPUT lists {dup} twice; list each image once")
    return sorted(found, key=lambda pair: pair[1])


def everything_items(images: list[tuple[Path, str]]) -> WorkList:
    """One item per image, ids 1, 2, ... in file-name order."""
    return WorkList(
        [
            WorkItem(shard_key(name), str(path), name, i)
            for i, (path, name) in enumerate(images, start=1)
        ]
    )


class _Lookup:
    """File name and, where unique, base name of each image -> its path."""

    def __init__(self, images: list[tuple[Path, str]]) -> None:
        self.table = {name: path for path, name in images}
        self.bases: dict[str, list[str]] = {}
        for _, name in images:
            self.bases.setdefault(Path(name).name, []).append(name)
        for base, names in self.bases.items():
            if len(names) == 1:
                self.table.setdefault(base, self.table[names[0]])

    def find(self, name: str) -> tuple[Path | None, str]:
        """``(path, "")``, or ``(None, why not)``: not in INPUT, or a base name that
        several of INPUT's files share."""
        path = self.table.get(name) or self.table.get(Path(name).name)
        if path is not None:
            return path, ""
        several = self.bases.get(Path(name).name, [])
        if len(several) > 1:
            shown = ", ".join(sorted(several)[:3]) + (", ..." if len(several) > 3 else "")
            return None, (
                f"matches {len(several)} files of INPUT ({shown}): give its path relative to INPUT"
            )
        return None, "not found in INPUT"


def coco_items(images: list[tuple[Path, str]], coco_file: Path) -> WorkList:
    """One item per image of the COCO file that has a box annotation, with its boxes.

    COCO images are found in INPUT by ``file_name`` (then by base name); one that is not
    there goes to the errors. Annotations without a ``bbox`` are kept as they are.

    Raises:
        SamedgeError: the file is not a COCO document (no ``images`` / ``annotations``
            lists, an image without ``id`` or ``file_name``, a malformed ``bbox``).
    """
    try:
        coco = json.loads(coco_file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SamedgeError(f"cannot read --boxes {coco_file}: {exc.strerror or exc}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SamedgeError(f"--boxes {coco_file} is not JSON: {exc}") from None
    if not isinstance(coco, dict) or not all(
        isinstance(coco.get(k), list) for k in ("images", "annotations")
    ):
        raise SamedgeError(
            f"--boxes {coco_file} is not a COCO file: it needs 'images' and 'annotations' lists"
        )
    boxes: dict[Any, list[dict[str, Any]]] = {}
    for ann in coco["annotations"]:
        if not isinstance(ann, dict) or "bbox" not in ann:
            continue
        bbox = ann["bbox"]
        if (
            not isinstance(bbox, list)
            or len(bbox) != 4
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in bbox)
        ):
            raise SamedgeError(
                f"--boxes {coco_file}: annotation {ann.get('id')} has bbox {bbox!r}; "
                "COCO boxes are [x, y, width, height] numbers"
            )
        if "id" not in ann or "image_id" not in ann:
            raise SamedgeError(
                f"--boxes {coco_file}: an annotation with a bbox has no 'id' or 'image_id'"
            )
        boxes.setdefault(ann["image_id"], []).append({"id": ann["id"], "bbox": bbox})
    lookup = _Lookup(images)
    work = WorkList([], coco=coco)
    seen: set[str] = set()
    for image in coco["images"]:
        if not isinstance(image, dict) or "id" not in image or "file_name" not in image:
            raise SamedgeError(f"--boxes {coco_file}: every image needs an 'id' and a 'file_name'")
        if image["id"] not in boxes:
            continue
        name = str(image["file_name"])
        path, why = lookup.find(name)
        if path is None:
            work.errors.append((name, why))
            continue
        key = shard_key(f"{name}#{image['id']}")
        if key in seen:
            raise SamedgeError(f"--boxes {coco_file}: image id {image['id']} appears twice")
        seen.add(key)
        work.items.append(WorkItem(key, str(path), name, image["id"], tuple(boxes[image["id"]])))
    return work


def points_items(images: list[tuple[Path, str]], jsonl: Path) -> WorkList:
    """One item per image named in the JSONL file, with its prompts in file order.

    Each line is one object: ``{"image": NAME, "points": [[x, y], ...], "labels": [1, 0,
    ...]}`` and/or ``"box": [x0, y0, x1, y1]``; other fields (e.g. ``category_id``) are
    copied into the object's annotation. NAME is an image's file name in INPUT (or its base
    name); one not in INPUT goes to the errors. Image ids follow INPUT's file-name order, as
    with ``--everything``.

    Raises:
        SamedgeError: a line is not a JSON object with ``image`` and a prompt.
    """
    try:
        lines = jsonl.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise SamedgeError(f"cannot read --points {jsonl}: {exc.strerror or exc}") from None
    named: list[dict[str, Any]] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise SamedgeError(f"--points {jsonl} line {number} is not JSON: {exc}") from None
        if not isinstance(obj, dict) or not isinstance(obj.get("image"), str):
            raise SamedgeError(
                f'--points {jsonl} line {number}: expected {{"image": NAME, "points": '
                '[[x, y], ...], "labels": [1, ...]}} (or "box": [x0, y0, x1, y1])'
            )
        if "points" not in obj and "box" not in obj:
            raise SamedgeError(f"--points {jsonl} line {number}: no 'points' and no 'box'")
        if "points" in obj and "labels" not in obj:
            raise SamedgeError(
                f"--points {jsonl} line {number}: 'points' need 'labels' (1 object, 0 background)"
            )
        named.append(obj)
    lookup = _Lookup(images)
    ids = {name: i for i, (_, name) in enumerate(images, start=1)}
    names = {str(path): name for path, name in images}
    paths = {name: path for path, name in images}
    prompts: dict[str, list[dict[str, Any]]] = {}  # INPUT file name -> objects
    work = WorkList([])
    for obj in named:
        path, why = lookup.find(obj["image"])
        if path is None:
            if (obj["image"], why) not in work.errors:
                work.errors.append((obj["image"], why))
        else:
            prompts.setdefault(names[str(path)], []).append(obj)
    for file_name, objs in sorted(prompts.items(), key=lambda pair: ids[pair[0]]):
        work.items.append(
            WorkItem(
                shard_key(file_name), str(paths[file_name]), file_name, ids[file_name], tuple(objs)
            )
        )
    return work
