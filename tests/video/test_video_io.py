"""Frame sources: a video file (an mp4 made from DAVIS frames here, and the shared
bedroom.mp4), a frame folder (DAVIS layout), and their one-line errors."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from samedge.errors import ImageError
from samedge.video import FrameSource
from samedge.video.io import FrameFolder, VideoFile, open_camera, open_video

from ..conftest import shared_path


def decode_all(path: Path) -> list[np.ndarray]:
    """Every frame, RGB, read sequentially with plain OpenCV (the reference)."""
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame[:, :, ::-1])
    cap.release()
    return frames


@pytest.fixture(scope="module")
def davis_mp4(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An mp4 of the first 12 frames of DAVIS 'dog' (854x480, 24 fps)."""
    folder = shared_path("data", "davis2016", "JPEGImages", "dog")
    path = tmp_path_factory.mktemp("video") / "dog.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 24, (854, 480))
    for file in sorted(folder.glob("*.jpg"))[:12]:
        writer.write(cv2.imread(str(file)))
    writer.release()
    return path


def test_video_file_is_a_frame_source_with_the_true_count(davis_mp4: Path) -> None:
    video = open_video(davis_mp4)
    assert isinstance(video, VideoFile) and isinstance(video, FrameSource)
    assert len(video) == 12 and video.size == (854, 480) and video.fps == pytest.approx(24)
    frame = video[0]
    assert frame.shape == (480, 854, 3) and frame.dtype == np.uint8 and frame.flags.c_contiguous


def test_any_access_order_gives_the_sequentially_decoded_frames(davis_mp4: Path) -> None:
    reference = decode_all(davis_mp4)
    video = open_video(davis_mp4)
    for order in (range(12), range(11, -1, -1), [5, 0, 11, 3, 4, 10, 2, -1]):
        for i in order:
            assert np.array_equal(video[i], reference[i]), i
    assert all(np.array_equal(a, b) for a, b in zip(video, reference, strict=True))
    with pytest.raises(IndexError):
        video[12]


def test_bedroom_mp4_forward_and_backward() -> None:
    path = shared_path("data", "video", "bedroom.mp4")
    video = open_video(path)
    assert len(video) == 200 and video.size == (960, 540) and video.fps == pytest.approx(30)
    reference = decode_all(path)
    assert len(reference) == 200
    for i in [*range(199, 179, -1), 0, 100, 101, 37]:  # backward as --reverse reads, then jumps
        assert np.array_equal(video[i], reference[i]), i
    # Colour order: RGB, the BGR OpenCV decodes flipped.
    assert np.array_equal(video[3][:, :, 0], cv2.cvtColor(reference[3], cv2.COLOR_RGB2BGR)[:, :, 2])


def test_the_frame_count_is_counted_not_read_from_the_header(tmp_path: Path) -> None:
    path = tmp_path / "cut.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    for i in range(20):
        writer.write(np.full((48, 64, 3), 10 * i, np.uint8))
    writer.release()
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * 0.6)])  # the header still says 20 frames
    claimed = cv2.VideoCapture(str(path)).get(cv2.CAP_PROP_FRAME_COUNT)
    video = open_video(path)
    assert claimed == 20 and 0 < len(video) < 20
    assert len(list(video)) == len(video)


def test_frame_folder_in_davis_layout() -> None:
    folder = shared_path("data", "davis2016", "JPEGImages", "car-shadow")
    frames = open_video(folder, fps=24)
    assert isinstance(frames, FrameFolder) and isinstance(frames, FrameSource)
    assert len(frames) == 40 and frames.size == (854, 480) and frames.fps == 24
    assert np.array_equal(frames[7], cv2.imread(str(folder / "00007.jpg"))[:, :, ::-1])


def _write(path: Path, width: int, height: int, value: int = 0) -> None:
    cv2.imwrite(str(path), np.full((height, width, 3), value, np.uint8))


def test_frame_folder_of_rotated_photos_reads_them_upright(tmp_path: Path) -> None:
    """Portrait phone photos: landscape pixels with EXIF orientation 6 (rotate 90). The
    folder took its size from the pixels and every frame, read upright, then mismatched."""
    from PIL import Image

    pixels = np.zeros((40, 60, 3), np.uint8)
    pixels[:5] = 255  # the top rows, which end up on the right
    exif = Image.Exif()
    exif[0x0112] = 6
    for i in range(2):
        Image.fromarray(pixels).save(tmp_path / f"{i:05d}.jpg", exif=exif, quality=95)
    folder = FrameFolder(tmp_path)
    assert folder.size == (40, 60)  # width, height as the frames read
    frame = folder[1]
    assert frame.shape == (60, 40, 3) and frame[:, -3:].mean() > 200 and frame[:, :30].mean() < 30


def test_frame_folder_sorts_numbers_naturally_and_skips_other_files(tmp_path: Path) -> None:
    for i in (10, 2, 1):
        _write(tmp_path / f"frame_{i}.png", 8, 6, value=i)
    (tmp_path / "notes.txt").write_text("not a frame")
    _write(tmp_path / "z.bmp", 8, 6)  # not a frame suffix
    frames = open_video(tmp_path)
    assert [p.name for p in frames.files] == ["frame_1.png", "frame_2.png", "frame_10.png"]
    assert [int(f[0, 0, 0]) for f in frames] == [1, 2, 10]
    assert frames.fps == 0.0
    first = FrameFolder(tmp_path, count=2)
    assert len(first) == 2 and [int(f[0, 0, 0]) for f in first] == [1, 2]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: None, "holds no frames"),
        (lambda p: (_write(p / "a.jpg", 8, 6), _write(p / "b.jpg", 8, 7)), "differ in size"),
        (lambda p: (p / "a.png").write_bytes(b"not a png"), "cannot read frame"),
    ],
)
def test_frame_folder_errors_are_one_line(tmp_path: Path, make, message: str) -> None:
    make(tmp_path)
    with pytest.raises(ImageError, match=message) as err:
        open_video(tmp_path)
    assert "\n" not in str(err.value)


def test_video_errors_are_one_line(tmp_path: Path, davis_mp4: Path, monkeypatch) -> None:
    text = tmp_path / "clip.mp4"
    text.write_text("not a video")
    cases = [
        (tmp_path / "missing.mp4", "video not found"),
        (text, "cannot read video"),
    ]
    for path, message in cases:
        with pytest.raises(ImageError, match=message) as err:
            open_video(path)
        assert "\n" not in str(err.value)
    monkeypatch.setenv("SAMEDGE_MAX_PIXELS", "100000")
    with pytest.raises(ImageError, match="megapixels, more than the limit"):
        open_video(davis_mp4)
    with pytest.raises(ImageError, match="megapixels, more than the limit"):
        open_video(shared_path("data", "davis2016", "JPEGImages", "dog"))
    with pytest.raises(ImageError, match="live source"):
        open_video(0)  # type: ignore[arg-type]


def test_a_camera_that_does_not_exist_is_one_line() -> None:
    with pytest.raises(ImageError, match="cannot open camera 97"):
        open_camera(97)
