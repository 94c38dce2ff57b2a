"""What each web action does, without any Gradio: load, encode (cached), decode, render, save.

The Gradio layer (:mod:`samedge.web.app`) only converts between widgets and these calls, so
everything here is testable with plain Python.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import tempfile
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..artifacts import export_name
from ..errors import PromptError, SamedgeError
from ..maskutils import mask_area, mask_to_box, rle_encode
from ..outputs import OutputSet
from .cache import EmbeddingCache, Lookup
from .models import ModelCatalog, ModelEntry, PredictorPool
from .state import DEFAULT_MAX_DISPLAY_SIDE, LoadedImage, Prompts
from .uploads import DEFAULT_MAX_UPLOAD_MB, DEFAULT_MAX_UPLOAD_PIXELS, MB, read_upload, safe_stem

if TYPE_CHECKING:
    from ..amg.settings import AmgSettings
    from ..runtime.predictor import Predictor
    from ..saliency import SaliencyBackend
    from ..specs import ModelSpec


@dataclass(frozen=True)
class Choice:
    """The model dropdowns as the browser sent them (validated by :class:`ModelCatalog`)."""

    model: str | None
    precision: str | None
    provider: str | None


@dataclass(frozen=True)
class EverythingParams:
    """Segment-everything settings (the Everything tab's sliders): the
    :class:`~samedge.amg.AmgSettings` fields the tab offers. ``None`` keeps the model's
    official default (see :meth:`defaults` for the values the sliders start at)."""

    points_per_side: int | None = None
    pred_iou_thresh: float | None = None
    stability_score_thresh: float | None = None
    box_nms_thresh: float | None = None

    def __post_init__(self) -> None:
        if self.points_per_side is not None and not 1 <= int(self.points_per_side) <= 128:
            raise PromptError(f"points per side must be 1..128, got {self.points_per_side}")
        for name in ("pred_iou_thresh", "stability_score_thresh", "box_nms_thresh"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= float(value) <= 1.0:
                raise PromptError(f"{name.replace('_', ' ')} must be in [0, 1], got {value}")

    @classmethod
    def defaults(cls, spec: ModelSpec) -> EverythingParams:
        """The official defaults of ``spec``'s family, every field set."""
        return cls.of(cls().settings(spec))

    @classmethod
    def of(cls, settings: AmgSettings) -> EverythingParams:
        """The fields of ``settings`` that the tab offers."""
        return cls(**{f.name: getattr(settings, f.name) for f in fields(cls)})

    def settings(self, spec: ModelSpec) -> AmgSettings:
        """The full settings of a run on a ``spec`` model: these fields, the rest default."""
        from ..amg.settings import AmgSettings

        return AmgSettings.for_spec(spec, **{f.name: getattr(self, f.name) for f in fields(self)})


@dataclass(frozen=True, eq=False)
class ActionResult:
    """What one action shows and offers for download.

    Attributes:
        canvas: ``h x w x 3`` uint8 RGB picture for the browser (the image at display scale
            with masks, points and boxes drawn).
        message: one line of Markdown: latency (encode vs decode), model, result.
        masks: bool ``(M, H, W)`` at the original resolution (``None`` without prompts).
        scores: float32 ``(M,)`` predicted IoU of each mask.
        mask_path: PNG of the mask(s) (0/255 for one object, object index ``1..M`` for
            several), or ``None``.
        json_path: JSON with model, prompts, timings and each mask as COCO RLE, or ``None``.
        encode_ms: encoder time, ``None`` when the embedding came from the cache.
        decode_ms: decoder (or segment-everything) time.
    """

    canvas: np.ndarray
    message: str
    masks: np.ndarray | None = None
    scores: np.ndarray | None = None
    mask_path: Path | None = None
    json_path: Path | None = None
    encode_ms: float | None = None
    decode_ms: float | None = None


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 10 else f"{seconds:.1f} s"


def _field(record: Any, name: str) -> Any:
    return record[name] if isinstance(record, dict) else getattr(record, name)


class Engine:
    """Runs web actions against the catalog's models with a shared embedding cache.

    Args:
        catalog: the models and providers this server offers.
        out_dir: where download files are written (one sub-folder per browser session,
            files overwritten by the next action of the same tab).
        cache: embedding cache (default: 8 entries).
        pool: loaded predictors.
        max_upload_mb: largest accepted upload, in MB.
        max_upload_pixels: largest accepted image, in pixels.
        max_display_side: longest side of the picture sent to the browser.
        saliency: the Point tab's **Auto** backend (default: the weights-free ``classic``).
    """

    def __init__(
        self,
        catalog: ModelCatalog,
        out_dir: str | Path | None = None,
        cache: EmbeddingCache | None = None,
        pool: PredictorPool | None = None,
        max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB,
        max_upload_pixels: int = DEFAULT_MAX_UPLOAD_PIXELS,
        max_display_side: int = DEFAULT_MAX_DISPLAY_SIDE,
        saliency: SaliencyBackend | None = None,
    ) -> None:
        self.catalog = catalog
        self.out_dir = Path(out_dir) if out_dir else Path(tempfile.mkdtemp(prefix="samedge-web-"))
        # Not "cache or ...": an empty cache has len 0 and is falsy, and "or" used to swap
        # the caller's (--cache-size) for a default one of 8 entries.
        self.cache = cache if cache is not None else EmbeddingCache()
        self.pool = pool if pool is not None else PredictorPool()
        self.max_upload_bytes = int(max_upload_mb * MB)
        self.max_upload_pixels = max_upload_pixels
        self.max_display_side = max_display_side
        self._saliency = saliency

    # -- images and models ---------------------------------------------------------------

    def load(self, path: str | os.PathLike[str], original_name: str | None = None) -> LoadedImage:
        """Validate and decode an upload (see :func:`samedge.web.uploads.read_upload`)."""
        pixels = read_upload(path, original_name, self.max_upload_bytes, self.max_upload_pixels)
        return LoadedImage.create(pixels, safe_stem(original_name), self.max_display_side)

    def model(self, choice: Choice) -> tuple[ModelEntry, str, Predictor]:
        entry = self.catalog.lookup(choice.model, choice.precision)
        provider = self.catalog.check_provider(choice.provider)
        return entry, provider, self.pool.get(entry, provider)

    def encode(self, image: LoadedImage, choice: Choice) -> tuple[ModelEntry, Predictor, Lookup]:
        """The image's embedding under the chosen model, from the cache when possible."""
        entry, provider, predictor = self.model(choice)
        lookup = self.cache.get_or_encode(
            image.sha256, f"{entry.key}|{provider}", lambda: predictor.encode(image.pixels)
        )
        return entry, predictor, lookup

    def describe(self, entry: ModelEntry, predictor: Predictor) -> str:
        providers = sorted(set(predictor.providers.values()))
        text = f"{export_name(predictor.spec)} {entry.precision} on {', '.join(providers)}"
        if entry.random_weights:
            text += " (random test weights: masks are meaningless)"
        return text

    def everything_defaults(self, label: str | None) -> EverythingParams:
        """The Everything tab's slider values for the model offered as ``label``: the
        official defaults of its family (the library's and the CLI's).

        Raises:
            SamedgeError: this server offers no model ``label``.
        """
        from ..registry import get_spec

        return EverythingParams.defaults(get_spec(self.catalog.lookup(label, None).model))

    def prepare(self, image: LoadedImage, choice: Choice) -> str:
        """Encode a new image (or find it cached); returns the status line."""
        entry, predictor, lookup = self.encode(image, choice)
        height, width = image.size
        encoded = "cached" if lookup.cached else _ms(lookup.encode_seconds or 0.0)
        return (
            f"{width}x{height} image · encode **{encoded}** · {self.describe(entry, predictor)}"
            f" · click the picture to prompt"
        )

    # -- prompts -------------------------------------------------------------------------

    def segment(
        self, image: LoadedImage | None, prompts: Prompts, choice: Choice, session: str = ""
    ) -> ActionResult:
        """Masks for ``prompts`` (one object, or one per box in box mode).

        Raises:
            SamedgeError: no image, a model or provider this server does not offer, or
                invalid prompts.
        """
        if image is None:
            raise SamedgeError("upload an image (or pick an example) first")
        kwargs = prompts.predict_kwargs()
        if kwargs is None:
            hint = prompts.summary() if prompts.corner is not None else "no prompts yet"
            return ActionResult(canvas=self.render(image, prompts), message=hint)
        entry, predictor, lookup = self.encode(image, choice)
        start = time.perf_counter()
        prediction = predictor.predict(lookup.embedding, **kwargs)
        decoded = time.perf_counter()
        masks, scores = prediction.best()
        canvas = self.render(image, prompts, masks)
        encode_ms = None if lookup.cached else 1000 * (lookup.encode_seconds or 0.0)
        decode_ms = 1000 * (decoded - start)
        record = self._record(image, entry, predictor, prompts.mode, encode_ms, decode_ms)
        record["prompts"] = {
            "points": [list(p) for p in prompts.points],
            "labels": list(prompts.labels),
            "boxes": [list(b) for b in prompts.boxes],
        }
        record["masks"] = [
            {
                "prompt_set": i,
                "score": round(float(scores[i]), 6),
                "area": mask_area(mask),
                "bbox": list(mask_to_box(mask)),
                "segmentation": rle_encode(mask),
            }
            for i, mask in enumerate(masks)
        ]
        mask_path, json_path = self._save(image, prompts.mode, session, masks, record)
        rendered = time.perf_counter()
        encoded = "cached" if encode_ms is None else _ms(encode_ms / 1000)
        count = f"{len(masks)} mask{'s' * (len(masks) != 1)}"
        best = ", ".join(f"{s:.2f}" for s in scores[:8])
        message = (
            f"encode **{encoded}** · decode **{_ms(decoded - start)}** · "
            f"draw + save {_ms(rendered - decoded)} · {count} (score {best}) · "
            f"{prompts.summary()} · {self.describe(entry, predictor)}"
        )
        return ActionResult(
            canvas, message, masks, scores, mask_path, json_path, encode_ms, decode_ms
        )

    def auto_prompts(self, image: LoadedImage | None, prompts: Prompts) -> Prompts:
        """``prompts`` replaced by the five positive clicks on the image's most salient
        object (:func:`samedge.saliency.auto_prompt`); they are ordinary points, so the user
        can undo them one by one, add more or clear them.

        Raises:
            SamedgeError: no image; :class:`samedge.saliency.NoSalientObjectError` when the
                image has no salient blob (the prompts are left as they were).
        """
        from ..saliency import auto_prompt, make_backend

        if image is None:
            raise SamedgeError("upload an image (or pick an example) first")
        if self._saliency is None:
            self._saliency = make_backend("classic")
        auto = auto_prompt(np.asarray(image.pixels), self._saliency)
        result = prompts.clear()
        for x, y in auto.points:
            result = result.add("positive", float(x), float(y))
        return result

    # -- segment everything --------------------------------------------------------------

    def everything(
        self,
        image: LoadedImage | None,
        params: EverythingParams,
        choice: Choice,
        session: str = "",
    ) -> ActionResult:
        """Every object in the image (needs :mod:`samedge.amg`)."""
        if image is None:
            raise SamedgeError("upload an image (or pick an example) first")
        from ..amg import MaskGenerator
        from ..amg.summary import outcome

        start = time.perf_counter()
        entry, predictor, lookup = self.encode(image, choice)
        settings = params.settings(predictor.spec)
        generator = MaskGenerator(predictor, settings)
        found = generator.generate_masks(image.pixels, embedding=lookup.embedding)
        records = found.records()
        generated = time.perf_counter()
        # The whole-image embedding comes from the session cache (shared with Point and Box).
        encode_ms = 1000 * ((lookup.encode_seconds or 0.0) + float(found.stats["encode_s"]))
        decode_ms = 1000 * float(found.stats.get("decode_s", 0.0))
        records.sort(key=lambda r: -int(_field(r, "area")))
        height, width = image.size
        masks = (
            np.stack([np.asarray(_field(r, "segmentation"), dtype=bool) for r in records])
            if records
            else np.zeros((0, height, width), dtype=bool)
        )
        scores = np.array([float(_field(r, "predicted_iou")) for r in records], np.float32)
        canvas = self.render(image, Prompts("point"), masks)
        generate_ms = 1000 * (generated - start)
        record = self._record(image, entry, predictor, "everything", None, generate_ms)
        record["timings_ms"] = {
            "generate": round(generate_ms, 1),
            "encode": round(encode_ms, 1),
            "decode": round(decode_ms, 1),
        }
        record["settings"] = dataclasses.asdict(EverythingParams.of(settings))
        record["masks"] = [
            {
                "area": int(_field(r, "area")),
                "bbox": [float(v) for v in _field(r, "bbox")],
                "predicted_iou": round(float(_field(r, "predicted_iou")), 6),
                "stability_score": round(float(_field(r, "stability_score")), 6),
                "segmentation": rle_encode(mask),
            }
            for r, mask in zip(records, masks, strict=True)
        ]
        mask_path, json_path = self._save(image, "everything", session, masks, record)
        encoded = "cached" if lookup.cached else f"**{_ms(encode_ms / 1000)}**"
        message = (
            f"segment everything **{_ms(generated - start)}**: encode "
            f"{encoded}, decode **{_ms(decode_ms / 1000)}** · "
            f"{len(records)} mask{'s' * (len(records) != 1)} ("
            + outcome(
                {**found.stats, "masks": len(records)},
                settings.pred_iou_thresh,
                settings.stability_score_thresh,
            )
            + f") · {self.describe(entry, predictor)}"
        )
        return ActionResult(canvas, message, masks, scores, mask_path, json_path, None, generate_ms)

    # -- pictures and files --------------------------------------------------------------

    def render(
        self, image: LoadedImage, prompts: Prompts, masks: np.ndarray | None = None
    ) -> np.ndarray:
        """The display-scale picture with ``masks`` (original resolution) and ``prompts``."""
        import cv2

        from ..visualize import color_for, overlay

        scale = image.scale
        shown = []
        if masks is not None:
            h, w = image.display.shape[:2]
            for mask in masks:
                if scale < 1.0:
                    small = cv2.resize(mask.astype(np.uint8), (w, h), interpolation=cv2.INTER_AREA)
                    mask = small > 0
                shown.append(mask)
        points = np.asarray(prompts.points, dtype=np.float64).reshape(-1, 2) * scale
        boxes = np.asarray(prompts.boxes, dtype=np.float64).reshape(-1, 4) * scale
        canvas = overlay(
            image.display,
            shown,
            points=points if len(points) else None,
            labels=np.asarray(prompts.labels) if len(points) else None,
            boxes=boxes if len(boxes) else None,
        )
        if prompts.corner is not None:
            x, y = (round(v * scale) for v in prompts.corner)
            size = max(12, round(max(canvas.shape[:2]) / 60))
            colour = color_for(len(prompts.boxes) if prompts.mode == "box" else 0)
            cv2.drawMarker(canvas, (x, y), (255, 255, 255), cv2.MARKER_CROSS, size + 4, 5)
            cv2.drawMarker(canvas, (x, y), colour, cv2.MARKER_CROSS, size, 2)
        return canvas

    def _record(
        self,
        image: LoadedImage,
        entry: ModelEntry,
        predictor: Predictor,
        mode: str,
        encode_ms: float | None,
        decode_ms: float,
    ) -> dict[str, Any]:
        height, width = image.size
        return {
            "model": export_name(predictor.spec),
            "precision": entry.precision,
            "weights": "random-init" if entry.random_weights else "checkpoint",
            "provider": predictor.providers,
            "mode": mode,
            "image": {"name": image.name, "width": width, "height": height, "sha256": image.sha256},
            "timings_ms": {
                "encode": None if encode_ms is None else round(encode_ms, 1),
                "encode_cached": encode_ms is None,
                "decode": round(decode_ms, 1),
            },
        }

    def _save(
        self,
        image: LoadedImage,
        mode: str,
        session: str,
        masks: np.ndarray,
        record: dict[str, Any],
    ) -> tuple[Path, Path]:
        # The session id comes from the browser: hash it rather than use it in a path.
        folder = self.out_dir / hashlib.sha256(session.encode()).hexdigest()[:16]
        mask_path = folder / f"{image.name}-{mode}-mask.png"
        json_path = folder / f"{image.name}-{mode}-result.json"
        with OutputSet() as out:
            out.add(mask_path, label_png(masks))
            out.add_json(json_path, record)
        return mask_path, json_path


def label_png(masks: np.ndarray) -> bytes:
    """PNG of ``(M, H, W)`` bool masks: 0/255 for one mask, else pixel = mask index ``1..M``
    (later masks win where they overlap; 16-bit above 255 masks)."""
    from ..outputs import encode_png

    masks = np.asarray(masks, dtype=bool)
    if len(masks) == 1:
        return encode_png(masks[0])
    dtype = np.uint8 if len(masks) <= 255 else np.uint16
    labels = np.zeros(masks.shape[1:], dtype=dtype)
    for i, mask in enumerate(masks):
        labels[mask] = i + 1
    if dtype == np.uint8:
        return encode_png(labels)
    import cv2

    ok, buf = cv2.imencode(".png", labels)
    if not ok:  # pragma: no cover - OpenCV always encodes uint16 PNG
        raise SamedgeError("could not encode PNG")
    return buf.tobytes()
