"""Build a :class:`~samedge.gaze.pipeline.GazePipeline` from model names and paths."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..errors import ModelNotFoundError, SamedgeError
from .backend import default_backend
from .models import check_io, resolve_aux_model
from .pipeline import GazeConfig, GazePipeline

if TYPE_CHECKING:
    from ..runtime.predictor import Predictor
    from ..runtime.providers import ProviderSettings

PathLike = str | os.PathLike[str]

#: The SAM models gaze uses when none is given, in order of preference: EfficientViT-SAM L0
#: (what GazeSAM segments with: the real-time choice), else SAM 2.1 tiny.
DEFAULT_MODELS = ("efficientvit_sam_l0", "sam2.1_hiera_tiny")


def default_model(exported: Sequence[str] | None = None) -> tuple[str, str | None]:
    """The SAM model gaze uses when none is given: the first of :data:`DEFAULT_MODELS`
    that is exported (``exported``: registry names available, default: those in the
    cache, ``$SAMEDGE_HOME/models``), and a one-line note when it is not the first.

    Raises:
        ModelNotFoundError: none of them is available (the message names the export).
    """
    if exported is None:
        from ..artifacts import default_model_folder
        from ..manifest import MANIFEST_NAME

        exported = [
            n for n in DEFAULT_MODELS if (default_model_folder(n) / MANIFEST_NAME).is_file()
        ]
    preferred = DEFAULT_MODELS[0]
    for name in DEFAULT_MODELS:
        if name in exported:
            if name == preferred:
                return name, None
            note = (
                f"{preferred}, the real-time choice, is not exported: run 'samedge export "
                f"{preferred}'"
            )
            return name, note
    raise ModelNotFoundError(
        f"no SAM model for gaze: run 'samedge export {preferred}' (needs pip install "
        f"'samedge[export]') or pass --model NAME_or_DIR"
    )


def build_pipeline(
    model: PathLike | Predictor,
    face: str = "yunet",
    face_model: PathLike | None = None,
    gaze: str = "openvino",
    gaze_models: PathLike | None = None,
    l2cs_model: PathLike | None = None,
    detector_model: PathLike | None = None,
    depth_model: PathLike | None = None,
    backend: str | None = None,
    threads: int | None = None,
    providers: str | Sequence[str] | None = None,
    config: GazeConfig = GazeConfig(),  # noqa: B008 - frozen dataclass
    provider_settings: ProviderSettings | None = None,
) -> GazePipeline:
    """A ready pipeline; every registry network is checked against its I/O contract
    (:func:`samedge.gaze.models.check_io`) once loaded.

    Args:
        model: SAM model, registry name or exported folder (see ``samedge.Predictor``), or
            a loaded :class:`~samedge.runtime.predictor.Predictor` to share.
        face: ``yunet`` or ``ultraface``; ``face_model`` its file (default: the cache).
        gaze: ``openvino`` (the three Open Model Zoo networks; ``gaze_models`` is a folder
            holding the ``.xml``/``.bin`` files or an OMZ download tree) or ``l2cs``
            (``l2cs_model``, an ONNX file).
        detector_model: YOLOX-style ONNX (default: ``yolox_nano`` from the cache); unused in
            ``points`` mode.
        depth_model: optional Depth-Anything-style ONNX; none turns the depth filter off.
        backend: ``ort`` or ``openvino`` for the ONNX stages (face, detector, depth, L2CS);
            ``None``: :func:`samedge.gaze.backend.default_backend`.
        threads: threads per network; providers: ONNX Runtime providers of the SAM model,
            ``provider_settings`` their options (e.g. ``openvino_precision="bf16"``).
    """
    from ..runtime.predictor import Predictor
    from .depth import DepthAnythingEstimator
    from .detect import YoloxDetector
    from .face import load_face_detector
    from .gaze import L2CSGazeEstimator, OpenVINOGazeEstimator

    backend = backend or default_backend()

    face_detector = load_face_detector(face, resolve_aux_model(face, face_model), backend, threads)
    check_io(face, face_detector.net)
    estimator: OpenVINOGazeEstimator | L2CSGazeEstimator
    if gaze == "openvino":
        estimator = OpenVINOGazeEstimator(
            resolve_aux_model("landmarks-regression-retail-0009", gaze_models),
            resolve_aux_model("head-pose-estimation-adas-0001", gaze_models),
            resolve_aux_model("gaze-estimation-adas-0002", gaze_models),
            threads=threads,
        )
        check_io("landmarks-regression-retail-0009", estimator.landmarks_net)
        check_io("head-pose-estimation-adas-0001", estimator.head_pose_net)
        check_io("gaze-estimation-adas-0002", estimator.gaze_net)
    elif gaze == "l2cs":
        if l2cs_model is None:
            raise SamedgeError("--gaze l2cs needs --l2cs-model PATH (an L2CS-Net ONNX export)")
        estimator = L2CSGazeEstimator(l2cs_model, backend, threads)
    else:
        raise SamedgeError(f"unknown gaze estimator '{gaze}': use openvino or l2cs")
    detector = None
    if config.mode == "boxes":
        detector = YoloxDetector(resolve_aux_model("yolox_nano", detector_model), backend, threads)
        check_io("yolox_nano", detector.net)
    depth = None if depth_model is None else DepthAnythingEstimator(depth_model, backend, threads)
    if isinstance(model, Predictor):
        predictor = model
    else:
        predictor = Predictor.from_pretrained(
            model, providers=providers, threads=threads, provider_settings=provider_settings
        )
    # Both modes decode their candidates (boxes, or points on the gaze ray) in one call.
    predictor.open_parallel_decoding()
    return GazePipeline(predictor, face_detector, estimator, detector, depth, config)


def describe_runtimes(pipeline: GazePipeline) -> str:
    """What each network of ``pipeline`` runs on, in one line (gaze: always OpenVINO for
    the Open Model Zoo networks; SAM: the predictor's providers)."""
    names = {"ort": "ONNX Runtime", "openvino": "OpenVINO"}

    def where(stage: object) -> str:
        net = getattr(stage, "net", None)  # a Network; a user's own stage may have none
        return type(stage).__name__ if net is None else names[net.backend]

    parts = [f"face {where(pipeline.face_detector)}"]
    if pipeline.object_detector is not None:
        parts.append(f"objects {where(pipeline.object_detector)}")
    sam = pipeline.predictor.providers
    parts.append("SAM " + ", ".join(f"{graph} {place}" for graph, place in sam.items()))
    return "; ".join(parts)
