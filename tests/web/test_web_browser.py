"""``samedge web`` in a real browser: headless Chromium driven by Playwright.

The app runs in this process on a free 127.0.0.1 port with the seed-0 SAM 2.1 Hiera-T test
export (real graphs, meaningless masks). The browser uploads a real photo, clicks a point,
draws two boxes, undoes one, uploads a non-image, and probes the file route; the page may
only ever talk to 127.0.0.1. In the Gaze tab, Chromium's fake camera plays a real video
frame (a Y4M file made here) into the webcam stream, with the real face, gaze and detector
models from ../shared/models.

Needs a Chromium binary (Debian: ``apt-get install -y chromium``; or set
``SAMEDGE_CHROMIUM``) and ``pip install playwright`` (no ``playwright install``: the
system browser is used). Set ``SAMEDGE_UPDATE_SCREENSHOT=1`` to also refresh
``docs/images/web-ui.png`` and ``docs/images/web-gaze.png`` for the docs.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from samedge.imageio import load_image
from samedge.maskutils import rle_decode

from ..conftest import shared_path

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOT = ROOT / "docs" / "images" / "web-ui.png"
GAZE_SCREENSHOT = ROOT / "docs" / "images" / "web-gaze.png"
TINY = "sam2.1_hiera_tiny"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # A synthetic camera (a moving test pattern) stands in for a webcam.
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
]
TIMEOUT_MS = 60_000


def chromium_binary() -> str | None:
    """``$SAMEDGE_CHROMIUM``, else the first Chromium found on this machine."""
    candidates = [
        os.environ.get("SAMEDGE_CHROMIUM"),
        "/usr/bin/chromium",
        shutil.which("chromium"),
        shutil.which("chromium-browser"),
        shutil.which("google-chrome"),
    ]
    return next((c for c in candidates if c and os.access(c, os.X_OK)), None)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def running_app(
    folder: Path, tmp_path_factory: pytest.TempPathFactory, build: Callable[[Any], Any]
) -> Iterator[str]:
    """The URL of the app ``build(engine)`` makes, launched on a free local port with an
    engine over the model ``folder`` only (no user models); closed at the end."""
    pytest.importorskip("gradio", reason="needs the [web] extra: pip install 'samedge[web]'")
    from samedge.web.app import launch
    from samedge.web.engine import Engine
    from samedge.web.models import ModelCatalog, PredictorPool, discover_models

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SAMEDGE_HOME", str(tmp_path_factory.mktemp("home")))
        mp.setenv("GRADIO_ANALYTICS_ENABLED", "False")
        engine = Engine(
            ModelCatalog(discover_models([str(folder)]), ["cpu"]),
            out_dir=tmp_path_factory.mktemp("web-out"),
            pool=PredictorPool(threads=2),
        )
        demo = build(engine)
        port = _free_port()
        launch(demo, "127.0.0.1", port, max_upload_mb=5, block=False)
        try:
            yield f"http://127.0.0.1:{port}/"
        finally:
            demo.close()


@pytest.fixture(scope="module")
def server(
    export_test_model: Callable[[str], Path],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[str, Path, Path]]:
    """``(url, model folder, photo)`` of a running app that offers the photo as an example."""
    pytest.importorskip("gradio", reason="needs the [web] extra: pip install 'samedge[web]'")
    from samedge.web.app import build_app
    from samedge.web.gaze import GazeModels, GazeService

    folder = export_test_model(TINY)
    image_path = shared_path("data", "images", "groceries.jpg")
    models = shared_path("models")

    def build(engine: Any) -> Any:
        gaze = GazeService(
            engine,
            GazeModels(
                face_model=models / "face",
                gaze_models=models / "gaze",
                detector_model=models / "detection" / "yolox_nano.onnx",
            ),
        )
        return build_app(engine, examples=[image_path], gaze=gaze)

    with running_app(folder, tmp_path_factory, build) as url:
        yield url, folder, image_path


@contextlib.contextmanager
def _browser(tmp_path: Path, extra_args: Sequence[str] = (), height: int = 960) -> Iterator[Any]:
    """A page of a fresh headless Chromium (skips when Playwright or Chromium is missing)."""
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="needs Playwright for Python: pip install playwright"
    )
    executable = chromium_binary()
    if executable is None:
        pytest.skip(
            "no Chromium binary: apt-get install -y chromium (Debian) or set SAMEDGE_CHROMIUM"
        )
    with sync_api.sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path / "profile"),
            executable_path=executable,
            headless=True,
            args=[*CHROMIUM_ARGS, *extra_args],
            viewport={"width": 1280, "height": height},
        )
        try:
            page = context.new_page()
            page.set_default_timeout(TIMEOUT_MS)
            yield page
            # The last state of the page, kept with the test's files for diagnosis.
            page.screenshot(path=str(tmp_path / "last-page.png"))
            (tmp_path / "last-page.txt").write_text(page.inner_text("body"))
        finally:
            context.close()


@pytest.fixture
def browser_page(tmp_path: Path) -> Iterator[Any]:
    with _browser(tmp_path) as page:
        yield page


def write_y4m(path: Path, rgb: np.ndarray, frames: int = 2) -> None:
    """A raw YUV 4:2:0 video of ``frames`` copies of ``rgb`` (even width and height), the
    format Chromium's fake camera plays in a loop."""
    height, width = rgb.shape[:2]
    planes = cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420).tobytes()
    with open(path, "wb") as fh:
        fh.write(f"YUV4MPEG2 W{width} H{height} F30:1 Ip A1:1 C420jpeg\n".encode())
        for _ in range(frames):
            fh.write(b"FRAME\n" + planes)


@pytest.fixture
def camera_frame() -> np.ndarray:
    """Frame 10 of the real bedroom clip (960x540): a child whose gaze ray crosses a box."""
    cap = cv2.VideoCapture(str(shared_path("data", "video", "bedroom.mp4")))
    try:
        for _ in range(11):
            ok, bgr = cap.read()
            assert ok
    finally:
        cap.release()
    return np.ascontiguousarray(bgr[:, :, ::-1])


@pytest.fixture
def camera_page(tmp_path: Path, camera_frame: np.ndarray) -> Iterator[Any]:
    """A page whose webcam plays ``camera_frame``."""
    video = tmp_path / "camera.y4m"
    write_y4m(video, camera_frame)
    with _browser(tmp_path, [f"--use-file-for-fake-video-capture={video}"], 1500) as page:
        yield page


def _wait_text(page: Any, selector: str, text: str) -> str:
    page.wait_for_function(
        "([sel, text]) => (document.querySelector(sel)?.innerText ?? '').includes(text)",
        arg=[selector, text],
    )
    return str(page.inner_text(selector))


def _wait_image(page: Any, selector: str, width: int) -> None:
    page.wait_for_function(
        "([sel, w]) => { const i = document.querySelector(sel);"
        " return !!i && i.complete && i.naturalWidth === w && i.offsetWidth > 0; }",
        arg=[selector, width],
    )


def _click_pixel(page: Any, selector: str, x: float, y: float) -> None:
    """Click the displayed image at natural pixel ``(x, y)`` (object-fit: contain)."""
    cx, cy = page.eval_on_selector(
        selector,
        "(img, [x, y]) => { const r = img.getBoundingClientRect();"
        " const s = Math.min(r.width / img.naturalWidth, r.height / img.naturalHeight, 1);"
        " const ox = (r.width - img.naturalWidth * s) / 2;"
        " const oy = (r.height - img.naturalHeight * s) / 2;"
        " return [r.left + ox + (x + 0.5) * s, r.top + oy + (y + 0.5) * s]; }",
        [x, y],
    )
    page.mouse.click(cx, cy)


def _fetch(page: Any, url: str) -> bytes:
    response = page.request.get(url)
    assert response.ok, (url, response.status)
    return bytes(response.body())


def _fetch_png(page: Any, url: str, flags: int = cv2.IMREAD_UNCHANGED) -> np.ndarray:
    data = cv2.imdecode(np.frombuffer(_fetch(page, url), np.uint8), flags)
    assert data is not None, url
    return data


def _download_url(page: Any, selector: str) -> str:
    page.wait_for_selector(f"{selector} a[href]")
    return str(page.eval_on_selector(f"{selector} a[href]", "a => a.href"))


def test_point_and_boxes_in_a_real_browser(
    server: tuple[str, Path, Path], browser_page: Any, tmp_path: Path
) -> None:
    url, model_folder, image_path = server
    page = browser_page
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.goto(url)

    # Upload a real photo: it is encoded once.
    original = load_image(image_path)
    height, width = original.shape[:2]
    page.locator("#source-image input[type=file]").set_input_files(str(image_path))
    status = _wait_text(page, "#status", "encode")
    assert f"{width}x{height} image" in status

    # Point tab: one positive click in the middle of the photo.
    _wait_image(page, "#canvas-point img", width)
    _click_pixel(page, "#canvas-point img", 400, 267)
    latency = _wait_text(page, "#latency-point", "decode")
    assert "encode cached" in latency  # the click did not run the encoder
    assert "1 mask" in latency
    overlay_url = str(page.get_attribute("#canvas-point img", "src"))
    overlay = cv2.cvtColor(_fetch_png(page, overlay_url, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    mask = _fetch_png(page, _download_url(page, "#mask-point"), cv2.IMREAD_GRAYSCALE) > 0
    assert overlay.shape == original.shape and mask.shape == (height, width)
    assert 100 < mask.sum() < mask.size
    changed = np.any(overlay != original, axis=-1)
    # Inside the predicted mask the overlay is tinted; away from the mask's outline and
    # the point marker it is the photo, pixel for pixel.
    assert changed[mask].mean() > 0.95
    near = cv2.dilate(mask.astype(np.uint8), np.ones((7, 7), np.uint8)) > 0
    yy, xx = np.mgrid[:height, :width]
    near |= (xx - 400) ** 2 + (yy - 267) ** 2 < 30**2
    assert changed[~near].mean() < 0.01
    record = json.loads(_fetch(page, _download_url(page, "#json-point")))
    ((px, py),) = record["prompts"]["points"]
    assert abs(px - 400) <= 2 and abs(py - 267) <= 2  # the click landed where we aimed
    np.testing.assert_array_equal(rle_decode(record["masks"][0]["segmentation"]), mask)

    # Box tab: two boxes drawn with two clicks each give one mask per box.
    page.get_by_role("tab", name="Box", exact=True).click()
    _wait_image(page, "#canvas-box img", width)
    corners = [(60, 60), (300, 300), (720, 480), (450, 150)]
    waits = ["opposite corner", "1 mask", "first corner set", "2 masks"]
    for (x, y), text in zip(corners, waits, strict=True):
        _wait_image(page, "#canvas-box img", width)  # a click while it reloads is lost
        _click_pixel(page, "#canvas-box img", x, y)
        _wait_text(page, "#latency-box", text)
    record = json.loads(_fetch(page, _download_url(page, "#json-box")))
    assert len(record["masks"]) == 2 and record["mode"] == "box"
    expected = [[60, 60, 300, 300], [450, 150, 720, 480]]
    assert np.allclose(record["prompts"]["boxes"], expected, atol=2)
    labels = _fetch_png(page, _download_url(page, "#mask-box"), cv2.IMREAD_GRAYSCALE)
    assert labels.shape == (height, width) and set(np.unique(labels)) <= {0, 1, 2}
    for entry in record["masks"]:
        object_mask = rle_decode(entry["segmentation"])
        assert object_mask.shape == (height, width)
        assert entry["area"] == int(object_mask.sum())
    np.testing.assert_array_equal(labels == 2, rle_decode(record["masks"][1]["segmentation"]))

    shot = page.screenshot(full_page=False)
    (tmp_path / "web-ui.png").write_bytes(shot)
    if os.environ.get("SAMEDGE_UPDATE_SCREENSHOT") == "1":
        _save_small_png(shot, SCREENSHOT)

    # Undo the last click: the second box is incomplete again, one mask is left.
    page.click("#undo-box")
    latency = _wait_text(page, "#latency-box", "1 mask (")
    assert "first corner set" in latency

    # A non-image upload gets a one-line message, no stack trace.
    page.click("#remove-image")
    _wait_text(page, "#status", "No image yet")
    fake = tmp_path / "notes.png"
    fake.write_text("this is not a picture\n")
    page.locator("#source-image input[type=file]").set_input_files(str(fake))
    toast = _wait_text(page, "body", "notes.png is not an image")
    assert "Traceback" not in toast
    # So does an upload over the server's limit (5 MB here); the server refuses it too.
    big = tmp_path / "huge.png"
    big.write_bytes(b"\0" * (6 << 20))
    page.locator("#source-image input[type=file]").set_input_files(str(big))
    _wait_text(page, "body", "exceed the maximum allowed size")
    response = page.request.post(
        f"{url}gradio_api/upload",
        multipart={
            "files": {"name": "huge.png", "mimeType": "image/png", "buffer": big.read_bytes()}
        },
    )
    assert response.status == 413

    page.get_by_role("tab", name="Everything", exact=True).click()

    # Only the app's own files are served: not the repository, not the model files.
    for path in (ROOT / "pyproject.toml", model_folder / "samedge.json", Path("/etc/hostname")):
        response = page.request.get(f"{url}gradio_api/file={path}")
        assert response.status in (403, 404), (path, response.status)
    # The page never talked to anything but the app.
    hosts = {u.split("/")[2] for u in requested if u.startswith(("http:", "https:", "ws"))}
    assert hosts == {url.split("/")[2]}, hosts


def test_webcam_snapshot_and_example_in_a_real_browser(
    server: tuple[str, Path, Path], browser_page: Any
) -> None:
    url, _, image_path = server
    page = browser_page
    page.goto(url)

    # A webcam snapshot (Chromium's synthetic camera) is an image like any other; it is
    # larger than the display limit, so the browser shows it scaled down.
    page.click("#source-image button[aria-label='Capture from camera']")
    page.get_by_text("Click to Access Webcam").click()
    page.wait_for_function(
        "() => { const v = document.querySelector('#source-image video');"
        " return !!v && v.readyState >= 2 && v.videoWidth > 0; }"
    )
    page.click("#source-image button[aria-label='capture photo']")
    status = _wait_text(page, "#status", "encode")
    width, height = (int(v) for v in status.split(" image")[0].split("x"))
    scale = min(1.0, 1600 / max(width, height))
    shown = round(width * scale)
    _wait_image(page, "#canvas-point img", shown)
    _click_pixel(page, "#canvas-point img", shown / 2, shown / 4)
    _wait_text(page, "#latency-point", "decode")
    record = json.loads(_fetch(page, _download_url(page, "#json-point")))
    assert (record["image"]["width"], record["image"]["height"]) == (width, height)
    ((px, py),) = record["prompts"]["points"]
    # The click on the scaled picture is a point in the snapshot's own pixels.
    assert abs(px - width / 2) <= 2 / scale and abs(py - width / 4) <= 2 / scale

    # An example, then the same photo uploaded as a file: one encode for both.
    page.locator("button.gallery-item").first.click()
    _wait_text(page, "#status", f"{_size_text(image_path)} image")
    page.click("#remove-image")
    _wait_text(page, "#status", "No image yet")
    page.locator("#source-image input[type=file]").set_input_files(str(image_path))
    status = _wait_text(page, "#status", "encode")
    assert "encode cached" in status, status


def _size_text(path: Path) -> str:
    height, width = load_image(path).shape[:2]
    return f"{width}x{height}"


def _save_small_png(png: bytes, path: Path, colors: int = 128) -> None:
    """Save a screenshot as a palette PNG (small enough for the README)."""
    from PIL import Image

    image = Image.open(__import__("io").BytesIO(png)).convert("RGB")
    path.parent.mkdir(parents=True, exist_ok=True)
    image.quantize(colors=colors, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
    assert path.stat().st_size < 300_000, path.stat().st_size


def _green_box_pixels(rgb: np.ndarray) -> int:
    """Pixels of the colour the face box is drawn in (pure green, through JPEG)."""
    r, g, b = (rgb[..., i].astype(int) for i in range(3))
    return int(np.sum((g > 150) & (r < 90) & (b < 90)))


def test_gaze_tab_streams_the_webcam_through_the_pipeline(
    server: tuple[str, Path, Path], camera_page: Any, camera_frame: np.ndarray, tmp_path: Path
) -> None:
    pytest.importorskip("openvino", reason="needs the [gaze] extra: pip install 'samedge[gaze]'")
    url, _, _ = server
    page = camera_page
    page.goto(url)
    page.get_by_role("tab", name="Gaze", exact=True).click()

    # Allow the camera, start the stream: annotated frames come back with stage times.
    page.locator("#gaze-camera").get_by_text("Click to Access Webcam").click()
    page.wait_for_function(
        "() => { const v = document.querySelector('#gaze-camera video');"
        " return !!v && v.readyState >= 2 && v.videoWidth === 960; }"
    )
    page.click("#gaze-camera button[aria-label='capture photo']")
    status = _wait_text(page, "#gaze-status", "total")
    for stage in ("face", "gaze", "detect", "encode", "decode"):
        assert f"{stage} " in status, status
    assert "FPS" in status and "no target: no face" not in status
    _wait_image(page, "#gaze-output img", 960)
    picture = cv2.cvtColor(
        _fetch_png(page, str(page.get_attribute("#gaze-output img", "src")), cv2.IMREAD_COLOR),
        cv2.COLOR_BGR2RGB,
    )
    assert picture.shape == camera_frame.shape
    # The camera's picture, with the face box drawn on it (the photo has no such green).
    assert _green_box_pixels(camera_frame) < 20 < 200 < _green_box_pixels(picture)
    assert picture.std() > 20  # a picture, not a blank frame

    shot = page.locator("#tab-gaze").screenshot()
    (tmp_path / "web-gaze.png").write_bytes(shot)
    if os.environ.get("SAMEDGE_UPDATE_SCREENSHOT") == "1":
        _save_small_png(shot, GAZE_SCREENSHOT, colors=256)
    page.click("#gaze-camera button:has([title='stop recording'])")
    page.wait_for_selector("#gaze-camera button:has([title='start recording'])")

    # One image instead of the camera: processed once, from a fresh state.
    photo = shared_path("data", "interactive", "GrabCut", "data_GT", "person1.jpg")
    page.locator("#gaze-upload input[type=file]").set_input_files(str(photo))
    status = _wait_text(page, "#gaze-status", "600x450 image")
    assert "face " in status and "FPS" in status


def test_auto_button_in_a_real_browser(
    server: tuple[str, Path, Path], browser_page: Any, tmp_path: Path
) -> None:
    """Point tab, **Auto**: five positive clicks on the most salient object appear as
    points (drawn, in the JSON, undoable); an image with no salient blob gets a message."""
    from samedge.saliency import auto_prompt

    url, _model_folder, image_path = server
    page = browser_page
    page.goto(url)
    original = load_image(image_path)
    width = original.shape[1]
    page.locator("#source-image input[type=file]").set_input_files(str(image_path))
    _wait_text(page, "#status", "encode")
    _wait_image(page, "#canvas-point img", width)
    page.click("#auto-point")
    latency = _wait_text(page, "#latency-point", "5 points (5 positive, 0 negative)")
    assert "encode cached" in latency and "1 mask" in latency
    record = json.loads(_fetch(page, _download_url(page, "#json-point")))
    expected = auto_prompt(original)
    np.testing.assert_allclose(record["prompts"]["points"], expected.points, atol=1e-6)
    assert record["prompts"]["labels"] == [1] * 5
    # The clicks are ordinary points: undo removes the last one.
    _wait_image(page, "#canvas-point img", width)
    page.click("#undo-point")
    _wait_text(page, "#latency-point", "4 points (4 positive, 0 negative)")

    # No salient blob: a one-line message, no stack trace, nothing drawn.
    flat = tmp_path / "flat.png"
    cv2.imwrite(str(flat), np.full((240, 320, 3), 90, np.uint8))
    page.click("#remove-image")
    _wait_text(page, "#status", "No image yet")
    page.locator("#source-image input[type=file]").set_input_files(str(flat))
    _wait_text(page, "#status", "encode")
    page.click("#auto-point")
    toast = _wait_text(page, "body", "no salient object")
    assert "Traceback" not in toast
