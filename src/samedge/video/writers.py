"""Writing the results of a tracking run: masks, videos to watch and composite, a JSON.

:class:`TrackWriter` builds everything in a temporary folder beside the destination and
renames it into place only when every file is written, so an interrupted or failed run
leaves nothing half-written (the same rule as :mod:`samedge.outputs`). Layout of ``OUT``::

    track.json               source, prompts, per frame: object scores, COCO RLE, timings
    overlay.mp4              the video with each object tinted in its colour (MPEG-4)
    masks/obj<ID>/NNNNN.png  per object, one 0/255 mask per tracked frame (frame index)
    matte/obj<ID>.mov        with alpha="matte": per object a lossless grey matte video
                             (white = object; PNG codec in QuickTime, for compositing)
    rgba/obj<ID>/NNNNN.png   with alpha="rgba": per object the frame with the mask as alpha

Frame results may arrive in any order and more than once (``--both`` tracks backward, then
forward over the prompted frames again): the last result of a frame wins. Videos are drawn
in frame order at the end, from the masks already written, so memory stays flat however
long the video.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import cv2
import numpy as np

from ..errors import SamedgeError
from ..maskutils import mask_area, mask_to_box, rle_encode
from ..outputs import encode_png, publish_mode
from ..visualize import color_for, overlay
from .types import FrameResult, FrameSource

#: The file that marks a folder as a ``samedge track`` output (which a rerun may replace).
TRACK_JSON = "track.json"
OVERLAY = "overlay.mp4"
ALPHA_MODES = ("matte", "rgba")
#: Frame rate written for a source that does not know its own (a frame folder).
DEFAULT_FPS = 24.0


def frame_name(index: int) -> str:
    return f"{index:05d}.png"


def check_output_folder(out: str | os.PathLike[str]) -> Path:
    """``out`` if a run may write there: absent, an empty folder, or an earlier
    ``samedge track`` output (it holds ``track.json``; it is replaced once the new run is
    complete). Anything else is one :class:`SamedgeError` line, raised before any work."""
    path = Path(out)
    if path.exists() or path.is_symlink():
        if not path.is_dir():
            raise SamedgeError(f"--out {path} is a file; give a folder")
        if any(path.iterdir()) and not (path / TRACK_JSON).is_file():
            raise SamedgeError(
                f"--out {path} is a folder with other files in it (no {TRACK_JSON}): give a "
                f"new or empty folder, so nothing of yours is replaced"
            )
    parent = path.absolute().parent
    if parent.exists() and not os.access(parent, os.W_OK):
        raise SamedgeError(f"cannot write into {parent}: permission denied")
    return path


def _ms(seconds: Mapping[str, float]) -> dict[str, float]:
    return {k: round(1000 * float(v), 2) for k, v in seconds.items()}


class TrackWriter:
    """The files of one tracking run (see the module docstring), committed atomically.

    Use as a context manager: the folder appears at ``out`` when the block ends normally
    (after :meth:`finish`), and nothing is left behind when it raises.

    Args:
        out: destination folder (checked with :func:`check_output_folder`).
        source: the frames the results belong to (re-read to draw the videos).
        object_ids: the tracked objects; object ``k`` has colour ``color_for(k - 1)``, as
            in the web UI's Video tab, whichever objects are left out.
        header: fields written at the top of ``track.json`` (model, source, prompts...).
        alpha: ``None``, ``"matte"`` or ``"rgba"`` (see the module docstring).
        overlay_video: write ``overlay.mp4``.
        marks: per frame, ``(points (N, 2), labels (N,))`` drawn on the overlay (prompts).
    """

    def __init__(
        self,
        out: str | os.PathLike[str],
        source: FrameSource,
        object_ids: Sequence[int],
        header: Mapping[str, Any] | None = None,
        *,
        alpha: str | None = None,
        overlay_video: bool = True,
        marks: Mapping[int, tuple[np.ndarray, np.ndarray]] | None = None,
    ) -> None:
        if alpha is not None and alpha not in ALPHA_MODES:
            raise ValueError(f"alpha must be one of {ALPHA_MODES} or None, got {alpha!r}")
        self.out = check_output_folder(out)
        self.source = source
        self.object_ids = tuple(sorted(int(i) for i in object_ids))
        self.header = dict(header or {})
        self.alpha = alpha
        self.overlay_video = overlay_video
        self.marks = dict(marks or {})
        parent = self.out.absolute().parent
        try:
            parent.mkdir(parents=True, exist_ok=True)
            self.tmp = Path(
                tempfile.mkdtemp(prefix=f".{self.out.name}.", suffix=".tmp", dir=parent)
            )
        except OSError as exc:
            raise SamedgeError(f"cannot write {self.out}: {exc.strerror or exc}") from None
        self._records_path = self.tmp / ".frames.jsonl"
        self._records = open(self._records_path, "w+b")  # noqa: SIM115 (closed in finish/abort)
        self._offsets: dict[int, tuple[int, int]] = {}
        self._present: dict[int, int] = dict.fromkeys(self.object_ids, 0)
        self._stage_totals: dict[str, float] = {}
        self._started = time.perf_counter()
        for obj in self.object_ids:
            (self.tmp / "masks" / f"obj{obj}").mkdir(parents=True)
            if alpha == "rgba":
                (self.tmp / "rgba" / f"obj{obj}").mkdir(parents=True)
        self.finished = False

    # -- per frame -------------------------------------------------------------------------

    def add(self, result: FrameResult, frame: np.ndarray | None = None) -> None:
        """Write one frame's masks and record its scores (``frame``: the RGB frame, only
        needed for ``alpha="rgba"``; read from the source when not given)."""
        index = int(result.frame_index)
        width, height = self.source.size
        scores = np.asarray(result.object_scores, dtype=np.float32).reshape(-1)
        objects = []
        rgb = None
        for obj in self.object_ids:
            if obj in result.object_ids:
                k = result.object_ids.index(obj)
                mask = np.asarray(result.masks[k], dtype=bool)
                score = float(scores[k])
            else:  # not (yet) tracked on this frame
                mask = np.zeros((height, width), dtype=bool)
                score = None
            if mask.shape != (height, width):
                raise SamedgeError(
                    f"frame {index}: mask of object {obj} is {mask.shape[1]}x{mask.shape[0]}, "
                    f"the frames are {width}x{height}"
                )
            self._write(self.tmp / "masks" / f"obj{obj}" / frame_name(index), encode_png(mask))
            if self.alpha == "rgba":
                if rgb is None:
                    rgb = self.source[index] if frame is None else frame
                rgba = np.dstack([rgb, mask.astype(np.uint8) * 255])
                ok, buf = cv2.imencode(".png", cv2.cvtColor(rgba, cv2.COLOR_RGBA2BGRA))
                if not ok:
                    raise SamedgeError(f"could not encode the RGBA frame {index}")
                self._write(self.tmp / "rgba" / f"obj{obj}" / frame_name(index), buf.tobytes())
            objects.append(
                {
                    "id": obj,
                    "score": None if score is None else round(score, 5),
                    "present": score is not None and score > 0,
                    "area": mask_area(mask),
                    "bbox": list(mask_to_box(mask)),
                    "segmentation": rle_encode(mask),
                }
            )
        record = {"frame": index, "objects": objects, "timings_ms": _ms(result.timings)}
        line = json.dumps(record, separators=(",", ":")).encode()
        self._records.seek(0, os.SEEK_END)
        offset = self._records.tell()
        self._records.write(line)
        previous = self._offsets.get(index)
        if previous is not None:  # seen before: replace its counts
            self._count(self._read_record(*previous), -1)
        self._offsets[index] = (offset, len(line))
        self._count(record, +1)

    def _count(self, record: dict[str, Any], sign: int) -> None:
        for o in record["objects"]:
            if o["present"]:
                self._present[o["id"]] += sign
        for stage, ms in record["timings_ms"].items():
            self._stage_totals[stage] = self._stage_totals.get(stage, 0.0) + sign * ms

    def _read_record(self, offset: int, length: int) -> dict[str, Any]:
        self._records.seek(offset)
        return json.loads(self._records.read(length))

    def _write(self, path: Path, data: bytes) -> None:
        try:
            path.write_bytes(data)
        except OSError as exc:
            raise SamedgeError(f"cannot write {self.out}: {exc.strerror or exc}") from None

    # -- at the end ------------------------------------------------------------------------

    @property
    def frames(self) -> list[int]:
        """Indices of the frames written so far, in order."""
        return sorted(self._offsets)

    def summary(self) -> dict[str, Any]:
        frames = len(self._offsets)
        return {
            "frames": frames,
            "first_frame": min(self._offsets) if frames else None,
            "last_frame": max(self._offsets) if frames else None,
            "objects": list(self.object_ids),
            "frames_present": {str(k): v for k, v in self._present.items()},
            "ms_per_frame": {
                k: round(v / frames, 2) for k, v in self._stage_totals.items() if frames
            },
        }

    def finish(
        self,
        extra_summary: Mapping[str, Any] | None = None,
        progress: Callable[[int], object] | None = None,
    ) -> dict[str, Any]:
        """Draw the videos, write ``track.json`` and move the folder into place.

        Args:
            extra_summary: more fields for the JSON's ``summary`` (e.g. wall time).
            progress: called with 1 after each frame drawn.

        Returns:
            The summary written to the JSON, with ``files`` (relative paths).
        """
        if not self._offsets:
            raise SamedgeError("no frame was tracked: nothing to write")
        files = self._draw_videos(progress)
        summary = {**self.summary(), **dict(extra_summary or {})}
        files["masks"] = {str(o): f"masks/obj{o}" for o in self.object_ids}
        if self.alpha == "rgba":
            files["rgba"] = {str(o): f"rgba/obj{o}" for o in self.object_ids}
        self._write_json(files, summary)
        self._records.close()
        self._records_path.unlink()
        self._commit()
        self.finished = True
        return {**summary, "files": files}

    def _draw_videos(self, progress: Callable[[int], object] | None) -> dict[str, Any]:
        files: dict[str, Any] = {}
        if not self.overlay_video and self.alpha != "matte":
            return files
        width, height = self.source.size
        fps = self.source.fps or DEFAULT_FPS
        writers: list[tuple[cv2.VideoWriter, int | None]] = []

        def open_writer(path: Path, fourcc: str, color: bool) -> cv2.VideoWriter:
            writer = cv2.VideoWriter(
                str(path), cv2.VideoWriter.fourcc(*fourcc), fps, (width, height), isColor=color
            )
            if not writer.isOpened():
                raise SamedgeError(f"OpenCV cannot write {path.name} ({fourcc} codec)")
            return writer

        try:
            if self.overlay_video:
                writers.append((open_writer(self.tmp / OVERLAY, "mp4v", True), None))
                files["overlay"] = OVERLAY
            if self.alpha == "matte":
                (self.tmp / "matte").mkdir()
                for obj in self.object_ids:
                    path = self.tmp / "matte" / f"obj{obj}.mov"
                    writers.append((open_writer(path, "png ", False), obj))
                files["matte"] = {str(o): f"matte/obj{o}.mov" for o in self.object_ids}
            colors = [color_for(obj - 1) for obj in self.object_ids]
            for index in range(min(self._offsets), max(self._offsets) + 1):
                masks = [self._mask(obj, index) for obj in self.object_ids]
                for writer, matte_obj in writers:
                    if matte_obj is None:
                        points, labels = self.marks.get(index, (None, None))
                        picture = overlay(
                            self.source[index], masks, points=points, labels=labels, colors=colors
                        )
                        writer.write(np.ascontiguousarray(picture[:, :, ::-1]))
                    else:
                        k = self.object_ids.index(matte_obj)
                        writer.write(masks[k].astype(np.uint8) * 255)
                if progress is not None:
                    progress(1)
        finally:
            for writer, _ in writers:
                writer.release()
        return files

    def _mask(self, obj: int, index: int) -> np.ndarray:
        width, height = self.source.size
        if index not in self._offsets:  # a gap (cannot happen with one propagation)
            return np.zeros((height, width), dtype=bool)
        path = self.tmp / "masks" / f"obj{obj}" / frame_name(index)
        data = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        if data is None:
            raise SamedgeError(f"cannot read back {path.name} of object {obj}")
        return data > 127

    def _write_json(self, files: Mapping[str, Any], summary: Mapping[str, Any]) -> None:
        header = {
            **self.header,
            "objects": list(self.object_ids),
            "colors": {str(o): list(color_for(o - 1)) for o in self.object_ids},
            "files": dict(files),
        }
        with open(self.tmp / TRACK_JSON, "wb") as fh:
            fh.write(b"{\n")
            for key, value in header.items():
                fh.write(f"  {json.dumps(key)}: {json.dumps(value)},\n".encode())
            fh.write(b'  "frames": [\n')
            for n, index in enumerate(self.frames):
                offset, length = self._offsets[index]
                self._records.seek(offset)
                fh.write(b"    " + self._records.read(length))
                fh.write(b",\n" if n + 1 < len(self._offsets) else b"\n")
            fh.write(b"  ],\n")
            fh.write(f'  "summary": {json.dumps(summary)}\n}}\n'.encode())

    def _commit(self) -> None:
        publish_mode(self.tmp)
        old = None
        if self.out.exists():
            old = Path(
                tempfile.mkdtemp(prefix=f".{self.out.name}.", suffix=".old", dir=self.tmp.parent)
            )
            os.replace(self.out, old / "previous")
        try:
            os.replace(self.tmp, self.out)
        except OSError as exc:
            if old is not None:  # put the previous output back
                os.replace(old / "previous", self.out)
                shutil.rmtree(old, ignore_errors=True)
            raise SamedgeError(f"cannot write {self.out}: {exc.strerror or exc}") from None
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)

    def abort(self) -> None:
        """Remove everything written so far (the destination is left as it was)."""
        if not self._records.closed:
            self._records.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self) -> TrackWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is not None or not self.finished:
            self.abort()
