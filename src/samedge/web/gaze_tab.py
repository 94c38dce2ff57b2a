"""The **Gaze** tab of ``samedge web``: the webcam stream (or one image) through the gaze
pipeline, shown annotated with each stage's time. The work is done by
:class:`samedge.web.gaze.GazeService`; this module only lays out the widgets and maps them
to its calls. Errors become one line in the tab's status, never a stack trace: a stream
sends frames several times a second, and a pop-up per frame would drown the page.
"""

from __future__ import annotations

import logging
from typing import Any

import gradio as gr

from ..errors import SamedgeError
from .engine import Choice
from .gaze import GazeService, GazeSettings
from .models import ModelCatalog
from .ui import UNEXPECTED, fraction_slider, upload_fields

log = logging.getLogger(__name__)

#: Seconds between the frames the browser offers; it sends the next one only when the
#: previous answer is back, so a slow frame lowers the rate instead of queueing frames.
STREAM_EVERY_S = 0.2
#: A stream stops after this long (press the camera button again to continue).
STREAM_TIME_LIMIT_S = 600

HELP = """Segment what a person looks at: face → gaze (Open Model Zoo networks on OpenVINO)
→ objects (YOLOX-Nano) → the box the gaze ray hits → SAM. Allow the camera and start the
stream, or upload one image. A frame with no object on the gaze ray costs tens of
milliseconds; a frame with one runs the SAM image encoder, about **1.4 s** for
efficientvit_sam_l0 (the default here when exported) and **2 s** for sam2.1_hiera_tiny on a
2-core CPU, so expect under 1 frame/s while something is being segmented. Frames that
arrive while a frame is being processed are skipped."""

MODES = [("detector boxes (YOLOX-Nano)", "boxes"), ("points on the gaze ray", "points")]


class GazeHandlers:
    """The tab's event handlers; plain methods, callable without a running server.

    Each returns ``[picture, status]`` for the annotated image and the status line
    (``gr.skip()`` leaves a widget as it is).
    """

    def __init__(self, service: GazeService) -> None:
        self.service = service

    def on_frame(
        self,
        frame: Any,
        model: str,
        precision: str,
        provider: str,
        mode: str,
        min_iou: float,
        request: gr.Request | None = None,
    ) -> list[Any]:
        """One webcam frame (``H x W x 3`` uint8 RGB from the streaming image)."""
        if frame is None:
            return [gr.skip(), gr.skip()]
        session = getattr(request, "session_hash", None) or ""
        try:
            settings = GazeSettings(mode, float(min_iou))
            shown = self.service.frame(frame, Choice(model, precision, provider), settings, session)
        except SamedgeError as exc:
            return [gr.skip(), _error(exc)]
        except Exception:
            log.exception("samedge web: gaze frame failed")
            return [gr.skip(), _error(UNEXPECTED)]
        if shown.dropped:
            return [gr.skip(), gr.skip()]
        return [shown.picture, shown.message]

    def on_image(
        self,
        value: Any,
        model: str,
        precision: str,
        provider: str,
        mode: str,
        min_iou: float,
    ) -> list[Any]:
        """An uploaded image (the unprocessed ``gr.Image`` payload: it is checked by the
        engine like every upload)."""
        path, name = upload_fields(value)
        if path is None:
            return [None, ""]
        try:
            settings = GazeSettings(mode, float(min_iou))
            shown = self.service.image(path, name, Choice(model, precision, provider), settings)
        except SamedgeError as exc:
            return [None, _error(exc)]
        except Exception:
            log.exception("samedge web: gaze image failed")
            return [None, _error(UNEXPECTED)]
        return [shown.picture, shown.message]


def _error(exc: object) -> str:
    return f"**Error:** {exc}"


def default_label(catalog: ModelCatalog) -> tuple[str, str | None]:
    """The model the tab starts with, and a one-line note when it is not the real-time one:
    the first of :data:`samedge.gaze.factory.DEFAULT_MODELS` the server offers
    (EfficientViT-SAM L0, else SAM 2.1 tiny), else the catalog's first model."""
    from ..errors import ModelNotFoundError
    from ..gaze.factory import DEFAULT_MODELS, default_model

    try:
        name, note = default_model([e.model for e in catalog.entries])
    except ModelNotFoundError:
        note = f"{DEFAULT_MODELS[0]}, the real-time choice, is not offered by this server"
        return catalog.labels[0], note
    label = next(e.label for e in catalog.entries if e.model == name)
    return label, note


def gaze_tab(service: GazeService, provider_dd: Any) -> Any:
    """Lay out the tab inside the current ``gr.Tab`` and wire its events; returns the
    :class:`GazeHandlers` it uses.

    The tab has its own model and precision choice, starting at :func:`default_label`
    (real time wants a different model than clicking on a photo); the provider is the
    page's ``provider_dd``.
    """
    handlers = GazeHandlers(service)
    defaults = GazeSettings()
    catalog = service.engine.catalog
    label, note = default_label(catalog)
    gr.Markdown(HELP)
    with gr.Row():
        model_dd = gr.Dropdown(
            catalog.labels, value=label, label="SAM model for gaze", elem_id="gaze-model"
        )
        precision_dd = gr.Dropdown(
            catalog.precisions(label),
            value=catalog.precisions(label)[0],
            label="Precision",
            elem_id="gaze-precision",
        )
    model_dd.change(
        lambda m: gr.update(choices=catalog.precisions(m), value=catalog.precisions(m)[0]),
        inputs=[model_dd],
        outputs=[precision_dd],
    )
    with gr.Row():
        camera = gr.Image(
            label="Webcam",
            sources=["webcam"],
            streaming=True,
            type="numpy",
            # The frames are processed as the camera sees them, so the preview is not
            # mirrored either: it matches the annotated output.
            webcam_options=gr.WebcamOptions(mirror=False),
            elem_id="gaze-camera",
            height=280,
        )
        upload = gr.Image(
            label="Or one image",
            sources=["upload"],
            type="filepath",
            image_mode=None,
            elem_id="gaze-upload",
            height=280,
        )
    with gr.Row():
        mode = gr.Radio(MODES, value=defaults.mode, label="Prompts for SAM", elem_id="gaze-mode")
        min_iou = fraction_slider(
            defaults.min_iou, "Minimum predicted IoU of the chosen mask", "gaze-min-iou", step=0.05
        )
    picture = gr.Image(
        label="Mask, chosen box (red), face (green), gaze (yellow)",
        interactive=False,
        format="jpeg",
        elem_id="gaze-output",
        buttons=["download", "fullscreen"],
    )
    start = "Start the camera or upload an image."
    status = gr.Markdown(f"{start} ({note})" if note else start, elem_id="gaze-status")
    settings = [model_dd, precision_dd, provider_dd, mode, min_iou]
    camera.stream(
        handlers.on_frame,
        inputs=[camera, *settings],
        outputs=[picture, status],
        stream_every=STREAM_EVERY_S,
        time_limit=STREAM_TIME_LIMIT_S,
        # Frames are dropped in the service, not queued: a busy pipeline answers at once.
        concurrency_limit=None,
        show_progress="hidden",
    )
    upload.upload(
        handlers.on_image,
        inputs=[upload, *settings],
        outputs=[picture, status],
        preprocess=False,
        show_progress="minimal",
    )
    return handlers
