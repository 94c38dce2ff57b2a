"""One worker of a batch run: a predictor loaded once, then one image at a time.

Both executors run :class:`ImageWorker`: the in-process one in each worker process, the Ray
one in each actor of the pool. A worker writes the image's shard (and its PNGs) itself, so
nothing depends on the driver receiving the result: what is written is done.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ..outputs import OutputSet
from .inputs import WorkItem
from .shards import image_source, shard_path

#: JSONL fields not copied into a prompt's annotation: the merged file numbers these.
NUMBERED = ("image", "id", "image_id")


@dataclass(frozen=True)
class BatchJob:
    """What every worker needs to know (plain data, sent to worker processes and actors).

    Attributes:
        model: registered name or exported folder.
        mode: ``"boxes"``, ``"points"`` or ``"everything"``.
        out: the output folder.
        providers: execution providers (``None``: CPU).
        threads: intra-op threads of each worker's predictor.
        amg: :class:`~samedge.amg.AmgSettings` overrides for ``everything`` (``None`` values
            keep the family default).
        png: also write one PNG per mask, ``<out>/png/<key>/<index>.png``.
        overlay: also write ``<out>/overlays/<key>.png``.
        provider_settings: :class:`~samedge.runtime.providers.ProviderSettings` or ``None``.
    """

    model: str
    mode: Literal["boxes", "points", "everything"]
    out: str
    providers: str | None = None
    threads: int | None = None
    amg: dict[str, Any] = field(default_factory=dict)
    png: bool = False
    overlay: bool = False
    provider_settings: Any = None


@dataclass(frozen=True)
class ItemResult:
    """What a worker reports for one image.

    Attributes:
        key: the image's shard key.
        path: the image file.
        ok: the shard was written.
        reason: why not (one line), when ``ok`` is false.
        stages: seconds per stage: ``read`` (decode the file), ``encode``, ``decode``
            (prompts, or segment everything's decoder and post-processing), ``write``.
    """

    key: str
    path: str
    ok: bool
    reason: str = ""
    stages: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "path": self.path,
            "ok": self.ok,
            "reason": self.reason,
            "stages": self.stages,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ItemResult:
        return cls(data["key"], data["path"], data["ok"], data["reason"], dict(data["stages"]))


def amg_settings(spec: Any, overrides: dict[str, Any]) -> Any:
    """The segment-everything settings of a job: the family defaults with ``overrides``,
    segmentations as COCO RLE."""
    from ..amg import AmgSettings

    return AmgSettings.for_spec(spec, **overrides, output_mode="coco_rle")


class ImageWorker:
    """A loaded model that processes :class:`WorkItem`s of one job."""

    def __init__(self, job: BatchJob) -> None:
        from ..runtime.predictor import Predictor

        self.job = job
        self.predictor = Predictor.from_pretrained(
            job.model, job.providers, job.threads, provider_settings=job.provider_settings
        )
        self.generator = None
        if job.mode == "everything":
            from ..amg import MaskGenerator

            self.generator = MaskGenerator(
                self.predictor, amg_settings(self.predictor.spec, job.amg)
            )

    def close(self) -> None:
        self.predictor.close()

    def process(self, item: WorkItem) -> ItemResult:
        """Segment one image and write its shard; any failure becomes a result with its
        reason (the run goes on)."""
        from ..errors import SamedgeError

        try:
            return self._process(item)
        except SamedgeError as exc:
            return ItemResult(item.key, item.path, False, str(exc))
        except Exception as exc:  # one image must not stop a dataset run
            return ItemResult(item.key, item.path, False, f"{type(exc).__name__}: {exc}")

    def _process(self, item: WorkItem) -> ItemResult:
        from ..imageio import load_image

        stages: dict[str, float] = {}
        t = time.perf_counter()
        source = image_source(item.path)  # before reading: a file changed since is redone
        image = load_image(Path(item.path))
        stages["read"] = time.perf_counter() - t
        problems: list[str] = []
        if self.job.mode == "everything":
            annotations, masks = self._everything(image, stages)
        else:
            annotations, masks = self._prompts(image, item, stages, problems)
        t = time.perf_counter()
        height, width = image.shape[:2]
        shard = {
            "key": item.key,
            "image": {
                "id": item.image_id,
                "file_name": item.file_name,
                "width": width,
                "height": height,
            },
            "annotations": annotations,
            "source": source,
            "errors": problems,
        }
        with OutputSet() as files:
            self._pictures(files, item, image, masks)
            files.add_json(shard_path(self.job.out, item.key), shard)  # last: marks it done
        stages["write"] = time.perf_counter() - t
        return ItemResult(item.key, item.path, True, "", stages)

    def _everything(
        self, image: np.ndarray, stages: dict[str, float]
    ) -> tuple[list[dict[str, Any]], np.ndarray]:
        assert self.generator is not None
        result = self.generator.generate_masks(image)
        stages["encode"] = result.stats["encode_s"]
        stages["decode"] = result.stats["decode_s"] + result.stats["post_s"]
        return result.records("coco_rle"), result.masks

    def _prompts(
        self, image: np.ndarray, item: WorkItem, stages: dict[str, float], problems: list[str]
    ) -> tuple[list[dict[str, Any]], np.ndarray]:
        """One mask per prompt of ``item``; a box with no area inside the image gets none,
        and a line in ``problems`` instead."""
        from ..maskutils import mask_area, mask_to_box, rle_encode

        t = time.perf_counter()
        embedding = self.predictor.encode(image)
        stages["encode"] = time.perf_counter() - t
        t = time.perf_counter()
        height, width = image.shape[:2]
        prompts = list(item.prompts)
        if self.job.mode == "boxes":
            boxes = np.array([p["bbox"] for p in prompts], dtype=np.float64)
            xyxy = np.stack([boxes[:, 0], boxes[:, 1], boxes[:, 0] + boxes[:, 2],
                             boxes[:, 1] + boxes[:, 3]], axis=1)  # fmt: skip
            # Detector boxes may overhang the image by a fraction of a pixel: clamped. One
            # with nothing left inside would still get a (meaningless) mask: rejected.
            xyxy = np.clip(xyxy, 0, [width, height, width, height])
            inside = (xyxy[:, 2] > xyxy[:, 0]) & (xyxy[:, 3] > xyxy[:, 1])
            for prompt in (p for p, ok in zip(prompts, inside, strict=True) if not ok):
                problems.append(
                    f"annotation {prompt['id']}: bbox {prompt['bbox']} (x, y, width, height) "
                    f"has no area inside the {width}x{height} image (width x height); "
                    "no mask: fix or drop the box"
                )
            prompts = [p for p, ok in zip(prompts, inside, strict=True) if ok]
            if prompts:
                pred = self.predictor.predict(embedding, boxes=xyxy[inside], multimask_output=False)
                masks, scores = pred.masks[:, 0], pred.scores[:, 0]
            else:
                masks = np.zeros((0, height, width), dtype=bool)
                scores = np.zeros(0, dtype=np.float32)
        else:
            found = [self._point_prompt(embedding, p) for p in prompts]
            masks = np.stack([m for m, _ in found])
            scores = np.array([s for _, s in found], dtype=np.float32)
        annotations = []
        for i, mask in enumerate(masks):
            record: dict[str, Any] = {
                "segmentation": rle_encode(mask),
                "area": mask_area(mask),
                "mask_score": float(scores[i]),
            }
            if self.job.mode == "boxes":
                record = {"id": prompts[i]["id"], **record}
            else:
                extra = {k: v for k, v in prompts[i].items() if k not in NUMBERED}
                record = {**extra, **record, "bbox": list(mask_to_box(mask))}
            annotations.append(record)
        stages["decode"] = time.perf_counter() - t
        return annotations, masks

    def _point_prompt(self, embedding: Any, prompt: dict[str, Any]) -> tuple[np.ndarray, float]:
        """The mask of one JSONL prompt: three candidates and the best for one click (the
        official advice for an ambiguous single point), one mask otherwise."""
        points = prompt.get("points")
        labels = prompt.get("labels")
        box = prompt.get("box")
        single = box is None and points is not None and len(points) == 1
        pred = self.predictor.predict(
            embedding,
            points=points,
            labels=labels,
            box=box,
            multimask_output=single,
            best_only=True,
        )
        return pred.masks[0, 0], float(pred.scores[0, 0])

    def _pictures(
        self, files: OutputSet, item: WorkItem, image: np.ndarray, masks: np.ndarray
    ) -> None:
        out = Path(self.job.out)
        if self.job.png:
            for i, mask in enumerate(masks):
                files.add_png(out / "png" / item.key / f"{i:04d}.png", mask)
        if self.job.overlay:
            from ..amg.render import everything_overlay

            files.add_png(
                out / "overlays" / f"{item.key}.png",
                everything_overlay(image, np.asarray(masks, dtype=bool)),
            )
