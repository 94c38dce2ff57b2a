"""DAVIS semi-supervised video object segmentation: J&F as the DAVIS toolkit computes it.

The measures follow davisvideochallenge/davis2017-evaluation (``davis2017/metrics.py``,
``evaluation.py``), which SAM 2's own benchmark script reuses:

* **J** (region similarity): Jaccard index of the predicted and ground-truth object masks;
  two empty masks score 1.
* **F** (contour accuracy): boundary F-measure. Both masks become 1-pixel boundary maps
  (:func:`boundary_map`: a pixel is on the boundary when it differs from its right, lower or
  lower-right neighbour); a boundary pixel of one mask is matched when a boundary pixel of
  the other lies within ``ceil(0.008 * image diagonal)`` pixels (a dilation with a disk
  of that radius: 8 pixels at 854x480). Precision = matched predicted / predicted boundary
  pixels, recall = matched ground-truth / ground-truth boundary pixels, F their harmonic
  mean; an empty prediction of a present object scores 0, two empty masks 1.
* Per object: **mean** over the frames evaluated, **recall** (share of frames above 0.5)
  and **decay** (mean of the first quarter of the frames minus that of the last quarter).
  The first frame (the prompt) and the last frame of every sequence are not evaluated.
* **J&F** = (mean J + mean F) / 2, where the means are over all objects of all sequences
  (a sequence with three objects weighs three times one with one object); per sequence,
  over its objects.

Annotations are indexed PNGs (object id per pixel; 255, DAVIS's "void", counts as
background, which is what the toolkit ends up doing) or, as in DAVIS 2016, 0/255 masks of
one object. Objects are 1..N with N the largest id on the first annotated frame.
Predictions use the same layout (``PRED/<sequence>/<frame>.png``); an object a prediction
never mentions is an empty mask. One difference from the toolkit, which stores the decay
bin bounds in ``uint8`` and so wraps for sequences of more than 256 frames: here they do not.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..errors import SamedgeError

#: Boundary tolerance as a fraction of the image diagonal (the DAVIS toolkit's bound_th).
BOUND_TH = 0.008
#: The global measures, in the toolkit's order.
GLOBAL_KEYS = ("J&F-Mean", "J-Mean", "J-Recall", "J-Decay", "F-Mean", "F-Recall", "F-Decay")
#: DAVIS's "void" label in annotations.
VOID = 255


# -- measures ------------------------------------------------------------------------------


def jaccard(pred: np.ndarray, gt: np.ndarray, void: np.ndarray | None = None) -> float:
    """Region similarity J of two bool ``(H, W)`` masks, pixels in ``void`` left out; 1 when
    both are empty."""
    if pred.shape != gt.shape:
        raise ValueError(f"mask shapes differ: {pred.shape} vs {gt.shape}")
    pred, gt = pred.astype(bool), gt.astype(bool)
    keep = np.ones_like(gt) if void is None else ~void.astype(bool)
    union = np.count_nonzero((pred | gt) & keep)
    return 1.0 if union == 0 else np.count_nonzero(pred & gt & keep) / union


def boundary_map(mask: np.ndarray) -> np.ndarray:
    """The 1-pixel boundary of a bool mask, offset half a pixel towards the origin: pixels
    that differ from their right, lower or lower-right neighbour (the bottom row compares
    with its right neighbour only, the right column with its lower neighbour only, and the
    bottom-right pixel is never on it), as ``seg2bmap`` in the DAVIS toolkit."""
    seg = np.asarray(mask, dtype=bool)
    right = np.zeros_like(seg)
    below = np.zeros_like(seg)
    diag = np.zeros_like(seg)
    right[:, :-1] = seg[:, 1:]
    below[:-1, :] = seg[1:, :]
    diag[:-1, :-1] = seg[1:, 1:]
    edge = (seg ^ right) | (seg ^ below) | (seg ^ diag)
    edge[-1, :] = seg[-1, :] ^ right[-1, :]
    edge[:, -1] = seg[:, -1] ^ below[:, -1]
    edge[-1, -1] = False
    return edge


def disk(radius: int) -> np.ndarray:
    """uint8 disk of ``radius`` pixels: ``x² + y² <= r²`` on a ``(2r+1)²`` grid."""
    r = int(radius)
    y, x = np.mgrid[-r : r + 1, -r : r + 1]
    return (x * x + y * y <= r * r).astype(np.uint8)


def boundary_radius(shape: tuple[int, ...], bound_th: float = BOUND_TH) -> int:
    """Matching distance in pixels: ``bound_th`` itself when >= 1, else
    ``ceil(bound_th * diagonal)``."""
    return int(bound_th if bound_th >= 1 else math.ceil(bound_th * math.hypot(*shape[:2])))


def boundary_f(
    pred: np.ndarray,
    gt: np.ndarray,
    void: np.ndarray | None = None,
    bound_th: float = BOUND_TH,
) -> float:
    """Contour accuracy F of two bool ``(H, W)`` masks (see the module docstring)."""
    if pred.shape != gt.shape:
        raise ValueError(f"mask shapes differ: {pred.shape} vs {gt.shape}")
    keep = np.ones(gt.shape, bool) if void is None else ~void.astype(bool)
    pred_b = boundary_map(pred.astype(bool) & keep)
    gt_b = boundary_map(gt.astype(bool) & keep)
    n_pred, n_gt = int(np.count_nonzero(pred_b)), int(np.count_nonzero(gt_b))
    if n_pred == 0 or n_gt == 0:
        # Toolkit convention: nothing on one side is precision 1 / recall 0 (or the reverse),
        # so F = 0, and nothing on both sides is F = 1.
        return 1.0 if n_pred == n_gt else 0.0
    kernel = disk(boundary_radius(gt.shape, bound_th))
    pred_near = cv2.dilate(pred_b.astype(np.uint8), kernel) > 0
    gt_near = cv2.dilate(gt_b.astype(np.uint8), kernel) > 0
    precision = np.count_nonzero(pred_b & gt_near) / n_pred
    recall = np.count_nonzero(gt_b & pred_near) / n_gt
    if precision + recall == 0:
        return 0.0
    return 2 * precision * recall / (precision + recall)


def statistics(values: Sequence[float]) -> dict[str, float]:
    """``mean``, ``recall`` (share > 0.5) and ``decay`` (first quarter minus last quarter,
    the toolkit's four overlapping bins) of per-frame values."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return {"mean": float("nan"), "recall": float("nan"), "decay": float("nan")}
    ids = (np.round(np.linspace(1, len(v), 5) + 1e-10) - 1).astype(np.int64)
    bins = [v[ids[i] : ids[i + 1] + 1] for i in range(4)]
    return {
        "mean": float(np.nanmean(v)),
        "recall": float(np.nanmean(v > 0.5)),
        "decay": float(np.nanmean(bins[0]) - np.nanmean(bins[3])),
    }


# -- reading the layout --------------------------------------------------------------------


def read_labels(path: Path, *, annotation: bool) -> np.ndarray:
    """Object ids of an indexed PNG as uint8 ``(H, W)`` (0 background). A non-palette
    image holding only 0 and 255 is one object (DAVIS 2016). In annotations the void label
    255 becomes background."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.load()
            palette = im.mode == "P"
            data = np.asarray(im)
    except FileNotFoundError:
        raise SamedgeError(f"missing mask {path}") from None
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError):
        raise SamedgeError(f"cannot read mask {path}: not an image") from None
    if data.ndim == 3:
        if data.shape[2] in (2, 4):  # gray + alpha, RGBA: the alpha is not a label
            data = data[:, :, : data.shape[2] - 1]
        if (
            data.ndim == 3
            and data.shape[2] == 3
            and not (
                np.array_equal(data[:, :, 0], data[:, :, 1])
                and np.array_equal(data[:, :, 0], data[:, :, 2])
            )
        ):
            raise SamedgeError(
                f"{path} is a colour image: save masks as indexed (palette) PNGs or "
                f"grayscale object ids, as DAVIS does"
            )
        data = data[:, :, 0]
    if data.dtype != np.uint8:
        if data.max(initial=0) > 255 or data.min(initial=0) < 0:
            raise SamedgeError(f"{path} has object ids above 255")
        data = data.astype(np.uint8)
    if not palette and np.all((data == 0) | (data == VOID)):
        return (data == VOID).astype(np.uint8)
    if annotation:
        data = np.where(data == VOID, 0, data).astype(np.uint8)
    return data


def _frames(folder: Path, suffixes: tuple[str, ...]) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in suffixes and p.is_file())


def _resolution_folder(folder: Path) -> Path:
    """``folder/480p`` when DAVIS 2017's resolution level is there."""
    return folder / "480p" if (folder / "480p").is_dir() else folder


@dataclass(frozen=True)
class DavisDataset:
    """A DAVIS-layout folder: ``JPEGImages/<seq>/*.jpg`` and ``Annotations/<seq>/*.png``
    (each optionally under ``480p/``)."""

    root: Path
    images: Path
    annotations: Path
    sequences: tuple[str, ...]

    def frames(self, sequence: str) -> Path:
        return self.images / sequence

    def annotation_files(self, sequence: str) -> list[Path]:
        return _frames(self.annotations / sequence, (".png",))


def open_davis(
    root: str | os.PathLike[str],
    sequences: Sequence[str] | None = None,
    limit: int | None = None,
) -> DavisDataset:
    """The sequences of a DAVIS folder: ``sequences`` if given, else those listed in
    ``ImageSets/2017/val.txt`` when present (DAVIS 2017 ships train and val together),
    else every annotated sequence; the first ``limit`` of them.

    Raises:
        SamedgeError: no ``Annotations`` folder, a sequence without annotations.
    """
    path = Path(root)
    if not path.is_dir():
        raise SamedgeError(f"DAVIS folder not found: {path}")
    if path.name == "Annotations" or not (path / "Annotations").is_dir():
        raise SamedgeError(
            f"{path} is not a DAVIS folder: it needs Annotations/<sequence>/*.png and "
            f"JPEGImages/<sequence>/*.jpg"
        )
    annotations = _resolution_folder(path / "Annotations")
    images = _resolution_folder(path / "JPEGImages")
    if sequences:
        names = list(sequences)
    elif (path / "ImageSets" / "2017" / "val.txt").is_file():
        text = (path / "ImageSets" / "2017" / "val.txt").read_text()
        names = [line.strip() for line in text.splitlines() if line.strip()]
    else:
        names = sorted(p.name for p in annotations.iterdir() if p.is_dir())
    for name in names:
        folder = annotations / name
        if not folder.is_dir() or not _frames(folder, (".png",)):
            raise SamedgeError(f"sequence {name!r} has no annotations in {annotations}")
    if not names:
        raise SamedgeError(f"{annotations} holds no sequence")
    return DavisDataset(path, images, annotations, tuple(names[:limit] if limit else names))


# -- evaluation ----------------------------------------------------------------------------


@dataclass(frozen=True)
class SequenceScore:
    """Per-frame J and F of each object of one sequence.

    Attributes:
        frames: names (stems) of the frames evaluated (the first and last left out).
        j, f: ``(objects, frames)`` float64.
    """

    name: str
    objects: tuple[int, ...]
    frames: tuple[str, ...]
    j: np.ndarray
    f: np.ndarray

    def object_stats(self) -> dict[str, dict[str, dict[str, float]]]:
        return {
            str(obj): {"J": statistics(self.j[k]), "F": statistics(self.f[k])}
            for k, obj in enumerate(self.objects)
        }

    @property
    def j_mean(self) -> float:
        return float(np.mean([statistics(r)["mean"] for r in self.j]))

    @property
    def f_mean(self) -> float:
        return float(np.mean([statistics(r)["mean"] for r in self.f]))


def evaluate_sequence(
    gt_files: Sequence[Path],
    pred_folder: Path,
    name: str,
    bound_th: float = BOUND_TH,
) -> SequenceScore:
    """J and F of the predictions in ``pred_folder`` (same file names as ``gt_files``)."""
    gt_files = list(gt_files)
    first = read_labels(gt_files[0], annotation=True)
    objects = tuple(range(1, int(first.max()) + 1))
    if not objects:
        raise SamedgeError(f"sequence {name}: the first annotation {gt_files[0]} has no object")
    evaluated = gt_files[1:-1] if len(gt_files) > 2 else []
    if not evaluated:
        raise SamedgeError(
            f"sequence {name}: {len(gt_files)} annotated frames; DAVIS leaves out the first and "
            f"last, so at least 3 are needed"
        )
    j = np.zeros((len(objects), len(evaluated)))
    f = np.zeros((len(objects), len(evaluated)))
    for t, gt_file in enumerate(evaluated):
        gt = read_labels(gt_file, annotation=True)
        pred_file = pred_folder / gt_file.name
        if not pred_file.is_file():
            raise SamedgeError(
                f"sequence {name}: no prediction {pred_file} for annotated frame {gt_file.name}"
            )
        pred = read_labels(pred_file, annotation=False)
        if pred.shape != gt.shape:
            raise SamedgeError(
                f"{pred_file} is {pred.shape[1]}x{pred.shape[0]}, its annotation "
                f"{gt.shape[1]}x{gt.shape[0]}"
            )
        extra = int(pred.max())
        if extra > len(objects):
            raise SamedgeError(
                f"{pred_file} has object id {extra}; sequence {name} has {len(objects)} "
                f"object(s) (ids 1..{len(objects)})"
            )
        for k, obj in enumerate(objects):
            p, g = pred == obj, gt == obj
            j[k, t] = jaccard(p, g)
            f[k, t] = boundary_f(p, g, bound_th=bound_th)
    return SequenceScore(name, objects, tuple(p.stem for p in evaluated), j, f)


@dataclass
class DavisResult:
    """J&F of every sequence and the means over all objects."""

    dataset: str
    predictions: str
    sequences: list[SequenceScore]
    model: str | None = None
    seconds: float = 0.0
    max_frames: int | None = None
    agreement: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def means(self) -> dict[str, float]:
        """Toolkit global means: every object of every sequence counts once."""
        rows = [
            (statistics(s.j[k]), statistics(s.f[k]))
            for s in self.sequences
            for k in range(len(s.objects))
        ]
        out: dict[str, float] = {}
        for key in ("mean", "recall", "decay"):
            out[f"J-{key.capitalize()}"] = float(np.mean([r[0][key] for r in rows]))
            out[f"F-{key.capitalize()}"] = float(np.mean([r[1][key] for r in rows]))
        out["J&F-Mean"] = (out["J-Mean"] + out["F-Mean"]) / 2
        return out

    def summary_json(self) -> dict[str, Any]:
        return {
            "format": "davis",
            "dataset": self.dataset,
            "predictions": self.predictions,
            "model": self.model,
            "measures": "J (region Jaccard) and F (boundary F-measure, bound_th "
            f"{BOUND_TH}) as the DAVIS 2017 toolkit, first and last frames left out",
            "max_frames": self.max_frames,
            "seconds": round(self.seconds, 2),
            "objects": sum(len(s.objects) for s in self.sequences),
            "global": self.means(),
            "sequences": {
                s.name: {
                    "J&F": (s.j_mean + s.f_mean) / 2,
                    "J": s.j_mean,
                    "F": s.f_mean,
                    "frames": len(s.frames),
                    "objects": s.object_stats(),
                }
                for s in self.sequences
            },
            "per_frame": {
                s.name: {
                    "frames": list(s.frames),
                    **{
                        str(obj): {
                            "J": [round(float(v), 6) for v in s.j[k]],
                            "F": [round(float(v), 6) for v in s.f[k]],
                        }
                        for k, obj in enumerate(s.objects)
                    },
                }
                for s in self.sequences
            },
            **({"agreement": self.agreement} if self.agreement is not None else {}),
            **self.extra,
        }

    def markdown(self) -> str:
        g = self.means()
        title = self.model or self.predictions
        lines = [
            f"# samedge eval --format davis: {title} on {Path(self.dataset).name}",
            "",
            f"{len(self.sequences)} sequences, {sum(len(s.objects) for s in self.sequences)} "
            f"objects; J and F as the DAVIS 2017 toolkit (first and last frames left out"
            + (f"; first {self.max_frames} frames of each sequence" if self.max_frames else "")
            + ").",
            "",
            "| J&F | J-Mean | J-Recall | J-Decay | F-Mean | F-Recall | F-Decay |",
            "|---:|---:|---:|---:|---:|---:|---:|",
            "| " + " | ".join(f"{g[k]:.3f}" for k in GLOBAL_KEYS) + " |",
            "",
            "| sequence | objects | frames | J&F | J | F |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for s in self.sequences:
            lines.append(
                f"| {s.name} | {len(s.objects)} | {len(s.frames)} | "
                f"{(s.j_mean + s.f_mean) / 2:.3f} | {s.j_mean:.3f} | {s.f_mean:.3f} |"
            )
        if self.agreement is not None:
            a = self.agreement
            lines += [
                "",
                f"## Agreement with {a['reference']}",
                "",
                f"Per-frame mask IoU over {a['masks']} masks (every object on every frame): "
                f"mean {a['mean_iou']:.4f}, min {a['min_iou']:.4f}, "
                f"share >= 0.99 {a['share_above_0.99']:.1%}. The reference's own J&F: "
                f"{a['reference_jf']:.3f}.",
            ]
        return "\n".join(lines) + "\n"


def evaluate_davis(
    predictions: str | os.PathLike[str],
    dataset: DavisDataset,
    max_frames: int | None = None,
    bound_th: float = BOUND_TH,
) -> DavisResult:
    """J&F of the DAVIS-layout ``predictions`` (``<seq>/<frame>.png``) on ``dataset``.

    Args:
        max_frames: evaluate only the first ``max_frames`` annotated frames of each
            sequence (the last of those is then the one left out).

    Raises:
        SamedgeError: a sequence or frame without prediction, a prediction of another size
            or with more objects than the annotation (one line).
    """
    pred_root = Path(predictions)
    if not pred_root.is_dir():
        raise SamedgeError(f"predictions folder not found: {pred_root}")
    started = time.perf_counter()
    scores = []
    for name in dataset.sequences:
        folder = pred_root / name
        if not folder.is_dir():
            raise SamedgeError(f"no predictions for sequence {name} (expected {folder}/)")
        gt_files = dataset.annotation_files(name)
        scores.append(evaluate_sequence(gt_files[:max_frames], folder, name, bound_th))
    return DavisResult(
        dataset=str(dataset.root),
        predictions=str(pred_root),
        sequences=scores,
        seconds=time.perf_counter() - started,
        max_frames=max_frames,
    )


# -- predictions ---------------------------------------------------------------------------


def davis_palette() -> list[int]:
    """The 256-colour palette of DAVIS (and PASCAL VOC) indexed masks, flat RGB."""
    palette = []
    for i in range(256):
        r = g = b = 0
        c = i
        for bit in range(8):
            r |= ((c >> 0) & 1) << (7 - bit)
            g |= ((c >> 1) & 1) << (7 - bit)
            b |= ((c >> 2) & 1) << (7 - bit)
            c >>= 3
        palette += [r, g, b]
    return palette


def encode_labels(labels: np.ndarray) -> bytes:
    """An indexed PNG of uint8 object ids with the DAVIS palette."""
    import io

    from PIL import Image

    image = Image.fromarray(np.asarray(labels, dtype=np.uint8), mode="L").convert("P")
    image.putpalette(davis_palette())
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def labels_of(masks: np.ndarray, object_ids: Sequence[int]) -> np.ndarray:
    """One uint8 label image from ``O x H x W`` masks: where objects overlap, the lower id
    wins (as SAM 2's VOS inference writes DAVIS predictions)."""
    out = np.zeros(masks.shape[1:], dtype=np.uint8)
    for k in sorted(range(len(object_ids)), key=lambda k: -object_ids[k]):
        out[masks[k]] = object_ids[k]
    return out


def track_davis(
    predictor: Any,
    dataset: DavisDataset,
    folder: Path,
    max_frames: int | None = None,
    progress: Callable[[int], Any] | None = None,
) -> None:
    """Semi-supervised tracking of every sequence with a ``VideoPredictor``: each object's
    first-frame annotation is its mask prompt on frame 0, then forward propagation over the
    first ``max_frames`` frames (all by default). Writes ``folder/<seq>/<frame>.png``
    (object ids, DAVIS palette)."""
    from ..video.io import FrameFolder

    for name in dataset.sequences:
        frames = FrameFolder(dataset.frames(name))
        gt_files = dataset.annotation_files(name)
        first = read_labels(gt_files[0], annotation=True)
        if first.shape[::-1] != frames.size:
            raise SamedgeError(
                f"sequence {name}: annotation {gt_files[0].name} is "
                f"{first.shape[1]}x{first.shape[0]}, the frames {frames.size[0]}x{frames.size[1]}"
            )
        (folder / name).mkdir(parents=True, exist_ok=True)
        state = predictor.init_state(frame_size=frames.size, num_frames=len(frames))
        image0 = frames[0]
        for obj in range(1, int(first.max()) + 1):
            if np.any(first == obj):
                predictor.add_prompt(state, 0, image0, obj, mask=first == obj)
        names = [p.stem for p in frames.files]
        stop = len(frames) if max_frames is None else min(max_frames, len(frames))
        # max_frames as the official max_frame_num_to_track: frames after the start one.
        for result in predictor.propagate(state, frames, start_frame=0, max_frames=stop - 1):
            if result.frame_index >= stop:
                break
            labels = labels_of(np.asarray(result.masks, bool), list(result.object_ids))
            path = folder / name / f"{names[result.frame_index]}.png"
            path.write_bytes(encode_labels(labels))
            if progress is not None:
                progress(1)


SUMMARY_JSON = "summary.json"
SUMMARY_MD = "summary.md"


def write_davis_report(result: DavisResult, out_dir: Path, files: Any) -> list[Path]:
    """Stage ``summary.json`` and ``summary.md`` in the :class:`~samedge.outputs.OutputSet`
    ``files`` (written when it commits)."""
    from .report import _finite

    files.add_json(out_dir / SUMMARY_JSON, _finite(result.summary_json()))
    files.add(out_dir / SUMMARY_MD, result.markdown().encode())
    return [out_dir / SUMMARY_JSON, out_dir / SUMMARY_MD]


# -- agreement with the official predictor -------------------------------------------------


def official_video_predictor(model: str, checkpoint: str | os.PathLike[str] | None = None) -> Any:
    """The official ``SAM2VideoPredictor`` with the weights an export of ``model`` was made
    from (its manifest's seed, or the checkpoint whose sha256 it records)."""
    from ..artifacts import resolve_model
    from ..errors import require_extra, require_reference
    from .fidelity import _weights_args

    require_extra("torch", "export", "--against torch")
    artifact = resolve_model(model)
    if getattr(artifact.spec, "video", None) is None:
        raise SamedgeError(
            f"{artifact.spec.name} does not track video: --against torch needs a SAM 2.1 model"
        )
    require_reference(artifact.spec, "--against torch")
    kwargs = _weights_args(artifact, checkpoint)
    from sam2.build_sam import build_sam2_video_predictor

    from ..export.build import build_model, sam2_overrides

    weights = build_model(artifact.spec, **kwargs).state_dict()
    official = build_sam2_video_predictor(
        artifact.spec.official_builder,
        device="cpu",
        mode="eval",
        hydra_overrides_extra=sam2_overrides(artifact.spec),  # the export's input size
    )
    official.load_state_dict(weights)
    return official


def _components(mask: Any) -> tuple[Any, Any]:
    """``sam2.utils.misc.get_connected_components`` without its CUDA extension: 8-connected
    labels of ``mask`` ``(N, 1, H, W)`` and each pixel's component area, with OpenCV (the
    labelling samedge's hole filling uses)."""
    import torch

    labels = np.zeros(mask.shape, np.int32)
    areas = np.zeros(mask.shape, np.int32)
    for i, plane in enumerate(mask.to(torch.uint8).cpu().numpy()[:, 0]):
        _, lab, stats, _ = cv2.connectedComponentsWithStats(plane, connectivity=8)
        labels[i, 0] = lab
        areas[i, 0] = np.where(lab > 0, stats[lab, cv2.CC_STAT_AREA], 0)
    return torch.from_numpy(labels), torch.from_numpy(areas)


@contextlib.contextmanager
def _official_hole_filling() -> Iterator[None]:
    """The official predictor fills small holes with its compiled extension and silently
    skips it where the extension is not built (a CPU install): give it OpenCV's labelling
    meanwhile, so that the reference is the official algorithm, not one without a step."""
    import importlib.util

    import sam2.utils.misc as misc

    if importlib.util.find_spec("sam2._C") is not None:
        yield
        return
    saved = misc.get_connected_components
    misc.get_connected_components = _components
    try:
        yield
    finally:
        misc.get_connected_components = saved


def against_torch(
    model: str,
    dataset: DavisDataset,
    predictions: Path,
    max_frames: int | None = None,
    progress: bool = False,
    checkpoint: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """Track every sequence with the official ``SAM2VideoPredictor`` as :func:`track_davis`
    does with samedge's (first-frame annotations as mask prompts, forward), and compare.

    Returns:
        ``reference``, the per-frame mask IoU between the two predictions over every object
        and tracked frame (:func:`samedge.eval.metrics.fidelity_stats`: ``masks``,
        ``mean_iou``, ``p1_iou``, ``min_iou``, shares above 0.9 / 0.95 / 0.99), the
        reference's own ``reference_jf`` and per sequence its mean IoU.
    """
    import tempfile

    import torch
    from tqdm import tqdm

    from .metrics import fidelity_stats

    official = official_video_predictor(model, checkpoint)
    ious: list[float] = []
    per_sequence: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="samedge-davis-ref-") as tmp:
        ref_root = Path(tmp)
        for name in dataset.sequences:
            gt_files = dataset.annotation_files(name)
            first = read_labels(gt_files[0], annotation=True)
            frames_dir = dataset.frames(name)
            count = len(list(frames_dir.glob("*.jpg")))
            stop = count if max_frames is None else min(max_frames, count)
            (ref_root / name).mkdir()
            seq_ious = []
            with torch.inference_mode(), _official_hole_filling():
                state = official.init_state(video_path=str(frames_dir))
                for obj in range(1, int(first.max()) + 1):
                    if np.any(first == obj):
                        official.add_new_mask(state, frame_idx=0, obj_id=obj, mask=first == obj)
                names = [p.stem for p in sorted(frames_dir.glob("*.jpg"))]
                results = official.propagate_in_video(
                    state, start_frame_idx=0, max_frame_num_to_track=stop - 1
                )
                for index, obj_ids, logits in tqdm(
                    results, total=stop, desc=f"torch {name}", disable=not progress, leave=False
                ):
                    masks = (logits[:, 0] > 0).cpu().numpy()
                    ids = [int(i) for i in obj_ids]
                    ref = labels_of(masks, ids)
                    (ref_root / name / f"{names[index]}.png").write_bytes(encode_labels(ref))
                    ours = read_labels(predictions / name / f"{names[index]}.png", annotation=False)
                    for obj in ids:
                        seq_ious.append(jaccard(ours == obj, ref == obj))
            ious += seq_ious
            per_sequence[name] = float(np.mean(seq_ious))
        reference = evaluate_davis(ref_root, dataset, max_frames=max_frames)
    return {
        "reference": "torch (official SAM2VideoPredictor, same weights)",
        **fidelity_stats(ious),
        "masks": len(ious),
        "reference_jf": reference.means()["J&F-Mean"],
        "reference_global": reference.means(),
        "sequences_mean_iou": per_sequence,
    }
