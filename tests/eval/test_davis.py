"""DAVIS J&F: region Jaccard and boundary F-measure as the DAVIS toolkit defines them, with
expected values worked out here independently (by geometry, or by a brute-force distance
check instead of the dilation), and the ``samedge eval --format davis`` command."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from samedge.cli.main import main
from samedge.errors import SamedgeError
from samedge.eval.davis import (
    boundary_f,
    boundary_map,
    boundary_radius,
    davis_palette,
    encode_labels,
    evaluate_davis,
    jaccard,
    open_davis,
    read_labels,
    statistics,
)

from ..conftest import CheckpointExport, requires_export, shared_path

SIDE = 40  # square objects of SIDE x SIDE pixels in a 100 x 100 image
RADIUS = 2  # ceil(0.008 * hypot(100, 100)) = ceil(1.13)


def square(dx: int = 0, dy: int = 0, size: tuple[int, int] = (100, 100)) -> np.ndarray:
    mask = np.zeros(size, bool)
    mask[30 + dy : 30 + dy + SIDE, 20 + dx : 20 + dx + SIDE] = True
    return mask


def test_identical_empty_and_missing_masks() -> None:
    gt = square()
    assert jaccard(gt, gt) == 1.0 and boundary_f(gt, gt) == 1.0
    empty = np.zeros_like(gt)
    assert jaccard(empty, gt) == 0.0 and boundary_f(empty, gt) == 0.0  # lost object
    assert jaccard(gt, empty) == 0.0 and boundary_f(gt, empty) == 0.0  # object made up
    assert jaccard(empty, empty) == 1.0 and boundary_f(empty, empty) == 1.0


def test_boundary_is_the_ring_half_a_pixel_towards_the_origin() -> None:
    ring = boundary_map(square())
    # The outline of the (SIDE+1)-pixel box from (row 29, col 19) to (row 69, col 59).
    expected = np.zeros_like(ring)
    expected[29 : 29 + SIDE + 1, 19 : 19 + SIDE + 1] = True
    expected[30 : 29 + SIDE, 20 : 19 + SIDE] = False
    assert np.array_equal(ring, expected) and ring.sum() == 4 * SIDE
    assert boundary_radius((100, 100)) == RADIUS and boundary_radius((480, 854)) == 8


@pytest.mark.parametrize("shift", [1, 2, 5, 10, 15])
def test_a_shifted_square(shift: int) -> None:
    """J = overlap / union = (a - d) / (a + d). F: with the shift within the tolerance every
    boundary pixel is matched; beyond it, of the 4a pixels of each ring the top and bottom
    rows match up to r pixels past the other's end (2 (a + r - d + 1)), the near side
    only within r rows of the corners (2 r), the far side nowhere; recall is the same by
    symmetry."""
    gt, pred = square(), square(dx=shift)
    a, d, r = SIDE, shift, RADIUS
    assert jaccard(pred, gt) == pytest.approx((a - d) / (a + d))
    expected_f = 1.0 if d <= r else (2 * (a + r - d + 1) + 2 * r) / (4 * a)
    assert boundary_f(pred, gt) == pytest.approx(expected_f)
    assert boundary_f(gt, pred) == pytest.approx(expected_f)
    vertical = boundary_f(square(dy=shift), gt)
    assert vertical == pytest.approx(expected_f)


def brute_force_f(pred: np.ndarray, gt: np.ndarray, radius: float) -> float:
    """F from the definition: a boundary pixel counts when one of the other mask lies within
    Euclidean ``radius`` (no dilation)."""
    pb, gb = np.argwhere(boundary_map(pred)), np.argwhere(boundary_map(gt))
    if len(pb) == 0 or len(gb) == 0:
        return 1.0 if len(pb) == len(gb) else 0.0
    dist = np.sqrt(((pb[:, None, :] - gb[None, :, :]) ** 2).sum(-1))
    precision = np.mean(dist.min(axis=1) <= radius)
    recall = np.mean(dist.min(axis=0) <= radius)
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def test_irregular_shapes_against_the_definition() -> None:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:60, :90]
    for trial in range(12):
        blobs = []
        for _ in range(2):
            cy, cx, ry, rx = rng.uniform(10, 50), rng.uniform(10, 80), *rng.uniform(4, 20, 2)
            blobs.append(((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1)
        gt, pred = blobs
        if trial % 3 == 0:
            pred = gt ^ (rng.random(gt.shape) < 0.02)  # noisy copy
        for bound_th in (0.008, 3, 0.05):
            radius = boundary_radius(gt.shape, bound_th)
            assert boundary_f(pred, gt, bound_th=bound_th) == pytest.approx(
                brute_force_f(pred, gt, radius)
            ), (trial, bound_th)
        union = np.count_nonzero(pred | gt)
        assert jaccard(pred, gt) == pytest.approx(np.count_nonzero(pred & gt) / union)


def test_void_pixels_are_left_out() -> None:
    gt, pred = square(), square(dx=10)
    void = np.zeros_like(gt)
    void[:, 60:] = True  # hides the part of pred outside gt
    assert jaccard(pred, gt, void) == pytest.approx(30 / 40)


def test_statistics_mean_recall_decay() -> None:
    values = np.linspace(1, 0, 9)  # 1, 0.875, ..., 0
    stats = statistics(values)
    assert stats["mean"] == pytest.approx(0.5)
    assert stats["recall"] == pytest.approx(4 / 9)  # 1, 0.875, 0.75, 0.625 are above 0.5
    # Toolkit bins: frames [0..2], [2..4], [4..6], [6..8]: decay = mean(first) - mean(last).
    assert stats["decay"] == pytest.approx(0.875 - 0.125)
    assert statistics([0.7])["decay"] == 0.0


# -- the dataset layout and the command -------------------------------------------------------


def _palette_png(path: Path, labels: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(encode_labels(labels))


def _gray_png(path: Path, mask: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(mask.astype(np.uint8) * 255, mode="L").save(path)


@pytest.fixture
def davis(tmp_path: Path) -> tuple[Path, Path]:
    """A DAVIS folder: 'two' (5 frames, objects 1 and 2, palette PNGs with a void band) and
    'one' (4 frames, DAVIS 2016 0/255 masks); predictions: object 1 exact, object 2 lost,
    'one' shifted by 10 pixels."""
    root, pred = tmp_path / "DAVIS", tmp_path / "pred"
    for t in range(5):
        labels = np.zeros((100, 100), np.uint8)
        labels[square()] = 1
        labels[5:15, 5:95] = 2
        labels[80:82, :] = 255  # void: background for the toolkit
        _palette_png(root / "Annotations" / "two" / f"{t:05d}.png", labels)
        only_1 = np.where(labels == 1, 1, 0).astype(np.uint8)
        _palette_png(pred / "two" / f"{t:05d}.png", only_1)
    for t in range(4):
        _gray_png(root / "Annotations" / "one" / f"{t:05d}.png", square())
        _gray_png(pred / "one" / f"{t:05d}.png", square(dx=10))
    (root / "JPEGImages").mkdir()
    return root, pred


def test_read_labels(davis: tuple[Path, Path]) -> None:
    root, _ = davis
    two = read_labels(root / "Annotations" / "two" / "00000.png", annotation=True)
    assert set(np.unique(two).tolist()) == {0, 1, 2}  # void became background
    one = read_labels(root / "Annotations" / "one" / "00000.png", annotation=True)
    assert set(np.unique(one).tolist()) == {0, 1} and np.array_equal(one == 1, square())
    assert davis_palette()[3:6] == [128, 0, 0]  # DAVIS's object 1 is dark red


def test_evaluate_weighs_every_object_once(davis: tuple[Path, Path]) -> None:
    root, pred = davis
    result = evaluate_davis(pred, open_davis(root))
    by_name = {s.name: s for s in result.sequences}
    assert [s.name for s in result.sequences] == ["one", "two"]
    assert by_name["two"].frames == ("00001", "00002", "00003")  # first and last left out
    assert by_name["one"].frames == ("00001", "00002")
    f_shift = (2 * (SIDE + RADIUS - 10 + 1) + 2 * RADIUS) / (4 * SIDE)
    assert by_name["two"].j_mean == pytest.approx(0.5)  # (1 + 0) / 2 objects
    assert by_name["one"].j_mean == pytest.approx(30 / 50)
    assert by_name["one"].f_mean == pytest.approx(f_shift)
    g = result.means()
    assert g["J-Mean"] == pytest.approx((1 + 0 + 0.6) / 3)
    assert g["F-Mean"] == pytest.approx((1 + 0 + f_shift) / 3)
    assert g["J&F-Mean"] == pytest.approx((g["J-Mean"] + g["F-Mean"]) / 2)
    assert g["J-Recall"] == pytest.approx(2 / 3) and g["J-Decay"] == 0.0


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda pred: (pred / "two" / "00002.png").unlink(), "no prediction .*00002.png"),
        (lambda pred: [p.unlink() for p in (pred / "one").iterdir()] and (pred / "one").rmdir(),
         "no predictions for sequence one"),
        (lambda pred: _palette_png(pred / "one" / "00001.png", np.full((100, 100), 3, np.uint8)),
         "has object id 3; sequence one has 1 object"),
        (lambda pred: _gray_png(pred / "one" / "00001.png", np.ones((50, 100), bool)),
         "is 100x50, its annotation 100x100"),
        (lambda pred: Image.new("RGB", (100, 100), (200, 0, 0)).save(pred / "one" / "00001.png"),
         "colour image"),
    ],
)  # fmt: skip
def test_bad_predictions_are_one_line(davis, damage, message: str) -> None:
    root, pred = davis
    damage(pred)
    with pytest.raises(SamedgeError, match=message) as err:
        evaluate_davis(pred, open_davis(root))
    assert "\n" not in str(err.value)


def test_dataset_errors(tmp_path: Path, davis) -> None:
    root, _ = davis
    with pytest.raises(SamedgeError, match="not a DAVIS folder"):
        open_davis(root / "Annotations")
    with pytest.raises(SamedgeError, match="'nope' has no annotations"):
        open_davis(root, ["nope"])
    assert open_davis(root, limit=1).sequences == ("one",)
    (root / "ImageSets" / "2017").mkdir(parents=True)
    (root / "ImageSets" / "2017" / "val.txt").write_text("two\n")
    assert open_davis(root).sequences == ("two",)  # DAVIS 2017: the val split only


def test_cli_scores_predictions(davis, tmp_path: Path, capsys) -> None:
    root, pred = davis
    out = tmp_path / "report"
    argv = ["eval", "--format", "davis", "--dataset", str(root), "--predictions", str(pred),
            "--out", str(out), "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "davis: 2 sequences, 3 objects, J&F" in printed
    summary = json.loads((out / "summary.json").read_text())
    assert summary["global"]["J-Mean"] == pytest.approx((1 + 0 + 0.6) / 3)
    assert summary["sequences"]["two"]["objects"]["2"]["J"]["mean"] == 0.0
    assert summary["per_frame"]["one"]["1"]["J"] == [0.6, 0.6]
    assert "| one | 1 | 2 |" in (out / "summary.md").read_text()
    assert sorted(p.name for p in out.iterdir()) == ["summary.json", "summary.md"]


def test_cli_predictions_refuse_a_model_runs_folder_but_score_it_in_place(
    davis, tmp_path: Path, capsys
) -> None:
    """A --model run leaves OUT/predictions; scoring other predictions into that OUT would
    put a report beside masks it does not describe: refused, nothing deleted. Scoring
    OUT/predictions itself into OUT works."""
    root, pred = davis
    out = tmp_path / "report"
    shutil.copytree(pred, out / "predictions")  # what a --model run leaves
    before = sorted(p.relative_to(out) for p in out.rglob("*"))
    argv = ["eval", "--format", "davis", "--dataset", str(root), "--out", str(out),
            "--no-progress", "--predictions"]  # fmt: skip
    assert main([*argv, str(pred)]) == 2
    err = capsys.readouterr().err.strip()
    assert "holds predictions/ of an earlier --model run" in err and "\n" not in err
    assert "give another --out" in err
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before
    assert main([*argv, str(out / "predictions")]) == 0
    assert (out / "summary.json").is_file() and (out / "predictions").is_dir()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ([], "give one of them"),
        (["--predictions", "P", "--model", "m"], "give one of them"),
        (["--predictions", "P", "--protocol", "box"], "--protocol is not used"),
        (["--predictions", "P", "--against", "other"], "--against torch only"),
        (["--predictions", "P", "--against", "torch"], "--against torch needs --model"),
    ],
)
def test_cli_argument_errors(davis, tmp_path: Path, capsys, extra, message: str) -> None:
    root, _ = davis
    argv = ["eval", "--format", "davis", "--dataset", str(root), "--out", str(tmp_path / "o"),
            *extra]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err
    assert not (tmp_path / "o").exists()


def test_image_formats_still_need_a_model_and_refuse_davis_options(tmp_path, capsys) -> None:
    base = ["eval", "--format", "folder", "--dataset", "d", "--out", str(tmp_path / "o")]
    assert main(base) == 2
    assert "--model is required" in capsys.readouterr().err
    assert main([*base, "--model", "m", "--max-frames", "3"]) == 2
    assert "--max-frames is for --format davis" in capsys.readouterr().err


def test_shared_davis2016_annotations_score_themselves_perfectly(tmp_path: Path) -> None:
    root = shared_path("data", "davis2016")
    dataset = open_davis(root, ["car-shadow"])
    result = evaluate_davis(root / "Annotations", dataset, max_frames=10)
    assert result.sequences[0].frames == tuple(f"{i:05d}" for i in range(1, 9))
    assert result.means()["J&F-Mean"] == 1.0
    assert math.isclose(result.means()["F-Mean"], 1.0)


class OracleTracker:
    """Stands in for VideoPredictor: 'tracks' by reading the annotation of each frame, so
    the scores of ``--model`` are exactly 1 and any loss is in the wiring."""

    def __init__(self, annotations: Path, fail: bool = False) -> None:
        self.annotations, self.fail, self.prompts = annotations, fail, []

    def init_state(self, frame_size, num_frames=None):
        assert num_frames == 60 or num_frames == 50  # dog, blackswan: the whole sequence
        return {"size": frame_size, "objects": []}

    def add_prompt(self, state, frame_index, frame, obj_id, mask=None, **_):
        assert frame_index == 0 and mask.dtype == bool and mask.any()
        state["objects"].append(obj_id)
        self.prompts.append(obj_id)

    def propagate(self, state, frames, start_frame=None, reverse=False, max_frames=None):
        from samedge.video import FrameResult

        name = frames.path.name
        files = sorted((self.annotations / name).glob("*.png"))
        last = len(frames) - 1 if max_frames is None else start_frame + max_frames
        for i in range(start_frame, min(len(frames) - 1, last) + 1):
            if self.fail and i == 2:
                raise RuntimeError("the tracker broke")
            labels = read_labels(files[i], annotation=True)
            ids = tuple(state["objects"])
            masks = np.stack([labels == obj for obj in ids])
            yield FrameResult(i, ids, masks, np.zeros((len(ids), 256, 256), np.float32),
                              np.ones(len(ids), np.float32))  # fmt: skip


def test_tracking_with_model_writes_predictions_and_scores_them(tmp_path, monkeypatch, capsys):
    import samedge.video

    root = shared_path("data", "davis2016")
    oracle = OracleTracker(root / "Annotations")
    monkeypatch.setattr(
        samedge.video, "VideoPredictor",
        type("Fake", (), {"from_pretrained": staticmethod(lambda *a, **k: oracle)}),
        raising=False,
    )  # fmt: skip
    out = tmp_path / "run"
    argv = ["eval", "--format", "davis", "--model", "m", "--dataset", str(root), "--out",
            str(out), "--sequences", "dog,blackswan", "--max-frames", "6",
            "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    assert "davis: 2 sequences, 2 objects, J&F 1.0000" in capsys.readouterr().out
    assert oracle.prompts == [1, 1]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
    assert sorted(p.name for p in out.iterdir()) == ["predictions", "summary.json", "summary.md"]
    written = sorted(p.name for p in (out / "predictions" / "dog").iterdir())
    assert written == [f"{i:05d}.png" for i in range(6)]
    image = Image.open(out / "predictions" / "dog" / "00003.png")
    assert image.mode == "P" and image.getpalette()[3:6] == [128, 0, 0]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["model"] == "m" and summary["max_frames"] == 6
    assert summary["sequences"]["dog"]["frames"] == 4  # frames 1..4 of 0..5

    oracle.fail = True
    with pytest.raises(RuntimeError, match="the tracker broke"):
        main([*argv[:8], str(tmp_path / "second"), "--no-progress"])  # every frame
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # nothing half-written


@pytest.mark.slow
@pytest.mark.export
@requires_export
def test_against_the_official_video_predictor(
    small_checkpoint_export: CheckpointExport, tmp_path: Path, capsys
) -> None:
    """Three frames of 'car-shadow' tracked by the export (``samedge export --checkpoint
    FILE --image-size 256``) and by SAM2VideoPredictor built at that size with the same
    checkpoint: their masks agree frame by frame."""
    source = shared_path("data", "davis2016")
    root = tmp_path / "DAVIS"
    for kind, suffix in (("JPEGImages", ".jpg"), ("Annotations", ".png")):
        (root / kind / "car-shadow").mkdir(parents=True)
        for i in range(3):
            name = f"{i:05d}{suffix}"
            (root / kind / "car-shadow" / name).write_bytes(
                (source / kind / "car-shadow" / name).read_bytes()
            )
    out = tmp_path / "run"
    model, checkpoint = small_checkpoint_export.folder, small_checkpoint_export.checkpoint
    argv = ["eval", "--format", "davis", "--model", str(model), "--checkpoint", str(checkpoint),
            "--dataset", str(root), "--against", "torch", "--out", str(out), "--threads", "2",
            "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    assert "agreement with torch" in capsys.readouterr().out
    agreement = json.loads((out / "summary.json").read_text())["agreement"]
    assert agreement["masks"] == 3  # one object on frames 0, 1, 2
    assert agreement["mean_iou"] >= 0.99 and agreement["min_iou"] >= 0.98
    # Not vacuous: samedge's masks, which agree with the official ones, are neither empty
    # nor full (frame 0 is the first annotation given as the prompt).
    for png in sorted((out / "predictions" / "car-shadow").glob("*.png")):
        assert 0.01 < (np.asarray(Image.open(png)) > 0).mean() < 0.99, png.name
    assert "## Agreement with torch" in (out / "summary.md").read_text()
