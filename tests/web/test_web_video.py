"""The Video tab's engine (:mod:`samedge.web.video`) without a browser: upload limits, the
session's temporary folder (moved-in upload, deleted on close, idle timeout, shutdown),
frames read on demand, the object list, compact mask storage, the download files, and, with
the seed-0 SAM 2.1 Hiera-T export, click → propagate → correct → re-propagate against
``samedge track`` and the library called directly with the same prompts.

Clips are made here from real DAVIS 2016 frames (``../shared/data/davis2016``), downscaled.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from samedge.errors import ImageError, PromptError, SamedgeError
from samedge.maskutils import rle_decode
from samedge.video import FrameResult
from samedge.web.engine import Choice, Engine
from samedge.web.models import ModelCatalog, ModelEntry
from samedge.web.video import PackedMask, VideoLimits, VideoService, session_key

from ..conftest import CheckpointExport, shared_path

SEQUENCE = "blackswan"
CLIP_FRAMES = 8
CLIP_SIZE = (432, 240)  # DAVIS' 854x480, halved to even sizes


def make_clip(
    path: Path, frames: int = CLIP_FRAMES, size: tuple[int, int] = CLIP_SIZE, seq: str = SEQUENCE
) -> Path:
    """An MPEG-4 clip of the first ``frames`` DAVIS frames of ``seq`` resized to ``size``."""
    folder = shared_path("data", "davis2016", "JPEGImages", seq)
    files = sorted(folder.glob("*.jpg"))[:frames]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 24.0, size)
    assert writer.isOpened()
    try:
        for file in files:
            writer.write(cv2.resize(cv2.imread(str(file)), size, interpolation=cv2.INTER_AREA))
    finally:
        writer.release()
    return path


def ground_truth(index: int, size: tuple[int, int] = CLIP_SIZE, seq: str = SEQUENCE) -> np.ndarray:
    """DAVIS' annotated mask of frame ``index`` at the clip's size (bool)."""
    png = shared_path("data", "davis2016", "Annotations", seq, f"{index:05d}.png")
    mask = cv2.imread(str(png), cv2.IMREAD_GRAYSCALE)
    return cv2.resize(mask, size, interpolation=cv2.INTER_NEAREST) > 127


def make_service(tmp_path: Path, folder: Path | None = None, **kwargs: object) -> VideoService:
    """A service over a catalog of one model (``folder``; a path no test loads when None)."""
    entry = ModelEntry("model", "sam2.1_hiera_tiny", "fp32", folder or tmp_path / "no-model", True)
    engine = Engine(ModelCatalog([entry], ["cpu"]), out_dir=tmp_path / "app-tmp")
    return VideoService(engine, **kwargs)  # type: ignore[arg-type]


def upload(tmp_path: Path, name: str = "clip.mp4", **kwargs: object) -> Path:
    """A clip where Gradio would have stored the upload (outside the app's folder)."""
    incoming = tmp_path / "gradio-upload"
    incoming.mkdir(exist_ok=True)
    return make_clip(incoming / name, **kwargs)  # type: ignore[arg-type]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# -- uploads and the session's folder -------------------------------------------------------


def test_upload_moves_into_the_session_folder_and_frames_are_read_on_demand(
    tmp_path: Path,
) -> None:
    service = make_service(tmp_path)
    path = upload(tmp_path)
    video = service.open("browser-1", path, "My Clip.mp4")
    folder = service.root / session_key("browser-1")
    assert not path.exists()  # moved out of the upload cache...
    assert video.folder == folder and (folder / "upload.mp4").is_file()  # ...into ours
    assert folder.is_relative_to(tmp_path / "app-tmp")
    assert (video.frame_count, video.size, video.name) == (CLIP_FRAMES, CLIP_SIZE, "My_Clip")
    assert "8 frames, 432x240, 24 frames/s" in video.describe()
    # Random access equals sequential decoding of the same file.
    cap = cv2.VideoCapture(str(folder / "upload.mp4"))
    decoded = []
    for _ in range(CLIP_FRAMES):
        ok, bgr = cap.read()
        assert ok
        decoded.append(bgr[:, :, ::-1])
    cap.release()
    for index in (5, 0, 7, 3):
        np.testing.assert_array_equal(video.frame(index), decoded[index])
    with pytest.raises(PromptError, match=r"frame 8 is outside 0\.\.7"):
        video.frame(8)
    # Nothing tracked: the picture is the frame (display scale 1 for a small clip).
    np.testing.assert_array_equal(video.picture(2), decoded[2])
    assert service.get("browser-1") is video
    # A new upload in the same session replaces the old clip and its files.
    second = service.open("browser-1", upload(tmp_path, "again.mp4"), "again.mp4")
    assert video.closed and second is service.get("browser-1")
    assert sorted(p.name for p in folder.iterdir()) == ["upload.mp4"]
    service.close("browser-1")
    assert not folder.exists() and service.sessions == 0
    with pytest.raises(SamedgeError, match="upload a video first"):
        service.get("browser-1")


def test_a_large_clip_is_shown_scaled_and_clicks_map_back(tmp_path: Path) -> None:
    service = make_service(tmp_path, display_side=216)
    video = service.open("s", upload(tmp_path), "clip.mp4")
    assert video.scale == pytest.approx(0.5)
    assert video.picture(0).shape == (120, 216, 3)
    assert video.to_frame(100.0, 60.0) == (200.0, 120.0)
    assert video.to_frame(-5.0, 500.0) == (0.0, 239.0)  # clamped to the frame


@pytest.mark.parametrize(
    ("limits", "expected"),
    [
        (VideoLimits(max_bytes=1000), r"^holiday\.mp4 is 0\.\d MB, more than this server's video"),
        (
            VideoLimits(max_frames=5),
            r"^holiday\.mp4 has 8 frames, more than this server's limit of 5",
        ),
        (VideoLimits(max_pixels=320 * 240), r"^holiday\.mp4 is 432x240, more than this server"),
    ],
)
def test_limits_refuse_in_one_line_and_leave_nothing(
    tmp_path: Path, limits: VideoLimits, expected: str
) -> None:
    service = make_service(tmp_path, limits=limits)
    path = upload(tmp_path)
    with pytest.raises(ImageError, match=expected) as info:
        service.open("s", path, "holiday.mp4")
    message = str(info.value)
    assert "\n" not in message and str(tmp_path) not in message
    assert not path.exists() and not (service.root / session_key("s")).exists()
    assert service.sessions == 0


def test_a_non_video_or_empty_upload_is_refused(tmp_path: Path) -> None:
    service = make_service(tmp_path)
    notes = tmp_path / "notes.mp4"
    notes.write_text("this is not a video\n")
    with pytest.raises(ImageError, match=r"^notes\.mp4 is not a video this server can read"):
        service.open("s", notes, "notes.mp4")
    empty = tmp_path / "empty.mov"
    empty.write_bytes(b"")
    with pytest.raises(ImageError, match=r"^empty\.mov is empty"):
        service.open("s", empty, "empty.mov")
    assert not notes.exists() and not empty.exists()
    assert not any(service.root.iterdir()) if service.root.exists() else True


def test_idle_sessions_are_deleted_unless_tracking(tmp_path: Path) -> None:
    clock = Clock()
    service = make_service(tmp_path, idle_timeout_s=60, clock=clock)
    a = service.open("a", upload(tmp_path, "a.mp4"), "a.mp4")
    clock.now += 30
    b = service.open("b", upload(tmp_path, "b.mp4"), "b.mp4")
    clock.now += 40  # a idle 70 s, b 40 s
    assert service.sweep() == 1
    assert a.closed and not a.folder.exists() and b.folder.exists()
    with pytest.raises(SamedgeError, match="upload a video first"):
        service.get("a")
    clock.now += 100
    with b.using():  # a running propagation holds the session: not idle
        assert service.sweep() == 0
        with pytest.raises(SamedgeError, match="propagation is running"), b.using():
            pass
    assert service.sweep() == 0  # the action just ended: it counts as use
    clock.now += 61
    assert service.sweep() == 1 and not b.folder.exists()
    c = service.open("c", upload(tmp_path, "c.mp4"), "c.mp4")
    service.shutdown()
    assert c.closed and not service.root.exists()


def test_sweeper_thread_deletes_idle_sessions(tmp_path: Path) -> None:
    service = make_service(tmp_path, idle_timeout_s=0.05)
    video = service.open("s", upload(tmp_path), "clip.mp4")
    service.start_sweeper(every_s=0.05)
    try:
        for _ in range(100):
            if video.closed:
                break
            __import__("time").sleep(0.05)
        assert video.closed and not video.folder.exists()
    finally:
        service.shutdown()


# -- objects and stored masks ---------------------------------------------------------------


def test_object_list(tmp_path: Path) -> None:
    video = make_service(tmp_path).open("s", upload(tmp_path), "clip.mp4")
    assert [(o.obj_id, o.name) for o in video.objects] == [(1, "object 1")]
    swan = video.add_object("  swan\x00 ")
    other = video.add_object()
    assert (swan.obj_id, swan.name, other.name) == (2, "swan", "object 3")
    assert len({o.color for o in video.objects}) == 3
    assert video.rename_object(3, "reed").name == "reed"
    with pytest.raises(PromptError, match="type a name"):
        video.rename_object(3, "   ")
    video.remove_object(2)
    assert [o.obj_id for o in video.objects] == [1, 3]
    assert video.add_object().obj_id == 4  # ids are not reused: the tracker knew 2
    with pytest.raises(PromptError, match="there is no object 2"):
        video.object(2)
    with pytest.raises(PromptError, match="click an object on some frame first"):
        video.passes("forward")


def test_packed_masks_are_compact_and_exact() -> None:
    mask = ground_truth(0, (854, 480))
    packed = PackedMask.pack(mask, 3.5)
    np.testing.assert_array_equal(packed.unpack(), mask)
    assert len(packed.data) < mask.size / 64  # under 1/8 of a bit per pixel here
    assert packed.score == 3.5


def test_downloads_package_the_stored_masks(tmp_path: Path) -> None:
    """Packaging only: DAVIS' ground-truth masks stand in as the stored results."""
    video = make_service(tmp_path).open("s", upload(tmp_path), "swan clip.mp4")
    with pytest.raises(SamedgeError, match="nothing tracked yet"):
        video.downloads("sam2.1_hiera_tiny")
    video.add_object("not the swan")
    truth = [ground_truth(i) for i in range(CLIP_FRAMES)]
    for i, mask in enumerate(truth):
        masks = np.stack([mask, ~mask])
        video.results.put(
            FrameResult(i, (1, 2), masks, np.zeros((2, 0, 0), np.float32), np.array([2.0, -1.0]))
        )
    assert video.results.nbytes() < 2 * CLIP_FRAMES * mask.size / 8 / 4
    files = video.downloads("sam2.1_hiera_tiny")
    assert files.frames == CLIP_FRAMES
    for path in (files.masks_zip, files.overlay, files.matte_zip, files.track_json):
        assert path.is_file() and path.is_relative_to(video.folder)
        assert path.name.startswith("swan_clip-")
    with zipfile.ZipFile(files.masks_zip) as zf:
        names = sorted(zf.namelist())
        assert names == [f"masks/obj{o}/{i:05d}.png" for o in (1, 2) for i in range(CLIP_FRAMES)]
        for i, mask in enumerate(truth):
            for obj, want in ((1, mask), (2, ~mask)):
                png = zf.read(f"masks/obj{obj}/{i:05d}.png")
                got = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_GRAYSCALE)
                np.testing.assert_array_equal(got > 127, want)
    with zipfile.ZipFile(files.matte_zip) as zf:
        assert sorted(zf.namelist()) == ["matte/obj1.mov", "matte/obj2.mov"]
        zf.extract("matte/obj1.mov", tmp_path / "matte")
    cap = cv2.VideoCapture(str(tmp_path / "matte" / "matte" / "obj1.mov"))
    for mask in truth:  # lossless: the matte is the mask
        ok, grey = cap.read()
        assert ok
        np.testing.assert_array_equal(grey[..., 0] > 127, mask)
    cap.release()
    cap = cv2.VideoCapture(str(files.overlay))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == CLIP_FRAMES
    cap.release()
    record = json.loads(files.track_json.read_text())
    assert record["source"]["path"] == "swan_clip" and record["source"]["frames"] == CLIP_FRAMES
    assert [f["frame"] for f in record["frames"]] == list(range(CLIP_FRAMES))
    for frame, mask in zip(record["frames"], truth, strict=True):
        first, second = frame["objects"]
        assert first["present"] and not second["present"]
        np.testing.assert_array_equal(rle_decode(first["segmentation"]), mask)
    # A second build replaces the first.
    again = video.downloads("sam2.1_hiera_tiny")
    assert again.masks_zip == files.masks_zip and files.masks_zip.is_file()


# -- tracking with the seed-0 SAM 2.1 Hiera-T export -----------------------------------------


def _choice() -> Choice:
    return Choice("model", "fp32", "cpu")


def _zip_masks(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as zf:
        return {n: zf.read(n) for n in sorted(zf.namelist()) if n.endswith(".png")}


def run_track_cli(clip: Path, model: Path, out: Path, prompts: list[str]) -> None:
    """``samedge track`` in this process, as a user runs it."""
    from samedge.cli.main import main

    args = [str(clip), "--model", str(model), "--out", str(out), "--no-progress", "--threads", "2"]
    assert main(["track", *args, *prompts]) == 0


@pytest.fixture(scope="module")
def tracking(
    small_checkpoint_export: CheckpointExport, tmp_path_factory: pytest.TempPathFactory
) -> tuple[VideoService, Path, Path]:
    """``(service, model folder, a copy of the clip)`` with SAM 2.1 Hiera-T exported at 256
    pixels (the video parity tests' small export: the tab's plumbing is what is tested
    here, at a fraction of the tracking cost)."""
    pytest.importorskip("samedge.video.predictor", reason="VideoPredictor is not in this build")
    tmp = tmp_path_factory.mktemp("video-track")
    folder = small_checkpoint_export.folder
    service = make_service(tmp, folder)
    service.engine.pool.threads = 2
    clip = make_clip(tmp / "clip.mp4")
    return service, folder, clip


def test_click_propagate_correct_repropagate(
    tracking: tuple[VideoService, Path, Path], tmp_path: Path
) -> None:
    from samedge.video import VideoPredictor
    from samedge.video.io import open_video

    service, model, clip = tracking
    copy = tmp_path / "upload.mp4"
    copy.write_bytes(clip.read_bytes())
    video = service.open("t", copy, "clip.mp4")
    predictor, key, label = service.predictor(_choice())
    video.bind(predictor, key, label)

    # Click the swan on frame 0, propagate forward: progress per frame, then done.
    x, y = 170.0, 140.0
    first = video.click(predictor, 0, 1, "positive", x, y)
    assert first is not None and first.frame_index == 0 and first.object_ids == (1,)
    steps = list(video.propagate(predictor, "forward"))
    assert [s.done for s in steps[:-1]] == list(range(1, CLIP_FRAMES + 1))
    assert steps[-1].finished and not steps[-1].stopped and steps[-1].total == CLIP_FRAMES
    assert video.results.frames() == list(range(CLIP_FRAMES)) and not video.dirty
    files = video.downloads(str(model))
    # (The browser test checks these files against samedge track with the same prompt.)
    assert len(_zip_masks(files.masks_zip)) == CLIP_FRAMES

    # Correct frame 5 with a negative click and re-propagate: only frames 5.. are redone.
    before = {i: video.results.get(i) for i in range(CLIP_FRAMES)}
    fixed = video.click(predictor, 5, 1, "negative", 300.0, 60.0)
    assert fixed is not None and video.corrected == {5}
    # The corrected frame is not tracked over (that would undo the correction): the
    # frames after it are, with its corrected memory.
    assert video.passes("forward") == [(6, False, 1, 2)]
    assert video.passes("both") == [(4, True, 4, 5), (6, False, 1, 2)]
    steps = list(video.propagate(predictor, "forward"))
    assert steps[-1].finished and steps[-1].total == 2
    assert [s.frame_index for s in steps[:-1]] == [6, 7]
    for i in range(5):
        assert video.results.get(i) == before[i]

    # The library called directly with the same sequence of calls gives the same masks.
    direct = VideoPredictor.from_pretrained(model, threads=2)
    source = open_video(clip)
    state = direct.init_state(frame_size=source.size, num_frames=len(source), keep_history=True)
    point = np.array([[x, y]], np.float32)
    direct.add_prompt(state, 0, source[0], 1, points=point, labels=np.array([1], np.int32))
    list(direct.propagate(state, source, start_frame=0))
    negative = np.array([[300.0, 60.0]], np.float32)
    at5 = direct.add_prompt(state, 5, source[5], 1, points=negative, labels=np.array([0], np.int32))
    np.testing.assert_array_equal(video.results.get(5)[1].unpack(), at5.mask_of(1))
    for result in direct.propagate(state, source, start_frame=6):
        np.testing.assert_array_equal(
            video.results.get(result.frame_index)[1].unpack(), result.mask_of(1)
        )

    # Stop: the propagation ends after the current frame; the changed frame stays pending.
    video.click(predictor, 6, 1, "positive", x, y)
    assert video.passes("backward") == [(4, True, 4, 5)]  # 6 and 5 are corrections
    run = video.propagate(predictor, "backward")
    progress = next(run)
    video.stop()
    rest = list(run)
    assert rest[-1].stopped and rest[-1].done == progress.done + 1
    assert video.dirty == {6}
    service.close("t")
    assert not video.folder.exists()


def test_a_model_without_video_graphs_is_one_line(tmp_path: Path) -> None:
    pytest.importorskip("samedge.video.predictor", reason="VideoPredictor is not in this build")
    service = make_service(tmp_path, tmp_path)  # a folder that is no export at all
    with pytest.raises(SamedgeError) as info:
        service.predictor(_choice())
    assert "\n" not in str(info.value)


def test_clip_frames_are_davis_frames() -> None:
    """The helper's clip is the real sequence (what the tracking tests click on)."""
    jpeg = shared_path("data", "davis2016", "JPEGImages", SEQUENCE, "00000.jpg")
    first = cv2.resize(cv2.imread(str(jpeg)), CLIP_SIZE, interpolation=cv2.INTER_AREA)
    assert first.shape == (240, 432, 3)
    assert ground_truth(0).any() and ground_truth(0)[140, 170]  # the click lands on the swan


# -- the tab's handlers, without a server ---------------------------------------------------


class _Request:
    def __init__(self, session: str) -> None:
        self.session_hash = session


def test_tab_handlers_upload_scrub_objects(tmp_path: Path) -> None:
    pytest.importorskip("gradio", reason="needs the [web] extra: pip install 'samedge[web]'")
    from samedge.web.video import PropagationProgress
    from samedge.web.video_tab import VideoHandlers, objects_html, progress_html

    service = make_service(tmp_path)
    handlers = VideoHandlers(service)
    request = _Request("tab")
    notes = tmp_path / "notes.mp4"
    notes.write_text("not a video\n")
    with pytest.warns(UserWarning, match=r"^notes\.mp4 is not a video"):  # the pop-up
        refused = handlers.on_upload({"path": str(notes), "orig_name": "notes.mp4"}, request)
    assert refused[0] is None  # the upload box is emptied for the next try
    assert refused[1].startswith("**Refused:** notes.mp4 is not a video")
    path = upload(tmp_path)
    shown = handlers.on_upload({"path": str(path), "orig_name": "swan.mp4"}, request)
    assert shown[1].startswith("swan.mp4: 8 frames, 432x240")
    assert shown[3].shape == (240, 432, 3) and "frame **0** of 7" in shown[4]
    canvas, line = handlers.on_frame(6, request)
    assert "frame **6** of 7" in line and canvas.shape == (240, 432, 3)
    html, dropdown, name = handlers.on_add("swan <b>", request)
    assert "swan &lt;b&gt;" in html and name == ""  # names are escaped
    assert [c[1] for c in dropdown.choices] == [1, 2]
    assert "reed" in handlers.on_rename(2, "reed", request)[0]
    html, dropdown, canvas = handlers.on_remove(2, 3, "model", "fp32", "cpu", request)
    assert "reed" not in html and dropdown.value == 1 and canvas.shape == (240, 432, 3)
    assert objects_html(service.get("tab")).count("<li>") == 1
    bar = progress_html(PropagationProgress(3, 8, 2, 0.85))
    assert '<progress value="3" max="8"' in bar and "3 / 8 frames · 850 ms/frame" in bar
    handlers.on_unload(request)
    assert service.sessions == 0 and not (service.root / session_key("tab")).exists()
