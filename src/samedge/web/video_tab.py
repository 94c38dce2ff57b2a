"""The **Video** tab of ``samedge web``: rotoscoping a clip with SAM 2.1.

Upload a clip, click an object on any frame (positive / negative points, or a box with two
clicks), **Propagate** it through the clip with a progress bar and a Stop button, scrub the
frames to check the result, correct a frame where it drifts and propagate again (only the
frames from the correction on are tracked again), then download the masks, an overlay
video, a matte for compositing and the JSON of ``samedge track``.

The work is done by :class:`samedge.web.video.VideoService`; this module lays out the
widgets and maps them to its calls. A user error is one line (a pop-up), never a trace.
"""

from __future__ import annotations

import contextlib
import html
import logging
import os
from collections.abc import Iterator
from typing import Any

import gradio as gr

from ..artifacts import export_name, resolve_model
from ..errors import SamedgeError
from .engine import Choice
from .ui import UNEXPECTED, upload_fields, user_errors
from .video import DIRECTIONS, PropagationProgress, VideoService, VideoSession

log = logging.getLogger(__name__)

HELP = """Rotoscope a clip: upload a short video, pick the **object** to prompt and click it on
any frame (**positive** / **negative** points, or a **box** with two clicks: one corner, then
the opposite one). **Propagate** follows every object through the clip (SAM 2.1 video
models); scrub the **frame** slider to check it, click again where it drifts and propagate
again: only the frames from that correction on are tracked again. Each frame costs about one
SAM 2.1 image encoding (1-2 s for Hiera-T on a 2-core CPU)."""

KINDS = [("positive point", "positive"), ("negative point", "negative"), ("box corner", "corner")]
DIRECTION_LABELS = {"forward": "forward", "backward": "backward", "both": "both ways"}


def _session(request: gr.Request | None) -> str:
    return getattr(request, "session_hash", None) or ""


def objects_html(video: VideoSession | None) -> str:
    """The object list: a colour swatch, id, name and how many frames prompt it."""
    if video is None:
        return ""
    rows = []
    for obj in video.objects:
        r, g, b = obj.color
        prompted = sorted({f for f, o in video.prompts if o == obj.obj_id})
        where = f"prompted on frame {', '.join(map(str, prompted))}" if prompted else "no clicks"
        rows.append(
            f'<li><span style="display:inline-block;width:0.9em;height:0.9em;'
            f'background:rgb({r},{g},{b});border-radius:2px;margin-right:0.4em"></span>'
            f"<b>{obj.obj_id}</b> · {html.escape(obj.name)} · {where}</li>"
        )
    return f'<ul style="list-style:none;padding-left:0;margin:0">{"".join(rows)}</ul>'


#: The download boxes: label and element id.
DOWNLOADS = (
    ("Masks (zip of PNGs)", "video-masks"),
    ("Overlay (MP4)", "video-overlay"),
    ("Matte (zip of MOV)", "video-matte"),
    ("track.json", "video-json"),
)


def progress_html(progress: PropagationProgress | None, note: str = "") -> str:
    """A progress bar with ``done / total frames · ms/frame`` (or just ``note``)."""
    if progress is None:
        return f"<div>{html.escape(note)}</div>" if note else ""
    return (
        f'<div><progress value="{progress.done}" max="{progress.total}" '
        f'style="width:100%"></progress><div>{html.escape(progress.line())}</div></div>'
    )


def _object_choices(video: VideoSession) -> list[tuple[str, int]]:
    return [(f"{o.obj_id}: {o.name}", o.obj_id) for o in video.objects]


def _frame_line(video: VideoSession, index: int) -> str:
    stored = video.results.get(index)
    present = [o.obj_id for o in video.objects if o.obj_id in stored and stored[o.obj_id].score > 0]
    tracked = f"objects on it: {', '.join(map(str, present))}" if present else "no mask on it"
    clicks = sum(
        len(p.points) + (p.box is not None) for (f, _), p in video.prompts.items() if f == index
    )
    prompts = f" · {clicks} prompt{'s' * (clicks != 1)} here" if clicks else ""
    return f"frame **{index}** of {video.frame_count - 1} · {tracked}{prompts}"


class VideoHandlers:
    """The tab's event handlers; plain methods, callable without a running server."""

    def __init__(self, service: VideoService) -> None:
        self.service = service

    def _bound(self, request: gr.Request | None, choice: Choice) -> tuple[VideoSession, Any]:
        video = self.service.get(_session(request))
        predictor, key, label = self.service.predictor(choice)
        video.bind(predictor, key, label)
        return video, predictor

    def on_upload(self, value: Any, request: gr.Request) -> list[Any]:
        """``[upload box, status, slider, canvas, frame line, objects, object dropdown,
        progress]``: the upload box is emptied, accepted or not, ready for the next clip
        (the status line names the clip in use); a refusal is one line there and a pop-up."""
        path, name = upload_fields(value)
        if path is None:
            return [None, *[gr.skip()] * 7]
        try:
            video = self.service.open(_session(request), path, name)
        except SamedgeError as exc:
            gr.Warning(str(exc))
            empty = gr.Slider(maximum=1, value=0)
            return [None, f"**Refused:** {exc}", empty, None, "", "", gr.skip(), ""]
        except Exception:
            log.exception("samedge web: video upload failed")
            gr.Warning(UNEXPECTED)
            return [None, f"**Error:** {UNEXPECTED}", *[gr.skip()] * 6]
        status = f"{html.escape(os.path.basename(name or 'video'))}: {video.describe()}"
        return [
            None,
            status + " · pick an object and click it",
            gr.Slider(minimum=0, maximum=max(1, video.frame_count - 1), value=0, step=1),
            video.picture(0),
            _frame_line(video, 0),
            objects_html(video),
            gr.Dropdown(choices=_object_choices(video), value=1),
            "",
        ]

    def on_frame(self, index: float, request: gr.Request) -> list[Any]:
        """``[canvas, frame line]`` for the slider's frame."""
        with user_errors():
            video = self.service.get(_session(request))
            index = min(int(index), video.frame_count - 1)
            return [video.picture(index), _frame_line(video, index)]

    def on_click(
        self,
        index: float,
        obj: Any,
        kind: str,
        model: str,
        precision: str,
        provider: str,
        evt: gr.SelectData,
        request: gr.Request,
    ) -> list[Any]:
        """``[canvas, frame line, objects]`` after a click on the frame."""
        with user_errors():
            if obj is None:
                raise SamedgeError("add an object first")
            video = self.service.get(_session(request))
            with video.using():
                try:
                    x, y = video.to_frame(float(evt.index[0]), float(evt.index[1]))
                except (TypeError, ValueError, IndexError, KeyError):
                    raise SamedgeError("click inside the picture") from None
                video, predictor = self._bound(request, Choice(model, precision, provider))
                video.click(predictor, int(index), int(obj), kind, x, y)
                return [
                    video.picture(int(index)),
                    _frame_line(video, int(index)),
                    objects_html(video),
                ]

    def on_add(self, name: str, request: gr.Request) -> list[Any]:
        """``[objects, object dropdown, name box]``."""
        with user_errors():
            video = self.service.get(_session(request))
            obj = video.add_object(name)
            return [
                objects_html(video),
                gr.Dropdown(choices=_object_choices(video), value=obj.obj_id),
                "",
            ]

    def on_rename(self, obj: Any, name: str, request: gr.Request) -> list[Any]:
        with user_errors():
            if obj is None:
                raise SamedgeError("pick an object to rename")
            video = self.service.get(_session(request))
            video.rename_object(int(obj), name)
            return [
                objects_html(video),
                gr.Dropdown(choices=_object_choices(video), value=int(obj)),
                "",
            ]

    def on_remove(
        self, obj: Any, index: float, model: str, precision: str, provider: str, request: gr.Request
    ) -> list[Any]:
        """``[objects, object dropdown, canvas]``."""
        with user_errors():
            if obj is None:
                raise SamedgeError("pick an object to remove")
            video = self.service.get(_session(request))
            with video.using():
                predictor = None
                if video.state is not None:
                    video, predictor = self._bound(request, Choice(model, precision, provider))
                video.remove_object(int(obj), predictor)
                choices = _object_choices(video)
                value = choices[0][1] if choices else None
                frame = min(int(index), video.frame_count - 1)
                return [
                    objects_html(video),
                    gr.Dropdown(choices=choices, value=value),
                    video.picture(frame),
                ]

    def on_propagate(
        self,
        direction: str,
        model: str,
        precision: str,
        provider: str,
        request: gr.Request,
    ) -> Iterator[list[Any]]:
        """Yields ``[progress, canvas, slider]`` after each tracked frame."""
        with user_errors():
            video = self.service.get(_session(request))
            with video.using():
                video, predictor = self._bound(request, Choice(model, precision, provider))
                video.passes(direction)  # a missing prompt is an error before any work
                yield [progress_html(None, "loading the first frame..."), gr.skip(), gr.skip()]
                for step in video.propagate(predictor, direction):
                    yield [progress_html(step), video.picture(step.frame_index), step.frame_index]

    def on_stop(self, request: gr.Request) -> None:
        with contextlib.suppress(SamedgeError):  # no clip: nothing to stop
            self.service.get(_session(request)).stop()

    def on_build(self, model: str, precision: str, provider: str, request: gr.Request) -> list[Any]:
        """``[masks zip, overlay video, matte zip, JSON, message]``."""
        with user_errors():
            video = self.service.get(_session(request))
            with video.using():
                entry = self.service.engine.catalog.lookup(model, precision)
                spec = resolve_model(entry.folder, verify=False).spec
                files = video.downloads(export_name(spec))  # NAME-Npx at another size
                paths = (files.masks_zip, files.overlay, files.matte_zip, files.track_json)
                shown = [gr.File(value=os.fspath(path), visible=True) for path in paths]
                return [*shown, f"{files.frames} frames written"]

    def on_unload(self, request: gr.Request) -> None:
        """The browser tab closed: delete the session's clip and files."""
        self.service.close(_session(request))


def video_tab(
    service: VideoService, model_dd: Any, precision_dd: Any, provider_dd: Any, demo: gr.Blocks
) -> VideoHandlers:
    """Lay out the tab inside the current ``gr.Tab``, wire its events and start the idle
    sweeper; returns the :class:`VideoHandlers` it uses."""
    handlers = VideoHandlers(service)
    settings = [model_dd, precision_dd, provider_dd]
    gr.Markdown(HELP)
    with gr.Row():
        with gr.Column(scale=2):
            upload = gr.File(
                label="Video clip", file_types=["video"], type="filepath", elem_id="video-upload"
            )
            status = gr.Markdown("No video yet.", elem_id="video-status")
            objects = gr.HTML(elem_id="video-objects")
            obj_dd = gr.Dropdown(
                choices=[("1: object 1", 1)],
                value=1,
                label="The next click prompts object",
                elem_id="video-object",
            )
            name = gr.Textbox(label="Object name", max_length=40, elem_id="video-object-name")
            with gr.Row():
                add = gr.Button("Add object", elem_id="video-add")
                rename = gr.Button("Rename", elem_id="video-rename")
                remove = gr.Button("Remove", elem_id="video-remove")
            kind = gr.Radio(
                KINDS, value="positive", label="The next click adds a", elem_id="video-kind"
            )
        with gr.Column(scale=3):
            canvas = gr.Image(
                label="Click the frame",
                interactive=False,
                format="jpeg",
                elem_id="video-canvas",
                elem_classes=["samedge-canvas"],
                buttons=["download", "fullscreen"],
            )
            slider = gr.Slider(0, 1, value=0, step=1, label="Frame", elem_id="video-frame")
            frame_line = gr.Markdown(elem_id="video-frame-line")
            with gr.Row():
                direction = gr.Radio(
                    [(DIRECTION_LABELS[d], d) for d in DIRECTIONS],
                    value="forward",
                    label="Propagate",
                    elem_id="video-direction",
                )
                propagate = gr.Button("Propagate", variant="primary", elem_id="video-propagate")
                stop = gr.Button("Stop", variant="stop", elem_id="video-stop")
            progress = gr.HTML(elem_id="video-progress")
            build = gr.Button("Build downloads", elem_id="video-build")
            built = gr.Markdown(elem_id="video-built")
            # One per line (side by side, a narrow column cut the file names to ".z"), and
            # shown once built (empty, each was a tall blank drop area).
            masks_file, overlay_file, matte_file, json_file = (
                gr.File(label=label, interactive=False, visible=False, elem_id=elem_id)
                for label, elem_id in DOWNLOADS
            )

    upload.upload(
        handlers.on_upload,
        inputs=[upload],
        outputs=[upload, status, slider, canvas, frame_line, objects, obj_dd, progress],
        preprocess=False,
        show_progress="minimal",
    )
    slider.change(
        handlers.on_frame,
        inputs=[slider],
        outputs=[canvas, frame_line],
        trigger_mode="always_last",
        show_progress="hidden",
    )
    canvas.select(
        handlers.on_click,
        inputs=[slider, obj_dd, kind, *settings],
        outputs=[canvas, frame_line, objects],
        show_progress="minimal",
        trigger_mode="multiple",
    )
    add.click(handlers.on_add, inputs=[name], outputs=[objects, obj_dd, name])
    rename.click(handlers.on_rename, inputs=[obj_dd, name], outputs=[objects, obj_dd, name])
    remove.click(
        handlers.on_remove, inputs=[obj_dd, slider, *settings], outputs=[objects, obj_dd, canvas]
    )
    propagate.click(
        handlers.on_propagate,
        inputs=[direction, *settings],
        outputs=[progress, canvas, slider],
        show_progress="hidden",
    )
    # Runs beside a propagation (which holds the default concurrency slot of its event).
    stop.click(handlers.on_stop, concurrency_limit=None, show_progress="hidden")
    build.click(
        handlers.on_build,
        inputs=settings,
        outputs=[masks_file, overlay_file, matte_file, json_file, built],
        show_progress="minimal",
    )
    demo.unload(handlers.on_unload)
    service.start_sweeper()
    return handlers
