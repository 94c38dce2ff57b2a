"""Automatic mask generation ("segment everything") on the ONNX decoder, torch-free.

:class:`MaskGenerator` reproduces ``SamAutomaticMaskGenerator`` (SAM) and
``SAM2AutomaticMaskGenerator`` (SAM 2) with the same parameters and defaults:

1. for every crop box (the whole image, plus ``crop_n_layers`` layers of smaller crops) the
   crop is encoded once and a grid of single-point prompts goes through the decoder in
   batches of ``points_per_batch``;
2. each point gives three masks (one with ``multimask_output=False``); SAM 2 may refine
   them once with their own low-resolution logits (``use_m2m``);
3. masks are kept when their predicted IoU is above ``pred_iou_thresh`` and their stability
   score (IoU of the masks thresholded at ``mask_threshold +- stability_score_offset`` on
   the upscaled logits, as the official code computes it) reaches ``stability_score_thresh``,
   and when their box does not touch an inner crop edge; a mask whose logits are all at or
   below ``mask_threshold - stability_score_offset`` (an empty union) scores 0, where the
   official code divides 0 by 0 and gives NaN, which no JSON file can hold;
4. box NMS removes duplicates in each crop (by predicted IoU) and between crops (smaller
   crops win); SAM then removes small holes and islands, SAM 2 fills them in the
   low-resolution logits.

Where it differs from the official code, only in the work it does, never in the result:
the predicted-IoU filter runs on the decoder's scores before any upscaling, and with the
split decoder (``split_decoder``) even before the decoder draws a point's masks; only
survivors are upscaled (one at a time, with OpenCV), survivors are kept as their
256 x 256 logits, and full-resolution masks and RLEs are made only for the final masks.

``fast=True`` does less work: a coarse sub-grid (every ``fast_stride``-th point in both
directions) runs first; the remaining grid points are decoded only where no mask kept so
far covers them. It returns a subset of the points' masks; the benchmark reports how many
of the exact masks it recovers.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ..errors import SamedgeError
from ..imageio import ImageLike, load_image
from ..maskutils import rle_encode
from ..runtime.postprocess import select_masks, upscale_logits, upscale_masks
from ..runtime.prompts import normalize_prompts
from ..runtime.types import ImageEmbedding
from .grid import box_nms, crop_boxes, mask_boxes, near_crop_edge, point_grid
from .regions import fill_low_res, remove_small_regions
from .settings import OUTPUT_MODES, AmgSettings

log = logging.getLogger(__name__)

#: With ``split_decoder=None``, the split decoder is dropped for the rest of an image once
#: more than this share of its points have needed their masks. Measured on SAM 2.1 tiny,
#: 2 threads, 1024 points: split decoder 7.2 s with no point's masks drawn and 12.0 s with
#: half of them, ``decoder.onnx`` 13.7-15.4 s either way; drawing every mask through the
#: two graphs costs ~12 % more than the one (16.4 vs 14.6 ms per point, two
#: single-threaded sessions side by side), so it stops paying near four points in five.
SPLIT_MAX_SHARE = 0.75


@dataclass
class AmgStats:
    """Counts and timings (seconds) of one :meth:`MaskGenerator.generate_masks` run,
    accumulated as it goes.

    Attributes:
        crops: crop boxes processed (the whole image is one).
        prompts: point prompts decoded (``use_m2m`` refinements count again).
        decoder_calls: decoder runs (one per batch of prompts).
        candidates: masks the decoder returned, before any filter.
        upscaled: masks that passed the predicted-IoU filter and were upscaled.
        split_prompts: prompts that went through the split decoder.
        drawn: prompts whose masks the decoder drew (all but the split decoder's rejects).
        skipped_points: grid points ``fast`` did not decode (already covered by a mask).
        encode_s, decode_s, post_s: encoder, decoder and host post-processing time.
    """

    crops: int = 0
    prompts: int = 0
    decoder_calls: int = 0
    candidates: int = 0
    upscaled: int = 0
    split_prompts: int = 0
    drawn: int = 0
    skipped_points: int = 0
    encode_s: float = 0.0
    decode_s: float = 0.0
    post_s: float = 0.0

    def to_dict(self, masks: int, total_s: float) -> dict[str, Any]:
        """The fields, plus the final mask count and the run's wall time (seconds)."""
        return {**asdict(self), "masks": masks, "total_s": total_s}


@dataclass(frozen=True, eq=False)
class GeneratedMasks:
    """Every mask found in one image, in the official generator's order.

    Attributes:
        image_size: ``(H, W)`` of the image.
        masks: bool ``(N, H, W)`` final masks at full resolution.
        boxes: int64 ``(N, 4)`` XYXY boxes, ``x1``/``y1`` the last column/row of the mask
            (the official convention; empty masks get zeros).
        predicted_iou: float32 ``(N,)`` the decoder's IoU prediction.
        stability_score: float32 ``(N,)`` in [0, 1] (0 for an empty union).
        point_coords: float64 ``(N, 2)`` XY pixels of the prompt point of each mask.
        crop_boxes: int64 ``(N, 4)`` XYXY (exclusive end) crop each mask was found in.
        stats: counts and timings (seconds) of the run: :class:`AmgStats`'s fields, plus
            ``masks`` (the final count) and ``total_s``.
    """

    image_size: tuple[int, int]
    masks: np.ndarray
    boxes: np.ndarray
    predicted_iou: np.ndarray
    stability_score: np.ndarray
    point_coords: np.ndarray
    crop_boxes: np.ndarray
    stats: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.masks.shape[0])

    @property
    def areas(self) -> np.ndarray:
        """int64 ``(N,)`` mask areas in pixels."""
        return np.count_nonzero(self.masks, axis=(1, 2)).astype(np.int64)

    def records(self, output_mode: str = "binary_mask") -> list[dict[str, Any]]:
        """The official generators' list of dicts, one per mask.

        Keys: ``segmentation`` (per ``output_mode``: bool ``H x W`` array, uncompressed RLE
        ``{"size", "counts": [int]}``, COCO compressed RLE ``{"size", "counts": str}`` or
        polygons ``[[x0, y0, x1, y1, ...], ...]``), ``area``, ``bbox`` (XYWH with
        ``W = x1 - x0``, the official convention), ``predicted_iou``, ``point_coords``
        (``[[x, y]]``), ``stability_score``, ``crop_box`` (XYWH).
        """
        if output_mode not in OUTPUT_MODES:
            raise SamedgeError(
                f"unknown output mode '{output_mode}'; use one of {', '.join(OUTPUT_MODES)}"
            )
        out = []
        for i, area in enumerate(self.areas.tolist()):
            mask = self.masks[i]
            x0, y0, x1, y1 = (int(v) for v in self.boxes[i])
            cx0, cy0, cx1, cy1 = (int(v) for v in self.crop_boxes[i])
            out.append(
                {
                    "segmentation": encode_mask(mask, output_mode),
                    "area": int(area),
                    "bbox": [x0, y0, x1 - x0, y1 - y0],
                    "predicted_iou": float(self.predicted_iou[i]),
                    "point_coords": [[float(v) for v in self.point_coords[i]]],
                    "stability_score": float(self.stability_score[i]),
                    "crop_box": [cx0, cy0, cx1 - cx0, cy1 - cy0],
                }
            )
        return out


def encode_mask(mask: np.ndarray, output_mode: str) -> Any:
    """One bool ``H x W`` mask in an output mode (see :meth:`GeneratedMasks.records`)."""
    if output_mode == "binary_mask":
        return mask
    if output_mode == "coco_rle":
        return rle_encode(mask)
    if output_mode == "uncompressed_rle":
        flat = mask.ravel(order="F")
        change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
        runs = np.diff(np.concatenate(([0], change, [flat.size]))).tolist()
        return {
            "size": [int(mask.shape[0]), int(mask.shape[1])],
            "counts": [0, *runs] if flat[0] else runs,
        }
    if output_mode == "polygons":
        import cv2

        contours, _ = cv2.findContours(
            mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE
        )
        return [c.reshape(-1).astype(float).tolist() for c in contours if len(c) >= 3]
    raise SamedgeError(f"unknown output mode '{output_mode}'; use one of {', '.join(OUTPUT_MODES)}")


@dataclass
class _Candidates:
    """Masks that passed the per-batch filters in one crop (low-res logits kept)."""

    logits: list[np.ndarray] = field(default_factory=list)  # (256, 256) float32 each
    boxes: list[np.ndarray] = field(default_factory=list)  # (4,) XYXY, crop frame
    iou: list[float] = field(default_factory=list)
    stability: list[float] = field(default_factory=list)
    points: list[np.ndarray] = field(default_factory=list)  # (2,) crop frame

    def __len__(self) -> int:
        return len(self.iou)

    def nms(self, threshold: float) -> _Candidates:
        """The candidates that survive box NMS at ``threshold`` (highest predicted IoU first)."""
        keep = box_nms(np.array(self.boxes).reshape(-1, 4), np.array(self.iou), threshold)
        return self.take(keep)

    def take(self, keep: np.ndarray) -> _Candidates:
        idx = [int(i) for i in keep]
        return _Candidates(
            [self.logits[i] for i in idx],
            [self.boxes[i] for i in idx],
            [self.iou[i] for i in idx],
            [self.stability[i] for i in idx],
            [self.points[i] for i in idx],
        )

    def extend(self, other: _Candidates) -> None:
        self.logits += other.logits
        self.boxes += other.boxes
        self.iou += other.iou
        self.stability += other.stability
        self.points += other.points


class MaskGenerator:
    """Segment everything in an image with an exported SAM or SAM 2 model.

    >>> MaskGenerator("sam2.1_hiera_tiny", points_per_side=16).generate("photo.jpg")

    Args:
        model: a :class:`~samedge.runtime.predictor.Predictor`, or a registered name or
            exported folder to load one from (with ``providers`` and ``threads``).
        settings: what to do (see :class:`~samedge.amg.AmgSettings`); ``None``: the
            official defaults of the model's family (``AmgSettings.for_spec``).
        progress: show a progress bar over crops and batches.
        overrides: :class:`~samedge.amg.AmgSettings` fields changed from ``settings``
            (from the defaults when ``settings`` is ``None``; there an override of ``None``
            keeps the default).

    Raises:
        SamedgeError: an unknown setting or an invalid value.
    """

    def __init__(
        self,
        model: Any,
        settings: AmgSettings | None = None,
        *,
        progress: bool = False,
        providers: str | Sequence[str] | None = None,
        threads: int | None = None,
        **overrides: Any,
    ) -> None:
        from ..runtime.predictor import Predictor

        if isinstance(model, (str, os.PathLike)):
            model = Predictor.from_pretrained(model, providers=providers, threads=threads)
        self.predictor = model
        self.spec = model.spec
        if settings is None:
            settings = AmgSettings.for_spec(self.spec, **overrides)
        elif overrides:
            settings = settings.replace(**overrides)
        self.settings = settings
        self.progress = bool(progress)
        self._grids = settings.grids()

    # ------------------------------------------------------------------ public API

    def generate(self, image: ImageLike) -> list[dict[str, Any]]:
        """The official ``generate``: a list of mask records (see
        :meth:`GeneratedMasks.records`), with segmentations in ``settings.output_mode``."""
        return self.generate_masks(image).records(self.settings.output_mode)

    def generate_masks(
        self, image: ImageLike, embedding: ImageEmbedding | None = None
    ) -> GeneratedMasks:
        """All masks of ``image`` (path, PIL image or ``H x W x 3`` uint8 RGB array).

        Args:
            embedding: this predictor's :meth:`~samedge.Predictor.encode` of the same whole
                image, when the caller already has it (an interactive session): the
                whole-image crop then skips the encoder. Crops still encode themselves.
        """
        rgb = load_image(image)
        height, width = rgb.shape[:2]
        if embedding is not None and (
            embedding.model != self.spec.name or embedding.original_size != (height, width)
        ):
            raise SamedgeError(
                f"the embedding is of a {embedding.original_size[1]}x"
                f"{embedding.original_size[0]} image by {embedding.model}, not of this "
                f"{width}x{height} image by {self.spec.name}"
            )
        boxes, layers = crop_boxes(
            (height, width), self.settings.crop_n_layers, self.settings.crop_overlap_ratio
        )
        stats = AmgStats(crops=len(boxes))
        start = time.perf_counter()
        total_batches = sum(
            math.ceil(len(self._grids[layer]) / self.settings.points_per_batch) for layer in layers
        )
        bar = _progress(total_batches, self.progress)
        found: list[tuple[int, _Candidates, tuple[int, int]]] = []
        try:
            for index, (crop, layer) in enumerate(zip(boxes, layers, strict=True)):
                if bar is not None:
                    bar.set_description(f"crop {index + 1}/{len(boxes)}")
                whole = embedding if crop == (0, 0, width, height) else None
                cands, input_size = self._process_crop(rgb, crop, layer, stats, bar, whole)
                found.append((index, cands, input_size))
        finally:
            if bar is not None:
                bar.close()
        merged = self._merge(rgb.shape[:2], boxes, found, stats)
        return dataclasses.replace(
            merged, stats=stats.to_dict(len(merged), time.perf_counter() - start)
        )

    # ------------------------------------------------------------------ one crop

    def _process_crop(
        self,
        image: np.ndarray,
        crop: tuple[int, int, int, int],
        layer: int,
        stats: AmgStats,
        bar: Any,
        embedding: ImageEmbedding | None = None,
    ) -> tuple[_Candidates, tuple[int, int]]:
        x0, y0, x1, y1 = crop
        crop_size = (y1 - y0, x1 - x0)
        if embedding is None:
            t = time.perf_counter()
            embedding = self.predictor.encode(np.ascontiguousarray(image[y0:y1, x0:x1]))
            stats.encode_s += time.perf_counter() - t
        grid = self._grids[layer]
        points = grid * np.array([crop_size[1], crop_size[0]], dtype=np.float64)

        if not self.settings.fast or self.settings.fast_stride == 1:
            cands = self._run_points(embedding, points, crop, image.shape[:2], stats, bar)
            return cands.nms(self.settings.box_nms_thresh), embedding.input_size

        coarse = _coarse_indices(len(grid), self.settings.fast_stride)
        cands = self._run_points(embedding, points[coarse], crop, image.shape[:2], stats, bar)
        keep = box_nms(
            np.array(cands.boxes).reshape(-1, 4), np.array(cands.iou), self.settings.box_nms_thresh
        )
        rest = np.setdiff1d(np.arange(len(grid)), coarse)
        if len(keep) and len(rest):
            covered = np.zeros(len(rest), dtype=bool)
            px = np.clip(points[rest, 0].astype(np.int64), 0, crop_size[1] - 1)
            py = np.clip(points[rest, 1].astype(np.int64), 0, crop_size[0] - 1)
            for i in keep:
                mask = self._full_mask(cands.logits[i], embedding.input_size, crop_size)
                covered |= mask[py, px]
            rest = rest[~covered]
        stats.skipped_points += len(grid) - len(coarse) - len(rest)
        if bar is not None and len(grid) > len(coarse):
            # the progress bar counted batches for the whole grid
            done = math.ceil(len(coarse) / self.settings.points_per_batch)
            planned = math.ceil(len(grid) / self.settings.points_per_batch)
            bar.total -= planned - done - math.ceil(len(rest) / self.settings.points_per_batch)
            bar.refresh()
        more = self._run_points(embedding, points[rest], crop, image.shape[:2], stats, bar)
        cands.extend(more)
        return cands.nms(self.settings.box_nms_thresh), embedding.input_size

    def _run_points(
        self,
        embedding: Any,
        points: np.ndarray,
        crop: tuple[int, int, int, int],
        image_size: tuple[int, int],
        stats: AmgStats,
        bar: Any,
    ) -> _Candidates:
        """Decode ``points`` (crop pixels) in batches and keep the masks that pass the filters."""
        out = _Candidates()
        for start in range(0, len(points), self.settings.points_per_batch):
            batch = points[start : start + self.settings.points_per_batch]
            out.extend(self._process_batch(embedding, batch, crop, image_size, stats))
            if bar is not None:
                bar.update(1)
        return out

    def _decode(
        self,
        embedding: Any,
        points: np.ndarray,
        mask_input: np.ndarray | None,
        multimask: bool,
        stats: AmgStats,
    ) -> tuple[np.ndarray, np.ndarray]:
        prompts = normalize_prompts(
            self.spec,
            embedding.original_size,
            embedding.input_size,
            points=points[:, None, :],
            labels=np.ones((len(points), 1)),
            mask_input=mask_input,
        )
        t = time.perf_counter()
        if mask_input is None and self._split(multimask, stats):
            low_res, iou, _, drawn = self.predictor.graphs.decode_needed(
                embedding, prompts, lambda scores: self._needed(scores, multimask)
            )
            stats.split_prompts += len(points)
            stats.drawn += int(np.count_nonzero(drawn))
        else:
            low_res, iou, _ = self.predictor.graphs.decode(embedding, prompts)
            stats.drawn += len(points)
        stats.decode_s += time.perf_counter() - t
        stats.decoder_calls += 1
        stats.prompts += len(points)
        return select_masks(low_res, iou, self.spec, multimask)

    def _needed(self, scores: np.ndarray, multimask: bool) -> bool:
        """Whether a point with these ``(4,)`` predicted IoUs can give a kept mask."""
        chosen = scores[1:] if multimask else scores[:1]
        return bool(np.any(chosen > self.settings.pred_iou_thresh))

    def _split(self, multimask: bool, stats: AmgStats) -> bool:
        """Whether the next batch goes through the split decoder (see ``split_decoder``)."""
        if self.settings.split_decoder is False or not self.predictor.graphs.can_split:
            return False
        # Masks that are kept whatever their IoU, refined ones, and SAM 2's single-mask
        # choice (by stability) need every point's masks.
        if self.settings.pred_iou_thresh <= 0 or self.settings.use_m2m:
            return False
        if not multimask and self.spec.stability_delta is not None:
            return False
        if self.settings.split_decoder is None and stats.split_prompts > 0:
            return stats.drawn <= SPLIT_MAX_SHARE * stats.prompts
        return True

    def _process_batch(
        self,
        embedding: Any,
        points: np.ndarray,
        crop: tuple[int, int, int, int],
        image_size: tuple[int, int],
        stats: AmgStats,
    ) -> _Candidates:
        logits, scores = self._decode(
            embedding, points, None, self.settings.multimask_output, stats
        )
        t = time.perf_counter()
        # Logits stay (B, K, 256, 256) views of the decoder output: only the masks that
        # pass the predicted-IoU filter are ever copied or upscaled.
        per_point = logits.shape[1]
        scores = scores.reshape(-1)
        pts = np.repeat(points, per_point, axis=0)
        stats.candidates += len(scores)
        if self.settings.use_m2m:
            stats.post_s += time.perf_counter() - t
            refined, new_scores = [], []
            clamp = self.spec.low_res_clamp
            flat = logits.reshape(-1, *logits.shape[-2:])
            prev = flat if clamp is None else np.clip(flat, -clamp, clamp)
            for s in range(0, len(pts), self.settings.points_per_batch):
                lg, sc = self._decode(
                    embedding,
                    pts[s : s + self.settings.points_per_batch],
                    prev[s : s + self.settings.points_per_batch, None],
                    False,
                    stats,
                )
                refined.append(lg[:, 0])
                new_scores.append(sc[:, 0])
            t = time.perf_counter()
            logits = np.concatenate(refined)[:, None]
            scores = np.concatenate(new_scores)
            per_point = 1
        keep = (
            np.flatnonzero(scores > self.settings.pred_iou_thresh)
            if self.settings.pred_iou_thresh > 0
            else np.arange(len(scores))
        )
        out = _Candidates()
        kept = logits[keep // per_point, keep % per_point]  # (len(keep), 256, 256) copy
        if (
            keep.size
            and self.spec.small_regions == "low_res"
            and self.settings.min_mask_region_area > 0
        ):
            kept = fill_low_res(
                kept, self.settings.min_mask_region_area, self.settings.mask_threshold
            )
        x0, y0, x1, y1 = crop
        crop_size = (y1 - y0, x1 - x0)
        hi = self.settings.mask_threshold + self.settings.stability_score_offset
        lo = self.settings.mask_threshold - self.settings.stability_score_offset
        for n, i in enumerate(keep):
            full = upscale_logits(kept[n], self.spec, embedding.input_size, crop_size)
            stats.upscaled += 1
            inter = np.count_nonzero(full > hi)
            union = np.count_nonzero(full > lo)
            stability = np.float32(inter) / np.float32(union) if union else np.float32(0.0)
            if stability < self.settings.stability_score_thresh:
                continue
            box = mask_boxes((full > self.settings.mask_threshold)[None])[0]
            offset = np.array([x0, y0, x0, y0])
            if near_crop_edge((box + offset)[None], crop, image_size)[0]:
                continue
            out.logits.append(kept[n].copy())
            out.boxes.append(box)
            out.iou.append(float(scores[i]))
            out.stability.append(float(stability))
            out.points.append(pts[i])
        stats.post_s += time.perf_counter() - t
        return out

    def _full_mask(
        self, logits: np.ndarray, input_size: tuple[int, int], crop_size: tuple[int, int]
    ) -> np.ndarray:
        return upscale_masks(logits, self.spec, input_size, crop_size, self.settings.mask_threshold)

    # ------------------------------------------------------------------ all crops

    def _merge(
        self,
        size: tuple[int, int],
        boxes: list[tuple[int, int, int, int]],
        found: list[tuple[int, _Candidates, tuple[int, int]]],
        stats: AmgStats,
    ) -> GeneratedMasks:
        t = time.perf_counter()
        height, width = size
        rows: list[
            tuple[int, int, tuple[int, int]]
        ] = []  # (crop index, candidate index, input size)
        for index, cands, input_size in found:
            rows.extend((index, j, input_size) for j in range(len(cands)))
        by_crop = {index: cands for index, cands, _ in found}
        all_boxes = np.array(
            [by_crop[c].boxes[j] + np.array(boxes[c][:2] * 2) for c, j, _ in rows],
            dtype=np.int64,
        ).reshape(-1, 4)
        if len(boxes) > 1 and rows:
            crop_arr = np.array([boxes[c] for c, _, _ in rows], dtype=np.int64)
            area = (crop_arr[:, 2] - crop_arr[:, 0]) * (crop_arr[:, 3] - crop_arr[:, 1])
            keep = box_nms(
                all_boxes, (1.0 / area).astype(np.float32), self.settings.crop_nms_thresh
            )
            rows = [rows[i] for i in keep]
            all_boxes = all_boxes[keep]
        masks = np.zeros((len(rows), height, width), dtype=bool)
        for n, (c, j, input_size) in enumerate(rows):
            x0, y0, x1, y1 = boxes[c]
            masks[n, y0:y1, x0:x1] = self._full_mask(
                by_crop[c].logits[j], input_size, (y1 - y0, x1 - x0)
            )
        iou = np.array([by_crop[c].iou[j] for c, j, _ in rows], dtype=np.float32)
        stab = np.array([by_crop[c].stability[j] for c, j, _ in rows], dtype=np.float32)
        pts = np.array(
            [by_crop[c].points[j] + np.array(boxes[c][:2]) for c, j, _ in rows], dtype=np.float64
        ).reshape(-1, 2)
        crops = np.array([boxes[c] for c, _, _ in rows], dtype=np.int64).reshape(-1, 4)
        if (
            self.spec.small_regions == "full_res"
            and self.settings.min_mask_region_area > 0
            and rows
        ):
            keep, masks, all_boxes = self._remove_small_regions(masks, all_boxes)
            iou, stab, pts, crops = iou[keep], stab[keep], pts[keep], crops[keep]
        stats.post_s += time.perf_counter() - t
        return GeneratedMasks(
            image_size=(height, width),
            masks=masks,
            boxes=all_boxes,
            predicted_iou=iou,
            stability_score=stab,
            point_coords=pts,
            crop_boxes=crops,
        )

    def _remove_small_regions(
        self, masks: np.ndarray, boxes: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """SAM's ``postprocess_small_regions``: clean masks, prefer unchanged ones in NMS."""
        new = np.empty_like(masks)
        unchanged = np.zeros(len(masks), dtype=np.float32)
        for i, mask in enumerate(masks):
            mask2, changed_holes = remove_small_regions(
                mask, self.settings.min_mask_region_area, "holes"
            )
            mask2, changed_islands = remove_small_regions(
                mask2, self.settings.min_mask_region_area, "islands"
            )
            new[i] = mask2
            unchanged[i] = float(not (changed_holes or changed_islands))
        new_boxes = mask_boxes(new)
        keep = box_nms(
            new_boxes, unchanged, max(self.settings.box_nms_thresh, self.settings.crop_nms_thresh)
        )
        out_boxes = np.where(unchanged[:, None] == 0, new_boxes, boxes)
        return keep, new[keep], out_boxes[keep]


def _coarse_indices(count: int, stride: int) -> np.ndarray:
    """Indices of the coarse sub-grid of a grid of ``count`` points."""
    side = math.isqrt(count)
    if side * side == count:
        rows, cols = np.divmod(np.arange(count), side)
        return np.flatnonzero((rows % stride == 0) & (cols % stride == 0))
    return np.arange(0, count, stride * stride)


def _progress(total: int, enabled: bool) -> Any:
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="batch", leave=False)


__all__ = [
    "OUTPUT_MODES",
    "AmgSettings",
    "AmgStats",
    "GeneratedMasks",
    "MaskGenerator",
    "encode_mask",
    "point_grid",
]
