"""The Gradio interface of ``samedge web`` (needs ``pip install 'samedge[web]'``).

Tabs: **Point** (clicks add positive or negative points), **Box** (two clicks per box, one
mask per box), **Box + Points** (one box and any points, one object), **Everything**
(segment-everything), **Gaze** (the object a person looks at, from the webcam stream or
one image; see :mod:`samedge.web.gaze_tab`) and **Video** (rotoscoping a clip with SAM 2.1;
see :mod:`samedge.web.video_tab`). The image is encoded once per model (see
:mod:`samedge.web.cache`); every click only runs the decoder.

All work is done by :class:`samedge.web.engine.Engine`; this module only maps widgets to
its calls and turns user errors into a one-line message in the browser.
"""

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import gradio as gr

from ..errors import SamedgeError
from .engine import Choice, Engine, EverythingParams
from .gaze import GazeService
from .gaze_tab import gaze_tab
from .state import LoadedImage, Prompts
from .ui import fraction_slider, upload_fields, user_errors
from .uploads import MB
from .video import VideoService
from .video_tab import video_tab

INTRO = """# samedge — Segment Anything on ordinary machines
Upload an image (or paste one, take a webcam snapshot or pick an example), then click the
picture in a tab. The image is encoded **once** per model; each click only runs the fast
mask decoder, and every action shows its encode and decode time."""

TABS = (
    (
        "point",
        "Point",
        "Click the object: each click adds a point. Choose **positive** (part of the object) "
        "or **negative** (not part of it) for the next click. **Auto** places five positive "
        "clicks on the most salient object; undo, add or clear them like your own.",
        ("positive", "negative"),
    ),
    (
        "box",
        "Box",
        "Draw boxes with **two clicks** each: one corner, then the opposite corner. Every box "
        "is a separate object with its own mask.",
        ("corner",),
    ),
    (
        "box_points",
        "Box + Points",
        "One object: at most **one box** (two clicks: corner, opposite corner; a new box "
        "replaces the old one) plus any number of positive / negative points.",
        ("corner", "positive", "negative"),
    ),
)

KIND_LABELS = {"positive": "positive point", "negative": "negative point", "corner": "box corner"}

CSS = """
.samedge-canvas img { cursor: crosshair; }
"""


@dataclass
class _Tab:
    mode: str
    prompts: Any
    kind: Any
    canvas: Any
    latency: Any
    mask_file: Any
    json_file: Any

    @property
    def outputs(self) -> list[Any]:
        return [self.prompts, self.canvas, self.latency, self.mask_file, self.json_file]


def _path(path: "os.PathLike[str] | None") -> str | None:
    return None if path is None else os.fspath(path)


def build_app(
    engine: Engine,
    examples: Sequence[str | os.PathLike[str]] = (),
    model: str | None = None,
    provider: str = "cpu",
    gaze: GazeService | None = None,
    video: VideoService | None = None,
) -> gr.Blocks:
    """The Gradio Blocks app for ``engine``.

    Args:
        engine: does the work; its catalog fills the model, precision and provider lists.
        examples: image files offered as examples (chosen by the operator, not the browser).
        model: label of the model selected at start (default: the catalog's first).
        provider: provider selected at start.
        gaze: runs the Gaze tab (default: auxiliary models from ``$SAMEDGE_HOME/gaze``).
        video: runs the Video tab (default: the engine's temporary folder and upload limit).
    """
    catalog = engine.catalog
    model = model or catalog.labels[0]
    if provider not in catalog.providers:
        provider = catalog.providers[0]
    tabs: list[_Tab] = []

    with gr.Blocks(title="samedge", delete_cache=(600, 3600), analytics_enabled=False) as demo:
        image_state = gr.State(None)
        gr.Markdown(INTRO)
        with gr.Row():
            model_dd = gr.Dropdown(catalog.labels, value=model, label="Model", elem_id="model")
            precision_dd = gr.Dropdown(
                catalog.precisions(model),
                value=catalog.precisions(model)[0],
                label="Precision",
                elem_id="precision",
            )
            provider_dd = gr.Dropdown(
                catalog.providers, value=provider, label="Execution provider", elem_id="provider"
            )
        with gr.Row():
            with gr.Column(scale=2):
                source = gr.Image(
                    label="Image",
                    sources=["upload", "webcam", "clipboard"],
                    type="filepath",
                    image_mode=None,
                    elem_id="source-image",
                    height=320,
                )
                remove = gr.Button("Remove image", elem_id="remove-image")
                status = gr.Markdown("No image yet.", elem_id="status")
                if examples:
                    gr.Examples(
                        [[os.fspath(p)] for p in examples], inputs=[source], label="Examples"
                    )
            with gr.Column(scale=3), gr.Tabs():
                for mode, title, help_text, kinds in TABS:
                    with gr.Tab(title, id=mode, elem_id=f"tab-{mode}"):
                        gr.Markdown(help_text)
                        kind: gr.Radio | gr.State
                        if len(kinds) > 1:
                            kind = gr.Radio(
                                [(KIND_LABELS[k], k) for k in kinds],
                                value=kinds[0],
                                label="The next click adds a",
                                elem_id=f"kind-{mode}",
                            )
                        else:
                            kind = gr.State(kinds[0])
                        canvas = gr.Image(
                            label="Click here",
                            interactive=False,
                            format="png",
                            elem_id=f"canvas-{mode}",
                            elem_classes=["samedge-canvas"],
                            buttons=["download", "fullscreen"],
                        )
                        with gr.Row():
                            auto = (
                                gr.Button(
                                    "Auto (salient object)",
                                    elem_id=f"auto-{mode}",
                                    variant="primary",
                                )
                                if mode == "point"
                                else None
                            )
                            undo = gr.Button("Undo last prompt", elem_id=f"undo-{mode}")
                            clear = gr.Button("Clear prompts", elem_id=f"clear-{mode}")
                        latency = gr.Markdown(elem_id=f"latency-{mode}")
                        with gr.Row():
                            mask_file = gr.File(
                                label="Mask (PNG)", interactive=False, elem_id=f"mask-{mode}"
                            )
                            json_file = gr.File(
                                label="Result (JSON, COCO RLE)",
                                interactive=False,
                                elem_id=f"json-{mode}",
                            )
                        tab = _Tab(
                            mode,
                            gr.State(Prompts(mode)),  # type: ignore[arg-type]
                            kind,
                            canvas,
                            latency,
                            mask_file,
                            json_file,
                        )
                        tabs.append(tab)
                        _wire_tab(
                            engine,
                            tab,
                            undo,
                            clear,
                            image_state,
                            model_dd,
                            precision_dd,
                            provider_dd,
                            auto,
                        )
                with gr.Tab("Everything", id="everything", elem_id="tab-everything"):
                    every = _everything_tab(
                        engine, model, image_state, model_dd, precision_dd, provider_dd
                    )
                with gr.Tab("Gaze", id="gaze", elem_id="tab-gaze"):
                    gaze_tab(gaze or GazeService(engine), provider_dd)
                with gr.Tab("Video", id="video", elem_id="tab-video"):
                    video_tab(
                        video or VideoService(engine), model_dd, precision_dd, provider_dd, demo
                    )

        settings = [model_dd, precision_dd, provider_dd]
        tab_outputs = [o for t in tabs for o in t.outputs]
        every_outputs = [every["canvas"], every["latency"], every["mask"], every["json"]]

        def cleared(image: LoadedImage | None) -> list[Any]:
            shown = None if image is None else image.display
            values: list[Any] = []
            for t in tabs:
                values += [Prompts(t.mode), shown, "", None, None]  # type: ignore[arg-type]
            return [*values, shown, "", None, None]

        def on_source(value: Any, m: str, p: str, prov: str) -> list[Any]:
            path, name = upload_fields(value)
            if path is None:
                return [None, "No image yet.", *cleared(None)]
            with user_errors():
                image = engine.load(path, name)
                message = engine.prepare(image, Choice(m, p, prov))
            return [image, message, *cleared(image)]

        source.change(
            on_source,
            inputs=[source, *settings],
            outputs=[image_state, status, *tab_outputs, *every_outputs],
            preprocess=False,
            show_progress="minimal",
        )

        def on_remove() -> list[Any]:
            return [None, None, "No image yet.", *cleared(None)]

        remove.click(on_remove, outputs=[source, image_state, status, *tab_outputs, *every_outputs])

        def on_model(label: str) -> Any:
            with user_errors():
                choices = catalog.precisions(label)
                if not choices:
                    raise SamedgeError(f"model '{label}' is not offered by this server")
            return gr.Dropdown(choices=choices, value=choices[0])

        def on_settings(
            image: LoadedImage | None,
            m: str,
            p: str,
            prov: str,
            prompts_a: Prompts,
            prompts_b: Prompts,
            prompts_c: Prompts,
            request: gr.Request,
        ) -> list[Any]:
            choice = Choice(m, p, prov)
            values: list[Any] = []
            with user_errors():
                if image is None:
                    entry, _, predictor = engine.model(choice)
                    message = f"No image yet · {engine.describe(entry, predictor)}"
                    return [message, *[gr.skip()] * (len(tab_outputs) + len(every_outputs))]
                message = engine.prepare(image, choice)
                for prompts in (prompts_a, prompts_b, prompts_c):
                    result = engine.segment(image, prompts, choice, request.session_hash or "")
                    values += [
                        prompts,
                        result.canvas,
                        result.message,
                        _path(result.mask_path),
                        _path(result.json_path),
                    ]
            return [message, *values, image.display, "", None, None]

        settings_io: dict[str, Any] = dict(
            inputs=[image_state, *settings, *(t.prompts for t in tabs)],
            outputs=[status, *tab_outputs, *every_outputs],
        )
        model_dd.input(on_model, inputs=[model_dd], outputs=[precision_dd]).then(
            on_settings, **settings_io
        )
        precision_dd.input(on_settings, **settings_io)
        provider_dd.input(on_settings, **settings_io)
    demo.queue(default_concurrency_limit=1)
    return demo


def _wire_tab(
    engine: Engine,
    tab: _Tab,
    undo: Any,
    clear: Any,
    image_state: Any,
    model_dd: Any,
    precision_dd: Any,
    provider_dd: Any,
    auto: Any = None,
) -> None:
    settings = [model_dd, precision_dd, provider_dd]

    def show(
        image: LoadedImage | None, prompts: Prompts, choice: Choice, session: str
    ) -> list[Any]:
        result = engine.segment(image, prompts, choice, session)
        return [
            prompts,
            result.canvas,
            result.message,
            _path(result.mask_path),
            _path(result.json_path),
        ]

    def on_click(
        image: LoadedImage | None,
        prompts: Prompts,
        kind: str,
        m: str,
        p: str,
        prov: str,
        evt: gr.SelectData,
        request: gr.Request,
    ) -> list[Any]:
        with user_errors():
            if image is None:
                raise SamedgeError("upload an image (or pick an example) first")
            index = evt.index
            try:
                x, y = image.to_original(float(index[0]), float(index[1]))
            except (TypeError, ValueError, IndexError, KeyError):
                raise SamedgeError("click inside the picture") from None
            return show(
                image, prompts.add(kind, x, y), Choice(m, p, prov), request.session_hash or ""
            )

    def on_undo(
        image: LoadedImage | None, prompts: Prompts, m: str, p: str, prov: str, request: gr.Request
    ) -> list[Any]:
        with user_errors():
            if image is None:
                return [prompts.clear(), None, "", None, None]
            return show(image, prompts.undo(), Choice(m, p, prov), request.session_hash or "")

    def on_clear(
        image: LoadedImage | None, prompts: Prompts, m: str, p: str, prov: str, request: gr.Request
    ) -> list[Any]:
        with user_errors():
            if image is None:
                return [prompts.clear(), None, "", None, None]
            return show(image, prompts.clear(), Choice(m, p, prov), request.session_hash or "")

    def on_auto(
        image: LoadedImage | None, prompts: Prompts, m: str, p: str, prov: str, request: gr.Request
    ) -> list[Any]:
        with user_errors():
            clicks = engine.auto_prompts(image, prompts)
            return show(image, clicks, Choice(m, p, prov), request.session_hash or "")

    if auto is not None:
        auto.click(on_auto, inputs=[image_state, tab.prompts, *settings], outputs=tab.outputs)
    tab.canvas.select(
        on_click,
        inputs=[image_state, tab.prompts, tab.kind, *settings],
        outputs=tab.outputs,
        show_progress="minimal",
        trigger_mode="multiple",  # quick successive clicks all count, in order
    )
    undo.click(on_undo, inputs=[image_state, tab.prompts, *settings], outputs=tab.outputs)
    clear.click(on_clear, inputs=[image_state, tab.prompts, *settings], outputs=tab.outputs)


def _everything_tab(
    engine: Engine,
    model: str,
    image_state: Any,
    model_dd: Any,
    precision_dd: Any,
    provider_dd: Any,
) -> dict[str, Any]:
    # The sliders start at the official defaults of the selected model's family and move
    # to the new model's when the model changes (SAM and SAM 2 differ in pred_iou_thresh).
    defaults = engine.everything_defaults(model)
    # EverythingParams.defaults sets every field (the model family's official values).
    assert defaults.pred_iou_thresh is not None
    assert defaults.stability_score_thresh is not None
    assert defaults.box_nms_thresh is not None
    gr.Markdown("Segment every object: a grid of point prompts, filtered and de-duplicated.")
    with gr.Row():
        pps = gr.Slider(
            4,
            64,
            value=defaults.points_per_side,
            step=1,
            label="Points per side",
            elem_id="everything-points",
        )
        iou = fraction_slider(defaults.pred_iou_thresh, "IoU threshold", "everything-iou")
    with gr.Row():
        stab = fraction_slider(
            defaults.stability_score_thresh, "Stability threshold", "everything-stability"
        )
        nms = fraction_slider(defaults.box_nms_thresh, "Box NMS threshold", "everything-nms")
    run = gr.Button("Segment everything", variant="primary", elem_id="run-everything")
    canvas = gr.Image(
        label="All masks",
        interactive=False,
        format="png",
        elem_id="canvas-everything",
        buttons=["download", "fullscreen"],
    )
    latency = gr.Markdown(elem_id="latency-everything")
    with gr.Row():
        mask_file = gr.File(
            label="Masks (PNG, pixel = mask index)", interactive=False, elem_id="mask-everything"
        )
        json_file = gr.File(
            label="Result (JSON, COCO RLE)", interactive=False, elem_id="json-everything"
        )

    def on_run(
        image: LoadedImage | None,
        m: str,
        p: str,
        prov: str,
        points_per_side: float,
        pred_iou: float,
        stability: float,
        box_nms: float,
        request: gr.Request,
    ) -> list[Any]:
        with user_errors():
            params = EverythingParams(int(points_per_side), pred_iou, stability, box_nms)
            result = engine.everything(
                image, params, Choice(m, p, prov), request.session_hash or ""
            )
            return [result.canvas, result.message, _path(result.mask_path), _path(result.json_path)]

    run.click(
        on_run,
        inputs=[image_state, model_dd, precision_dd, provider_dd, pps, iou, stab, nms],
        outputs=[canvas, latency, mask_file, json_file],
    )

    def on_model(label: str) -> list[Any]:
        with user_errors():
            params = engine.everything_defaults(label)
        return [
            params.points_per_side,
            params.pred_iou_thresh,
            params.stability_score_thresh,
            params.box_nms_thresh,
        ]

    model_dd.input(on_model, inputs=[model_dd], outputs=[pps, iou, stab, nms])
    return {"canvas": canvas, "latency": latency, "mask": mask_file, "json": json_file}


def launch(
    demo: gr.Blocks,
    host: str = "127.0.0.1",
    port: int = 7860,
    max_upload_mb: float = 20.0,
    block: bool = True,
) -> Any:
    """Serve ``demo`` on ``host:port`` with Gradio's upload limit; nothing else is served
    but the app and the files it creates (no ``allowed_paths``, no share link, no API page)."""
    return demo.launch(
        server_name=host,
        server_port=port,
        share=False,
        inbrowser=False,
        prevent_thread_lock=not block,
        quiet=True,
        max_file_size=int(max_upload_mb * MB),
        allowed_paths=[],
        footer_links=["gradio", "settings"],
        show_error=False,
        enable_monitoring=False,
        mcp_server=False,
        ssr_mode=False,
        css=CSS,
        theme=_theme(),
    )


def _theme() -> Any:
    """Gradio's default look with local fonts only: the page loads nothing from elsewhere."""
    return gr.themes.Default(
        font=["ui-sans-serif", "system-ui", "sans-serif"],
        font_mono=["ui-monospace", "Consolas", "monospace"],
    )
