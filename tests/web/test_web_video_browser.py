"""The Video tab in a real browser (headless Chromium through Playwright, as
``test_web_browser.py``, whose helpers this module imports).

The app runs on a free 127.0.0.1 port with the seed-0 SAM 2.1 Hiera-T test export (real
graphs, meaningless masks). Clips are made here from real DAVIS 2016 frames. Screenshots of
each step are saved in the test's temporary folder; ``SAMEDGE_UPDATE_SCREENSHOT=1`` also
refreshes ``docs/images/web-video.png``.
"""

from __future__ import annotations

import io
import json
import os
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from ..conftest import CheckpointExport
from .test_web_browser import (
    ROOT,
    _browser,
    _click_pixel,
    _download_url,
    _fetch,
    _save_small_png,
    _wait_image,
    _wait_text,
    running_app,
)
from .test_web_video import CLIP_FRAMES, CLIP_SIZE, make_clip, run_track_cli

pytestmark = pytest.mark.slow

SCREENSHOT = ROOT / "docs" / "images" / "web-video.png"
WIDTH, HEIGHT = CLIP_SIZE


@pytest.fixture(scope="module")
def video_server(
    small_checkpoint_export: CheckpointExport, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Path, Any]]:
    """``(url, model folder, VideoService)`` of a running app (clips up to 20 frames), with
    SAM 2.1 Hiera-T exported at 256 pixels (the video parity tests' small export)."""
    pytest.importorskip("gradio", reason="needs the [web] extra: pip install 'samedge[web]'")
    from samedge.web.app import build_app
    from samedge.web.video import VideoLimits, VideoService

    folder = small_checkpoint_export.folder
    services = []

    def build(engine: Any) -> Any:
        services.append(VideoService(engine, VideoLimits(max_bytes=5 << 20, max_frames=20)))
        return build_app(engine, video=services[0])

    try:
        with running_app(folder, tmp_path_factory, build) as url:
            yield url, folder, services[0]
    finally:
        for service in services:
            service.shutdown()


@pytest.fixture
def video_page(tmp_path: Path) -> Iterator[Any]:
    with _browser(tmp_path, height=1500) as page:
        yield page


def _open_tab(page: Any, url: str) -> None:
    page.goto(url)
    page.get_by_role("tab", name="Video", exact=True).click()


def _upload(page: Any, path: Path) -> None:
    page.locator("#video-upload input[type=file]").set_input_files(str(path))


def _shot(page: Any, folder: Path, name: str) -> bytes:
    shot = page.locator("#tab-video").screenshot()
    (folder / f"{name}.png").write_bytes(shot)
    return bytes(shot)


def _scrub(page: Any, index: int) -> None:
    box = page.locator("#video-frame input[type=number]")
    box.fill(str(index))
    box.press("Enter")
    _wait_text(page, "#video-frame-line", f"frame {index} of")


def _wait_propagated(page: Any, previous: str = "") -> str:
    """The progress line once a propagation is done (8 frames of Hiera-T: minutes on a
    loaded 2-core machine, so longer than the page's default timeout). ``previous`` is the
    line of the run before, still shown until the new run's first update arrives (Gradio
    may put its own timer above it, hence the last line only)."""
    page.wait_for_function(
        """(previous) => {
            const text = document.querySelector('#video-progress')?.innerText ?? '';
            const line = text.trim().split('\\n').pop();
            return line.includes('done') && line !== previous;
        }""",
        arg=previous,
        timeout=600_000,
    )
    return str(page.inner_text("#video-progress")).strip().split("\n")[-1]


def _session_folders(service: Any) -> list[Path]:
    return sorted(service.root.iterdir()) if service.root.exists() else []


def _wait_until(check: Callable[[], bool], seconds: float = 20.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.2)
    return check()


def test_video_upload_limits_objects_and_cleanup(
    video_server: tuple[str, Path, Any], tmp_path: Path
) -> None:
    url, _, service = video_server
    with _browser(tmp_path, height=1500) as page:
        _open_tab(page, url)
        # Not a video, too long: one line each, nothing kept.
        notes = tmp_path / "notes.mp4"
        notes.write_text("not a video\n")
        _upload(page, notes)
        toast = _wait_text(page, "body", "notes.mp4 is not a video this server can read")
        assert "Traceback" not in toast
        long_clip = make_clip(tmp_path / "long.mp4", frames=24)
        _upload(page, long_clip)
        _wait_text(page, "body", "long.mp4 has 24 frames, more than this server's limit of 20")
        assert _session_folders(service) == []

        # A real clip: shown at its size, the slider scrubs it.
        clip = make_clip(tmp_path / "swan.mp4")
        _upload(page, clip)
        status = _wait_text(page, "#video-status", "8 frames")
        assert f"{WIDTH}x{HEIGHT}" in status
        _wait_image(page, "#video-canvas img", WIDTH)
        (folder,) = _session_folders(service)
        assert (folder / "upload.mp4").is_file()
        _scrub(page, 6)
        # The object list: add, rename, remove.
        page.locator("#video-object-name textarea, #video-object-name input").first.fill("swan")
        page.click("#video-add")
        _wait_text(page, "#video-objects", "swan")
        page.locator("#video-object-name textarea, #video-object-name input").first.fill("reed")
        page.click("#video-rename")
        objects = _wait_text(page, "#video-objects", "reed")
        assert "swan" not in objects and "object 1" in objects
        _shot(page, tmp_path, "objects")
        page.click("#video-remove")
        page.wait_for_function(
            "() => !document.querySelector('#video-objects').innerText.includes('reed')"
        )
        # Only the app's own files are served: not the session's upload.
        stored = folder / "upload.mp4"
        response = page.request.get(f"{url}gradio_api/file={stored}")
        assert response.status in (403, 404), response.status
    # The browser tab closed: the session's folder is deleted.
    assert _wait_until(lambda: not folder.exists()), "session folder left after the tab closed"


def _zip_masks(data: bytes) -> dict[str, np.ndarray]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return {
            n: cv2.imdecode(np.frombuffer(zf.read(n), np.uint8), cv2.IMREAD_GRAYSCALE)
            for n in sorted(zf.namelist())
            if n.endswith(".png")
        }


def _folder_masks(folder: Path) -> dict[str, np.ndarray]:
    return {
        p.relative_to(folder).as_posix(): cv2.imread(str(p), cv2.IMREAD_GRAYSCALE)
        for p in sorted((folder / "masks").rglob("*.png"))
    }


def _build(page: Any, previous: str | None) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    page.click("#video-build")
    if previous is not None:
        page.wait_for_function(
            "(old) => { const a = document.querySelector('#video-masks a[href]');"
            " return !!a && a.href !== old; }",
            arg=previous,
        )
    masks = _zip_masks(_fetch(page, _download_url(page, "#video-masks")))
    record = json.loads(_fetch(page, _download_url(page, "#video-json")))
    return masks, record


def test_rotoscoping_loop_in_a_real_browser(
    video_server: tuple[str, Path, Any], tmp_path: Path
) -> None:
    """Upload, click frame 0, propagate, scrub, correct frame 5, propagate again, download."""
    pytest.importorskip("samedge.video.predictor", reason="VideoPredictor is not in this build")
    url, model, service = video_server
    clip = make_clip(tmp_path / "swan.mp4")
    shots = tmp_path / "shots"
    shots.mkdir()
    with _browser(tmp_path, height=1500) as page:
        _open_tab(page, url)
        _upload(page, clip)
        _wait_text(page, "#video-status", "8 frames")
        _wait_image(page, "#video-canvas img", WIDTH)
        _shot(page, shots, "1-uploaded")

        # A positive click on the swan on frame 0.
        _click_pixel(page, "#video-canvas img", 170, 140)
        _wait_text(page, "#video-objects", "prompted on frame 0")
        _shot(page, shots, "2-clicked")

        # Propagate forward: a progress bar per frame, then done.
        page.click("#video-propagate")
        line = _wait_propagated(page)
        assert f"{CLIP_FRAMES} / {CLIP_FRAMES} frames" in line and "ms/frame" in line
        _wait_image(page, "#video-canvas img", WIDTH)  # the last frame's picture loads
        _shot(page, shots, "3-propagated")
        first, record = _build(page, None)
        size = json.loads((model / "samedge.json").read_text())["extra"]["image_size"]
        assert record["model"] == f"sam2.1_hiera_tiny-{size}px"  # what --model opens
        ((prompt,),) = [record["prompts"]]
        ((x, y),) = prompt["points"]
        assert abs(x - 170) <= 2 and abs(y - 140) <= 2

        # samedge track with the same prompt gives the same masks.
        run_track_cli(clip, model, tmp_path / "cli", ["--point", f"0:{x!r},{y!r}"])
        cli = _folder_masks(tmp_path / "cli")
        assert len(cli) == CLIP_FRAMES and set(first) == set(cli)
        for name, mask in cli.items():
            np.testing.assert_array_equal(first[name], mask, err_msg=name)
        cli_json = json.loads((tmp_path / "cli" / "track.json").read_text())
        assert record["prompts"] == cli_json["prompts"]
        for a, b in zip(record["frames"], cli_json["frames"], strict=True):
            assert [o["segmentation"] for o in a["objects"]] == [
                o["segmentation"] for o in b["objects"]
            ]

        # Scrub to frame 5 and correct it with a negative click.
        _scrub(page, 5)
        _shot(page, shots, "4-scrubbed")
        page.locator("#video-kind").get_by_text("negative point").click()
        _wait_image(page, "#video-canvas img", WIDTH)
        _click_pixel(page, "#video-canvas img", 300, 60)
        _wait_text(page, "#video-objects", "prompted on frame 0, 5")
        _shot(page, shots, "5-corrected")

        # Propagate again: only the frames after the correction are tracked again.
        page.click("#video-propagate")
        line = _wait_propagated(page, previous=line)
        assert "2 / 2 frames" in line
        shot = _shot(page, shots, "6-repropagated")
        if os.environ.get("SAMEDGE_UPDATE_SCREENSHOT") == "1":
            _save_small_png(shot, SCREENSHOT, colors=256)
        old_href = _download_url(page, "#video-masks")
        second, record = _build(page, old_href)
        assert [p["frame"] for p in record["prompts"]] == [0, 5]
        for i in range(5):  # untouched by the correction
            name = f"masks/obj1/{i:05d}.png"
            np.testing.assert_array_equal(second[name], cli[name], err_msg=name)
        # From the correction on: the session's masks (test_web_video.py checks them
        # against the library called directly with the same calls in order).
        (video,) = service._sessions.values()
        assert video.corrected == {5}
        for i in range(5, CLIP_FRAMES):
            name = f"masks/obj1/{i:05d}.png"
            np.testing.assert_array_equal(second[name] > 127, video.results.get(i)[1].unpack())
        assert any(
            not np.array_equal(second[f"masks/obj1/{i:05d}.png"], cli[f"masks/obj1/{i:05d}.png"])
            for i in range(5, CLIP_FRAMES)
        ), "the correction changed nothing"
        folders = _session_folders(service)
        assert len(folders) == 1
    assert _wait_until(lambda: not folders[0].exists()), "session folder left after the tab closed"
