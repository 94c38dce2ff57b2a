"""Evaluation datasets: images with one ground-truth mask per object instance.

Three layouts are read (:func:`open_dataset`):

``interactive``
    The layout of the click-based benchmarks as distributed with RITM: an image folder and a
    mask folder side by side. Recognised pairs: ``data_GT``/``boundary_GT`` (GrabCut),
    ``images``/``masks`` (Berkeley), ``img``/``gt`` (DAVIS, COCO-MVal). A mask belongs to
    the image with the same stem, or, when none has it, to the image whose stem is the
    mask's stem minus one trailing letter (Berkeley's ``189011a.png``/``189011b.png`` are two
    instances of ``189011.jpg``). The object is every pixel whose largest channel value is
    above 0; in ``boundary_GT`` masks (GrabCut) the value 128 marks an unlabeled band
    around the object that is *ignored*: it counts neither as object nor background, in IoU
    and in click placement, and the object is ``value > 128``.
``coco``
    A COCO instances JSON (polygons or RLE, read with pycocotools) and its image folder.
    Crowd annotations (``iscrowd=1``) are not samples; they are reported as skipped.
``folder``
    ``PATH/images/NAME.ext`` with ``PATH/masks/NAME.png``; the object is every non-zero
    pixel.

Bad or inconsistent data (missing or unreadable image, unreadable mask, a mask whose size
differs from its image, an empty mask) is reported per sample as a :class:`Skipped`, never
evaluated and never silently dropped.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

import numpy as np

from ..errors import SamedgeError, require_extra
from ..imageio import IMAGE_SUFFIXES
from ..maskutils import colour_max

if TYPE_CHECKING:
    from pycocotools import _EncodedRLE  # types-pycocotools' name of a compressed RLE

DatasetFormat = Literal["interactive", "coco", "folder"]
FORMATS: tuple[str, ...] = ("interactive", "coco", "folder")


#: (image folder, mask folder, ignore value) of the interactive layouts, in lookup order.
INTERACTIVE_LAYOUTS: tuple[tuple[str, str, int | None], ...] = (
    ("data_GT", "boundary_GT", 128),
    ("images", "masks", None),
    ("img", "gt", None),
)


class DatasetError(SamedgeError):
    """A dataset path or layout cannot be read at all (per-sample problems are skipped)."""


@dataclass(frozen=True)
class Instance:
    """One ground-truth object of an image: the unit that is evaluated.

    Attributes:
        sample_id: unique name, ``"<image id>"`` or ``"<image id>#<instance>"``.
        mask: bool ``(H, W)`` object pixels at the image's resolution.
        ignore: bool ``(H, W)`` pixels excluded from IoU and click placement, or ``None``.
    """

    sample_id: str
    mask: np.ndarray
    ignore: np.ndarray | None = None

    @property
    def area(self) -> int:
        """Object pixels (outside the ignore region)."""
        return int(np.count_nonzero(self.mask))


@dataclass(frozen=True)
class Skipped:
    """A sample that was not evaluated, and why (one line)."""

    sample_id: str
    reason: str


@dataclass(frozen=True)
class ImageSample:
    """An image and the instances that passed validation.

    Attributes:
        image_id: the image's name within the dataset.
        path: the image file.
        image: uint8 ``(H, W, 3)`` RGB, or ``None`` when the image could not be read (then
            every instance is in ``skipped``).
        instances: valid instances.
        skipped: instances of this image that were rejected, with reasons.
    """

    image_id: str
    path: Path
    image: np.ndarray | None
    instances: tuple[Instance, ...]
    skipped: tuple[Skipped, ...]


@dataclass(frozen=True)
class _Entry:
    image_id: str
    path: Path
    masks: tuple[tuple[str, object], ...]  # (sample id, source: mask path or COCO annotation)
    skipped: tuple[Skipped, ...] = ()  # known bad up front (COCO crowd annotations)


@dataclass
class Dataset:
    """A dataset opened by :func:`open_dataset`; images are read one at a time.

    Attributes:
        name: display name (the folder or JSON file name).
        format: ``"interactive"``, ``"coco"`` or ``"folder"``.
        root: the path it was opened from.
        unmatched: samples found without a partner (a mask with no image), skipped up front.
    """

    name: str
    format: str
    root: Path
    entries: list[_Entry]
    unmatched: list[Skipped] = field(default_factory=list)
    ignore_value: int | None = None
    _coco: object | None = None

    @property
    def num_samples(self) -> int:
        """Instances listed (before per-sample validation), unmatched ones excluded."""
        return sum(len(e.masks) for e in self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self) -> Iterator[ImageSample]:
        for entry in self.entries:
            yield self.load(entry)

    def load(self, entry: _Entry) -> ImageSample:
        """Read one image and validate its instances."""
        from ..imageio import load_image

        try:
            if not entry.path.is_file():
                raise FileNotFoundError
            image = load_image(entry.path)
        except (FileNotFoundError, SamedgeError, OSError) as exc:
            reason = (
                f"image {entry.path} not found"
                if isinstance(exc, FileNotFoundError)
                else f"image {entry.path} unreadable: {exc}"
            )
            skipped = entry.skipped + tuple(Skipped(sid, reason) for sid, _ in entry.masks)
            return ImageSample(entry.image_id, entry.path, None, (), skipped)
        instances: list[Instance] = []
        skipped_list: list[Skipped] = list(entry.skipped)
        for sample_id, source in entry.masks:
            try:
                mask, ignore = self._read_mask(source, image.shape[:2])
            except _BadSample as exc:
                skipped_list.append(Skipped(sample_id, str(exc)))
                continue
            instances.append(Instance(sample_id, mask, ignore))
        return ImageSample(entry.image_id, entry.path, image, tuple(instances), tuple(skipped_list))

    def _read_mask(
        self, source: object, shape: tuple[int, int]
    ) -> tuple[np.ndarray, np.ndarray | None]:
        if self.format == "coco":
            mask = _coco_mask(self._coco, source, shape)
            ignore = None
        else:
            values = _read_mask_values(Path(str(source)))
            if values.shape != shape:
                raise _BadSample(_size_reason(Path(str(source)).name, values.shape, shape))
            if self.ignore_value is not None:
                ignore = values == self.ignore_value
                mask = values > self.ignore_value
                ignore = ignore if ignore.any() else None
            else:
                mask, ignore = values > 0, None
        if not mask.any():
            raise _BadSample("empty mask (no object pixels)")
        return mask, ignore


class _BadSample(Exception):
    pass


def _size_reason(name: str, got: tuple[int, ...], want: tuple[int, int]) -> str:
    text = f"mask {name} is {got[1]}x{got[0]} but its image is {want[1]}x{want[0]}"
    if tuple(got) == (want[1], want[0]):
        text += " (the mask is stored rotated 90 degrees relative to its image)"
    return text


def _read_mask_values(path: Path) -> np.ndarray:
    """``(H, W)`` uint8 mask values: the largest colour channel of a colour mask (alpha
    ignored, as ``samedge track --mask`` reads masks)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img.load()
            values = np.asarray(img.convert("RGB") if img.mode == "P" else img)
    except (OSError, UnidentifiedImageError) as exc:
        raise _BadSample(f"mask {path} unreadable: {exc}") from None
    values = colour_max(values)
    if values.dtype == np.bool_:
        values = values.astype(np.uint8) * 255
    if values.dtype != np.uint8:
        values = np.clip(values, 0, 255).astype(np.uint8)
    return values


def _coco_mask(coco: object, source: object, shape: tuple[int, int]) -> np.ndarray:
    from pycocotools import mask as mask_utils

    # A COCO entry's source, as _open_coco makes it: (annotation, the JSON's (height, width)).
    ann, declared = cast("tuple[dict[str, Any], tuple[int | None, int | None]]", source)
    height, width = shape
    if declared != (None, None) and tuple(declared) != shape:
        raise _BadSample(
            f"the JSON says the image is {declared[1]}x{declared[0]} but it is {width}x{height}"
        )
    segm = ann.get("segmentation")
    try:
        if isinstance(segm, list):
            if not segm:
                raise _BadSample("annotation has no polygon")
            rle = mask_utils.merge(mask_utils.frPyObjects(segm, height, width))
        elif isinstance(segm, dict) and isinstance(segm.get("counts"), list):
            if tuple(segm["size"]) != shape:
                raise _BadSample(_size_reason("RLE", tuple(segm["size"]), shape))
            # types-pycocotools leaves out the uncompressed RLE (counts a list) that
            # frPyObjects takes (and compresses).
            rle = mask_utils.frPyObjects(segm, height, width)  # type: ignore[call-overload]
        elif isinstance(segm, dict):
            if tuple(segm["size"]) != shape:
                raise _BadSample(_size_reason("RLE", tuple(segm["size"]), shape))
            rle = cast("_EncodedRLE", segm)  # compressed: counts a string
        else:
            raise _BadSample("annotation has no segmentation")
        with warnings.catch_warnings():  # pycocotools' NumPy 2 copy=False deprecation
            warnings.simplefilter("ignore", DeprecationWarning)
            return mask_utils.decode(rle).astype(bool)
    except (ValueError, TypeError, KeyError) as exc:
        raise _BadSample(f"annotation's segmentation is malformed: {exc}") from None


def _images_by_stem(folder: Path) -> dict[str, Path]:
    return {
        p.stem: p
        for p in sorted(folder.iterdir())
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
    }


def _open_interactive(root: Path) -> Dataset:
    layout = next(
        (x for x in INTERACTIVE_LAYOUTS if (root / x[0]).is_dir() and (root / x[1]).is_dir()),
        None,
    )
    if layout is None:
        pairs = ", ".join(f"{i}/+{m}/" for i, m, _ in INTERACTIVE_LAYOUTS)
        raise DatasetError(
            f"{root} is not an interactive-benchmark folder: expected one of {pairs}"
        )
    image_dir, mask_dir, ignore_value = layout
    images = _images_by_stem(root / image_dir)
    grouped: dict[str, list[tuple[str, object]]] = {}
    unmatched: list[Skipped] = []
    for mask_path in sorted((root / mask_dir).iterdir()):
        if not mask_path.is_file() or mask_path.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        stem = mask_path.stem
        if stem in images:
            image_stem = stem
        elif len(stem) > 1 and stem[-1].isalpha() and stem[:-1] in images:
            image_stem = stem[:-1]
        else:
            unmatched.append(Skipped(stem, f"no image for mask {mask_path.name}"))
            continue
        grouped.setdefault(image_stem, []).append((stem, mask_path))
    entries = [_Entry(stem, images[stem], tuple(masks)) for stem, masks in sorted(grouped.items())]
    for stem in sorted(set(images) - set(grouped)):
        unmatched.append(Skipped(stem, f"no mask for image {images[stem].name}"))
    return Dataset(root.name, "interactive", root, entries, unmatched, ignore_value)


def _open_folder(root: Path) -> Dataset:
    if not (root / "images").is_dir() or not (root / "masks").is_dir():
        raise DatasetError(f"{root} must hold images/ and masks/ (masks named like the images)")
    images = _images_by_stem(root / "images")
    masks = {p.stem: p for p in sorted((root / "masks").glob("*.png"))}
    entries = [_Entry(s, images[s], ((s, masks[s]),)) for s in sorted(images) if s in masks]
    unmatched = [Skipped(s, f"no mask masks/{s}.png") for s in sorted(set(images) - set(masks))]
    unmatched += [
        Skipped(s, f"no image for mask {masks[s].name}") for s in sorted(set(masks) - set(images))
    ]
    return Dataset(root.name, "folder", root, entries, unmatched)


def _guess_coco_images(json_path: Path) -> Path | None:
    # annotations/instances_val2017.json -> ../val2017 (the official COCO layout)
    split = json_path.stem.split("_", 1)[-1]
    for candidate in (json_path.parent.parent / split, json_path.parent / split):
        if candidate.is_dir():
            return candidate
    return None


def _open_coco(json_path: Path, images_dir: Path | None) -> Dataset:
    require_extra("pycocotools", "eval", "COCO-format evaluation")
    from pycocotools.coco import COCO

    if not json_path.is_file():
        raise DatasetError(f"COCO dataset must be an instances JSON file, got {json_path}")
    images_dir = images_dir or _guess_coco_images(json_path)
    if images_dir is None or not images_dir.is_dir():
        raise DatasetError(
            f"cannot find the image folder of {json_path.name}; pass it with --images DIR"
        )
    try:
        with open(os.devnull, "w") as devnull:
            import contextlib

            with contextlib.redirect_stdout(devnull):  # pycocotools prints progress
                coco = COCO(str(json_path))
    except (json.JSONDecodeError, KeyError, TypeError, AssertionError) as exc:
        raise DatasetError(f"{json_path} is not a COCO instances file ({exc})") from None
    entries: list[_Entry] = []
    unmatched: list[Skipped] = []
    for image_id in sorted(coco.getImgIds()):
        info = coco.imgs[image_id]
        anns = coco.loadAnns(coco.getAnnIds(imgIds=[image_id], iscrowd=None))
        masks: list[tuple[str, object]] = []
        crowd: list[Skipped] = []
        for ann in sorted(anns, key=lambda a: a["id"]):
            sample_id = f"{image_id}#{ann['id']}"
            if ann.get("iscrowd", 0):
                crowd.append(Skipped(sample_id, "crowd annotation (iscrowd=1)"))
            else:
                masks.append((sample_id, (ann, (info.get("height"), info.get("width")))))
        if masks:
            path = images_dir / info["file_name"]
            entries.append(_Entry(str(image_id), path, tuple(masks), tuple(crowd)))
        else:
            unmatched.extend(crowd)  # an image of crowds only: reported, not dropped
    dataset = Dataset(json_path.name, "coco", json_path, entries, unmatched)
    dataset._coco = coco
    return dataset


#: What a dataset of each format must hold to have a sample (the no-sample error's hint).
_SAMPLE_HINT = {
    "interactive": "no image has a mask beside it",
    "coco": "no image has a non-crowd annotation",
    "folder": "no images/NAME.ext has its masks/NAME.png",
}


def no_usable_sample(
    dataset: Dataset, skipped: list[Skipped], limit: int | None = None, shown: int = 3
) -> DatasetError:
    """The one-line error of a dataset (or its first ``limit`` samples) that left nothing to
    evaluate: every sample was ``skipped`` (the first ``shown`` reasons are named), or there
    was none."""
    head = f"{dataset.root} holds no usable sample"
    if limit is not None and limit < dataset.num_samples:
        head += f" among its first {limit}"
    if not skipped:
        return DatasetError(f"{head}: {_SAMPLE_HINT[dataset.format]}")
    reasons = "; ".join(f"{s.sample_id}: {' '.join(s.reason.split())}" for s in skipped[:shown])
    more = f"; and {len(skipped) - shown} more" if len(skipped) > shown else ""
    return DatasetError(f"{head}; fix the {len(skipped)} skipped: {reasons}{more}")


def open_dataset(
    path: str | os.PathLike[str], format: str, images: str | os.PathLike[str] | None = None
) -> Dataset:
    """Open a dataset for evaluation.

    Args:
        path: the dataset folder (``interactive``, ``folder``) or instances JSON (``coco``).
        format: one of :data:`FORMATS`.
        images: the image folder of a COCO JSON (default: guessed from the official layout).

    Raises:
        DatasetError: the path or its layout cannot be read.
    """
    root = Path(path)
    if format not in FORMATS:
        raise DatasetError(f"unknown dataset format '{format}'; use one of {', '.join(FORMATS)}")
    if not root.exists():
        raise DatasetError(f"dataset not found: {root}")
    if format == "coco":
        return _open_coco(root, Path(images) if images else None)
    if not root.is_dir():
        raise DatasetError(f"a {format} dataset is a folder, got the file {root}")
    return _open_interactive(root) if format == "interactive" else _open_folder(root)
