"""Build a :class:`~samedge.gaze.pipeline.GazePipeline` from model names and paths."""

from __future__ import annotations

import os
from collections.abc import Sequence

from ..errors import SamedgeError
from .models import resolve_aux_model
from .pipeline import GazeConfig, GazePipeline

PathLike = str | os.PathLike[str]


def build_pipeline(
    model: PathLike,
    face: str = "yunet",
    face_model: PathLike | None = None,
    gaze: str = "openvino",
    gaze_models: PathLike | None = None,
    l2cs_model: PathLike | None = None,
    detector_model: PathLike | None = None,
    depth_model: PathLike | None = None,
    backend: str = "ort",
    threads: int | None = None,
    providers: str | Sequence[str] | None = None,
    config: GazeConfig = GazeConfig(),  # noqa: B008 - frozen dataclass
) -> GazePipeline:
    """A ready pipeline.

    Args:
        model: SAM model, registry name or exported folder (see ``samedge.Predictor``).
        face: ``yunet`` or ``ultraface``; ``face_model`` its file (default: the cache).
        gaze: ``openvino`` (the three Open Model Zoo networks; ``gaze_models`` is a folder
            holding the ``.xml``/``.bin`` files or an OMZ download tree) or ``l2cs``
            (``l2cs_model``, an ONNX file).
        detector_model: YOLOX-style ONNX (default: ``yolox_nano`` from the cache); unused in
            ``points`` mode.
        depth_model: optional Depth-Anything-style ONNX; none turns the depth filter off.
        backend: ``ort`` or ``openvino`` for the ONNX stages (face, detector, depth, L2CS).
        threads: threads per network; providers: ONNX Runtime providers of the SAM model.
    """
    from ..runtime.predictor import Predictor
    from .depth import DepthAnythingEstimator
    from .detect import YoloxDetector
    from .face import load_face_detector
    from .gaze import L2CSGazeEstimator, OpenVINOGazeEstimator

    face_detector = load_face_detector(face, resolve_aux_model(face, face_model), backend, threads)
    if gaze == "openvino":
        estimator = OpenVINOGazeEstimator(
            resolve_aux_model("landmarks-regression-retail-0009", gaze_models),
            resolve_aux_model("head-pose-estimation-adas-0001", gaze_models),
            resolve_aux_model("gaze-estimation-adas-0002", gaze_models),
            threads=threads,
        )
    elif gaze == "l2cs":
        if l2cs_model is None:
            raise SamedgeError("--gaze l2cs needs --l2cs-model PATH (an L2CS-Net ONNX export)")
        estimator = L2CSGazeEstimator(l2cs_model, backend, threads)
    else:
        raise SamedgeError(f"unknown gaze estimator '{gaze}': use openvino or l2cs")
    detector = None
    if config.mode == "boxes":
        detector = YoloxDetector(resolve_aux_model("yolox_nano", detector_model), backend, threads)
    depth = None if depth_model is None else DepthAnythingEstimator(depth_model, backend, threads)
    predictor = Predictor.from_pretrained(model, providers=providers, threads=threads)
    return GazePipeline(predictor, face_detector, estimator, detector, depth, config)
