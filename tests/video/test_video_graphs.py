"""The pieces of samedge's tracker against the official code they replace: real-arithmetic
RoPE, the memory policy's frame selection and encodings, bfloat16 memories, frame and mask
resampling, hole filling, and the exported tracking graphs of the seeded test model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from samedge.errors import ArtifactError, PromptError, SamedgeError
from samedge.registry import get_spec, list_models
from samedge.specs import VideoSpec
from samedge.video.masks import fill_holes, mask_prompt, preprocess_frame, resize_aa
from samedge.video.memory import (
    from_bfloat16,
    horizon,
    retained,
    select_memories,
    to_bfloat16,
)

from ..conftest import requires_export, shared_path

MODEL = "sam2.1_hiera_tiny"
SPEC = get_spec(MODEL)


# ---------------------------------------------------------------------- RoPE


@requires_export
@pytest.mark.export
def test_real_rope_equals_the_official_complex_rope() -> None:
    import torch
    from sam2.modeling.position_encoding import apply_rotary_enc, compute_axial_cis

    from samedge.export.video import rotate_pairs

    gen = torch.Generator().manual_seed(0)
    freqs = compute_axial_cis(dim=256, end_x=64, end_y=64)
    real = torch.view_as_real(freqs)
    cos, sin = real[..., 0], real[..., 1]
    q = torch.randn(1, 1, 4096, 256, generator=gen)
    k = torch.randn(1, 1, 3 * 4096, 256, generator=gen)  # three memory frames
    q_ref, k_ref = apply_rotary_enc(q, k, freqs_cis=freqs, repeat_freqs_k=True)
    assert torch.allclose(rotate_pairs(q, cos, sin), q_ref, atol=1e-6, rtol=0)
    k_real = rotate_pairs(k.reshape(1, 1, 3, 4096, 256), cos, sin).reshape(k.shape)
    assert torch.allclose(k_real, k_ref, atol=1e-6, rtol=0)


@requires_export
@pytest.mark.export
def test_the_graphs_rope_projection_equals_rotating_the_projection() -> None:
    """The graphs rotate with one product (the projection and its pair-swapped copy)."""
    import torch
    from sam2.modeling.position_encoding import apply_rotary_enc, compute_axial_cis

    from samedge.export.video import _RopeLinear

    gen = torch.Generator().manual_seed(1)
    linear = torch.nn.Linear(64, 256)
    freqs = compute_axial_cis(dim=256, end_x=64, end_y=64)
    real = torch.view_as_real(freqs)
    rope = _RopeLinear(linear, real[..., 0], real[..., 1])
    x = torch.randn(2, 4096, 64, generator=gen)
    with torch.no_grad():
        projected = linear(x).reshape(1, 1, 2 * 4096, 256)
        _, want = apply_rotary_enc(projected[:, :, :4096], projected, freqs, repeat_freqs_k=True)
        got = rope(x).reshape(want.shape)
    assert torch.allclose(got, want, atol=1e-5, rtol=0)


# ---------------------------------------------------------------------- memory policy


class _Recorder(Exception):
    def __init__(self, kwargs: dict[str, Any]) -> None:
        self.kwargs = kwargs


def _official_selection(model: Any, video: VideoSpec, case: tuple) -> tuple[list, list, Any]:
    """What the official ``_prepare_memory_conditioned_features`` attends to: per memory
    token block its frame and temporal-encoding index, per pointer its frame, and the
    pointers' positional encoding. Outputs encode their frame in their values."""
    import torch

    frame, cond, tracked, reverse, num_frames = case
    hw = 4

    def out(t: int) -> dict[str, Any]:
        return {
            "maskmem_features": torch.full((1, video.mem_dim, 2, 2), float(t)),
            "maskmem_pos_enc": [torch.zeros(1, video.mem_dim, 2, 2)],
            "obj_ptr": torch.full((1, 256), float(t)),
        }

    output_dict = {
        "cond_frame_outputs": {t: out(t) for t in cond},
        "non_cond_frame_outputs": {t: out(t) for t in tracked},
    }

    class Record(torch.nn.Module):
        def forward(self, **kwargs: Any) -> None:
            raise _Recorder(kwargs)

    original = model.memory_attention
    model.memory_attention = Record()
    try:
        model._prepare_memory_conditioned_features(
            frame,
            False,
            [torch.zeros(hw, 1, 256)],
            [torch.zeros(hw, 1, 256)],
            [(2, 2)],
            output_dict,
            num_frames,
            reverse,
        )
    except _Recorder as rec:
        kwargs = rec.kwargs
    finally:
        model.memory_attention = original
    memory, pos = kwargs["memory"][:, 0], kwargs["memory_pos"][:, 0]
    n_ptr = kwargs["num_obj_ptr_tokens"] // 4
    spatial = memory[: len(memory) - 4 * n_ptr : hw]
    frames = [int(v[0]) for v in spatial]
    tpos_table = model.maskmem_tpos_enc.reshape(video.num_maskmem, -1)
    spatial_pos = pos[: len(memory) - 4 * n_ptr : hw]
    tpos = [int(torch.argmin((tpos_table - p).abs().sum(1))) for p in spatial_pos]
    pointers = [int(v[0]) for v in memory[len(memory) - 4 * n_ptr :: 4]]
    return list(zip(frames, tpos, strict=True)), pointers, pos[len(memory) - 4 * n_ptr :: 4]


def _cases() -> list[tuple]:
    rng = np.random.default_rng(0)
    cases = []
    for _ in range(60):
        num_frames = int(rng.integers(2, 60))
        frame = int(rng.integers(0, num_frames))
        cond = sorted({int(t) for t in rng.integers(0, num_frames, rng.integers(1, 4))})
        cond = [t for t in cond if t != frame] or [(frame + 1) % num_frames]
        if frame in cond:
            continue
        tracked = [t for t in range(num_frames) if t not in cond and rng.random() < 0.7]
        reverse = bool(rng.random() < 0.4)
        cases.append((frame, cond, [t for t in tracked if t != frame], reverse, num_frames))
    return cases


@requires_export
@pytest.mark.export
def test_memory_selection_is_the_official_one(torch_model: Any) -> None:
    """Which memories (with which temporal encodings) and pointers (with which
    positional encodings) a frame attends to, for random prompt and tracking histories,
    forward and in reverse, in the official order; with the memory stride and a cap on
    conditioning frames too."""
    import torch

    from samedge.export.video import sine_pe

    model = torch_model(MODEL)
    saved = model.memory_temporal_stride_for_eval, model.max_cond_frames_in_attn
    try:
        for stride, max_cond in ((1, -1), (3, 2)):
            model.memory_temporal_stride_for_eval = stride
            model.max_cond_frames_in_attn = max_cond
            video = VideoSpec(memory_temporal_stride=stride, max_cond_frames_in_attn=max_cond)
            for case in _cases():
                memories, pointers, ptr_pos = _official_selection(model, video, case)
                sel = select_memories(video, case[0], case[1], case[2], case[4], case[3])
                assert memories == list(zip(sel.memory_frames, sel.memory_tpos, strict=True)), case
                assert pointers == list(sel.pointer_frames), case
                with torch.no_grad():
                    tpos = torch.from_numpy(sel.pointer_tpos())
                    ours = model.obj_ptr_tpos_proj(sine_pe(tpos, 256))
                assert torch.equal(ours, ptr_pos), case
    finally:
        model.memory_temporal_stride_for_eval, model.max_cond_frames_in_attn = saved


def test_kept_outputs_cover_every_later_selection() -> None:
    """What a state keeps (outputs within the reach of an anchor) holds every frame a
    later step selects when tracking continues from an anchor, in either direction."""
    video = VideoSpec()
    reach = horizon(video)
    assert reach == 15
    tracked = list(range(101))
    anchors = {0, 100}
    kept = set(retained(tracked, anchors, reach))
    assert kept == set(range(16)) | set(range(85, 101))
    for frame, reverse in ((101, False), (99, True)):
        sel = select_memories(video, frame, [0], tracked, None, reverse)
        assert set(sel.memory_frames) | set(sel.pointer_frames) <= kept | {0}


@requires_export
@pytest.mark.export
def test_bfloat16_memories_round_as_torch() -> None:
    import torch

    rng = np.random.default_rng(0)
    x = np.concatenate(
        [
            rng.standard_normal(10000).astype(np.float32) * 10,
            np.array([0.0, -0.0, 1.0, 1.00390625, 1.01171875, 3.4e38, -1e-40, 65504.0], np.float32),
        ]
    )
    want = torch.from_numpy(x).to(torch.bfloat16).float().numpy()
    assert np.array_equal(from_bfloat16(to_bfloat16(x)), want)


# ---------------------------------------------------------------------- frames and masks


@requires_export
@pytest.mark.export
def test_frames_are_prepared_as_the_official_jpeg_loader() -> None:
    import torch
    from sam2.utils.misc import _load_img_as_tensor

    path = shared_path("data", "davis2016", "JPEGImages", "dog", "00000.jpg")
    from PIL import Image

    frame = np.asarray(Image.open(path).convert("RGB"))
    img, _, _ = _load_img_as_tensor(str(path), 1024)
    mean = torch.tensor(SPEC.pixel_mean)[:, None, None]
    std = torch.tensor(SPEC.pixel_std)[:, None, None]
    want = ((img.float() - mean) / std).numpy()
    assert np.array_equal(preprocess_frame(frame, SPEC)[0], want)


@requires_export
@pytest.mark.export
@pytest.mark.parametrize("size", [(480, 854), (1024, 1024), (37, 100), (1500, 2000)])
def test_mask_prompts_resize_as_the_official_predictor(size: tuple) -> None:
    import torch
    import torch.nn.functional as F

    rng = np.random.default_rng(1)
    mask = np.zeros(size, bool)
    h, w = size
    mask[h // 5 : h // 2, w // 4 : 3 * w // 4] = True
    mask ^= rng.random(size) < 0.02
    full, logits = mask_prompt(mask, 1024, 256)
    t = torch.from_numpy(mask)[None, None].float()
    if size != (1024, 1024):
        t = F.interpolate(t, (1024, 1024), mode="bilinear", align_corners=False, antialias=True)
        t = (t >= 0.5).float()
    assert np.array_equal(full, t[0, 0].numpy())
    low = F.interpolate(
        t * 20 - 10, (256, 256), mode="bilinear", align_corners=False, antialias=True
    )
    assert np.abs(logits - low[0, 0].numpy()).max() < 1e-5
    x = rng.standard_normal(size).astype(np.float32)
    ref = F.interpolate(
        torch.from_numpy(x)[None, None],
        (256, 256),
        mode="bilinear",
        align_corners=False,
        antialias=True,
    )[0, 0].numpy()
    assert np.abs(resize_aa(x, 256, 256) - ref).max() < 1e-5


def test_holes_up_to_the_area_are_filled_8_connected() -> None:
    logits = np.full((20, 20), 5.0, np.float32)
    logits[2:4, 2:6] = -1.0  # 8 pixels: filled
    logits[10:13, 10:13] = -2.0  # 9 pixels: kept
    logits[6, 6] = logits[7, 7] = -3.0  # diagonal neighbours: one region of 2
    logits[0, 19] = 0.0  # <= 0 is background: a hole of 1 at the border
    out = fill_holes(logits, 8)
    assert np.all(out[2:4, 2:6] == np.float32(0.1)) and out[6, 6] == out[7, 7] == np.float32(0.1)
    assert out[0, 19] == np.float32(0.1)
    assert np.all(out[10:13, 10:13] == -2.0)
    assert fill_holes(logits, 0) is logits


# ---------------------------------------------------------------------- the exported graphs


@pytest.fixture(scope="module")
def video_model(export_test_model: Any) -> Path:
    return export_test_model(MODEL)


@requires_export
@pytest.mark.export
def test_export_writes_the_video_graphs_behind_their_gate(video_model: Path) -> None:
    from samedge.artifacts import ModelArtifact

    art = ModelArtifact.open(video_model)
    assert SPEC.video is not None
    for role in SPEC.video.roles:
        assert art.has(role) and art.path(role).is_file(), role
    parity = art.manifest.parity
    assert parity["video_passed"] is True
    assert set(parity["video_max_rel_error"]) == set(SPEC.video.roles)
    assert max(parity["video_max_rel_error"].values()) <= parity["video_tolerance"]


@requires_export
@pytest.mark.export
def test_memory_attention_takes_any_number_of_memories_and_pointers(
    video_model: Path, torch_model: Any
) -> None:
    """Dynamic axes: 1 to 8 memories, 0 to 16 pointers (0: an object whose only prompt
    lies ahead), against the official attention for the pointer-less case."""
    import torch

    from samedge.runtime.session import create_session
    from samedge.specs import CONDITIONED_EMBEDDINGS

    session = create_session(video_model / "memory_attention.onnx", threads=2)
    rng = np.random.default_rng(0)
    emb = rng.standard_normal((1, 256, 64, 64)).astype(np.float32)
    for memories, pointers in ((1, 0), (8, 16)):
        feeds = {
            "image_embeddings": emb,
            "memory_features": rng.standard_normal((memories, 4096, 64)).astype(np.float32),
            "memory_tpos": rng.integers(0, 7, memories).astype(np.int64),
            "obj_ptrs": rng.standard_normal((pointers, 256)).astype(np.float32),
            "obj_ptr_tpos": rng.uniform(-1, 1, pointers).astype(np.float32),
        }
        out = session.run([CONDITIONED_EMBEDDINGS], feeds)[0]
        assert out.shape == (1, 256, 64, 64) and np.isfinite(out).all()
    model = torch_model(MODEL)
    memory = torch.from_numpy(rng.standard_normal((1, 64, 64, 64)).astype(np.float32))
    memory = memory.to(torch.bfloat16)
    with torch.no_grad():
        pos = model.memory_encoder.position_encoding(torch.zeros(1, 64, 64, 64))
        backbone = model.forward_image(torch.zeros(1, 3, 1024, 1024))
    raw = torch.from_numpy(emb).flatten(2).permute(2, 0, 1) - model.no_mem_embed
    # float32 values of bfloat16 memories: with no pointer, the official code would meet
    # bfloat16 memories with float32 weights (it runs under bfloat16 autocast on a GPU).
    cond = {
        "maskmem_features": memory.float(),
        "maskmem_pos_enc": [pos],
        "obj_ptr": torch.zeros(1, 256),
    }
    with torch.no_grad():
        want = model._prepare_memory_conditioned_features(
            0,
            False,
            [raw],
            [backbone["vision_pos_enc"][-1].flatten(2).permute(2, 0, 1)],
            [(64, 64)],
            {"cond_frame_outputs": {5: cond}, "non_cond_frame_outputs": {}},
            10,
            False,
        )
    feeds = {
        "image_embeddings": emb,
        "memory_features": memory.float().flatten(2)[0].t()[None].numpy(),
        "memory_tpos": np.array([6], np.int64),
        "obj_ptrs": np.zeros((0, 256), np.float32),
        "obj_ptr_tpos": np.zeros(0, np.float32),
    }
    got = session.run([CONDITIONED_EMBEDDINGS], feeds)[0]
    assert np.abs(got - want.numpy()).max() < 1e-4 * max(1.0, float(want.abs().max()))


@requires_export
@pytest.mark.export
def test_absent_objects_get_the_no_object_mask_and_pointer(
    video_model: Path, torch_model: Any
) -> None:
    """Occlusion handling inside the track decoder: a negative object score gives -1024
    logits and the learned no-object pointer, as ``_forward_sam_heads``."""
    import torch

    from samedge.runtime.session import create_session

    model = torch_model(MODEL)
    session = create_session(video_model / "track_decoder.onnx", threads=2)
    gen = torch.Generator().manual_seed(0)
    seen = set()
    # Random features: the seeded head says present (about +0.27); uniform features of 30
    # push it below zero (about -0.027, far from the graphs' 1e-7 disagreement).
    for pix in (torch.randn(1, 256, 64, 64, generator=gen), torch.full((1, 256, 64, 64), 30.0)):
        hr = [
            torch.randn(1, 32, 256, 256, generator=gen),
            torch.randn(1, 64, 128, 128, generator=gen),
        ]
        with torch.no_grad():
            want = model._forward_sam_heads(pix, None, None, hr, True)
        feeds = {
            "pix_feat": pix.numpy(),
            "high_res_feats_0": hr[0].numpy(),
            "high_res_feats_1": hr[1].numpy(),
            "point_coords": np.zeros((1, 2, 2), np.float32),
            "point_labels": -np.ones((1, 2), np.float32),
        }
        low, iou, score, ptrs = session.run(None, feeds)
        token = 1 + int(np.argmax(iou[0, 1:]))
        present = bool(score[0, 0] > 0)
        seen.add(present)
        assert present == bool(want[6][0, 0] > 0)
        assert abs(float(score[0, 0]) - float(want[6][0, 0])) < 1e-5
        assert np.abs(low[0, token] - want[3][0, 0].numpy()).max() < 1e-3
        assert np.abs(ptrs[0, token] - want[5][0].numpy()).max() < 1e-4
        if not present:
            assert np.all(low == -1024.0)
            assert np.allclose(ptrs[0], model.no_obj_ptr.detach().numpy(), atol=1e-6)
    assert seen == {True, False}, "no input gave both signs of the object score"


# ---------------------------------------------------------------------- errors


def test_models_that_cannot_track_say_so_in_one_line(tmp_path: Path) -> None:
    from samedge.artifacts import ModelArtifact
    from samedge.manifest import Manifest
    from samedge.video import VideoPredictor

    manifest = Manifest(
        model="mobile_sam",
        family="mobile_sam",
        opset=17,
        precision={},
        weights={"source": "random-init", "seed": 0},
        files={},
    )
    art = ModelArtifact(tmp_path, manifest, get_spec("mobile_sam"))
    with pytest.raises(SamedgeError, match="cannot track video") as err:
        VideoPredictor(art)
    assert "\n" not in str(err.value)
    manifest.model, manifest.family = MODEL, "sam2"
    with pytest.raises(ArtifactError, match=r"no video tracking graphs.*re-export") as err:
        VideoPredictor(ModelArtifact(tmp_path, manifest, SPEC))
    assert "samedge export sam2.1_hiera_tiny --random-init 0" in str(err.value)


# ---------------------------------------------------------------------- the state


class _FakeGraphs:
    """Graph outputs of the right shapes (constant values): the predictor's bookkeeping
    without the cost of the networks."""

    def __init__(self) -> None:
        self.timings: dict[str, float] = {}
        self.calls: list[str] = []
        self.video = SPEC.video

    def run(self, role: str, values: list[Any]) -> list[np.ndarray]:
        self.calls.append(role)
        if role == "encoder":
            return [
                np.zeros((1, 256, 64, 64), np.float32),
                np.zeros((1, 32, 256, 256), np.float32),
                np.zeros((1, 64, 128, 128), np.float32),
            ]
        if role == "memory_attention":
            assert values[1].shape[0] == len(values[2]) >= 1
            return [values[0]]
        if role == "memory_encoder":
            return [np.ones((1, 4096, 64), np.float32)]
        if role == "mask_prompt":
            return [np.ones((1, 256), np.float32)]
        low = np.full((1, 4, 256, 256), 2.0, np.float32)
        return [
            low,
            np.array([[0.1, 0.9, 0.2, 0.3]], np.float32),
            np.ones((1, 1), np.float32),
            np.ones((1, 4, 256), np.float32),
        ]


class _TinyFrames:
    size = (64, 48)
    fps = 24.0

    def __init__(self, count: int) -> None:
        self.count = count
        self.reads: list[int] = []

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> np.ndarray:
        self.reads.append(index)
        return np.full((48, 64, 3), index % 255, np.uint8)

    def __iter__(self) -> Any:
        return (self[i] for i in range(self.count))


def _fake_predictor() -> Any:
    from samedge.video import VideoPredictor

    vp = VideoPredictor.__new__(VideoPredictor)
    vp.spec, vp.graphs = SPEC, _FakeGraphs()
    vp.video = SPEC.video
    return vp


def test_the_state_keeps_only_what_the_policy_can_select() -> None:
    vp = _fake_predictor()
    frames = _TinyFrames(80)
    state = vp.init_state(frames.size)
    vp.add_prompt(state, 0, frames[0], 1, points=[[10, 10]], labels=[1])
    vp.add_prompt(state, 0, frames[0], 2, mask=np.ones((48, 64), bool))
    frames.reads.clear()
    sizes = []
    for result in vp.propagate(state, frames):
        assert result.masks.shape == (2, 48, 64) and result.low_res_logits.shape == (2, 256, 256)
        sizes.append(state.nbytes())
    assert state.num_frames == 80 and frames.reads == list(range(1, 80))  # read on demand
    assert sizes[40] == sizes[-1]  # flat once past the reach of the prompted frame
    for obj in state.objects.values():
        assert sorted(obj.other) == [*range(1, 16), *range(64, 80)]
        assert sorted(obj.tracked) == list(range(80))
    # A correction next to the newest frame sees all it needs; one in the middle does not.
    vp.add_prompt(state, 79, frames[79], 1, points=[[20, 20]], labels=[0])
    with pytest.raises(SamedgeError, match="keep_history=True"):
        vp.add_prompt(state, 40, frames[40], 1, points=[[20, 20]], labels=[0])
    # ... unless every output is kept, as the official predictor does.
    full = vp.init_state(frames.size, keep_history=True)
    vp.add_prompt(full, 0, frames[0], 1, points=[[10, 10]], labels=[1])
    for _ in vp.propagate(full, frames):
        pass
    assert sorted(full.objects[1].other) == list(range(1, 80))
    vp.add_prompt(full, 40, frames[40], 1, points=[[20, 20]], labels=[0])


def test_live_stream_steps_and_objects_come_and_go() -> None:
    vp = _fake_predictor()
    frames = _TinyFrames(30)
    state = vp.init_state(frames.size)
    with pytest.raises(SamedgeError, match="add a prompt first"):
        vp.step(state, 0, frames[0])
    first = vp.add_prompt(state, 0, frames[0], 7, box=[5, 5, 30, 30])
    assert first.object_ids == (7,) and first.masks.all()
    for i in range(1, 30):
        result = vp.step(state, i, frames[i])
        assert result.frame_index == i and result.object_ids == (7,)
    assert state.num_frames is None and len(state.objects[7].other) <= 16 + 15
    vp.add_prompt(state, 29, frames[29], 8, points=[[3, 3]], labels=[1])
    result = vp.step(state, 29, frames[29])
    assert result.object_ids == (7, 8)
    vp.remove_object(state, 7)
    assert vp.step(state, 29, frames[29]).object_ids == (8,)
    vp.remove_object(state, 8)
    assert not state.objects and not state.anchors
    bounded = vp.init_state(frames.size, num_frames=30)
    with pytest.raises(SamedgeError, match="outside the video"):
        vp.add_prompt(bounded, 30, frames[0], 1, points=[[3, 3]], labels=[1])
    with pytest.raises(SamedgeError, match="positive integers"):
        vp.add_prompt(bounded, 0, frames[0], 0, points=[[3, 3]], labels=[1])
    with pytest.raises(SamedgeError, match="labels"):
        vp.add_prompt(bounded, 0, frames[0], 1, points=[[3, 3]], labels=[2])
    with pytest.raises(SamedgeError, match="mask alone"):
        vp.add_prompt(bounded, 0, frames[0], 1, box=[1, 1, 5, 5], mask=np.ones((48, 64), bool))
    with pytest.raises(SamedgeError, match="at least one point"):
        vp.add_prompt(bounded, 0, frames[0], 1, points=np.zeros((0, 2)), labels=[])
    # Accepted silently before, unlike the image predictor and samedge track:
    with pytest.raises(PromptError, match=r"\(5000, 3\) lies outside the 64x48 frame"):
        vp.add_prompt(bounded, 0, frames[0], 1, points=[[5000, 3]], labels=[1])
    with pytest.raises(PromptError, match="x0 <= x1 and y0 <= y1"):
        vp.add_prompt(bounded, 0, frames[0], 1, box=[30, 30, 5, 40])
    assert not bounded.objects and not bounded.anchors  # refused prompts leave no trace
    with pytest.raises(SamedgeError, match="frame"):
        vp.step(state, 0, np.zeros((10, 10, 3), np.uint8))
    with pytest.raises(SamedgeError, match="frame index -3 is negative"):
        vp.step(state, -3, frames[0])
    with pytest.raises(SamedgeError, match=r"max_frames .* >= 0, not -1"):
        next(vp.propagate(state, frames, start_frame=0, max_frames=-1))


@requires_export
@pytest.mark.export
@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in list_models("sam2.1_*")])
def test_video_spec_is_each_official_config(name: str) -> None:
    """The registry's tracking settings are those of ``build_sam2_video_predictor`` for
    every SAM 2.1 size (the export checks its own model's the same way)."""
    from samedge.export.video import check_video_spec

    check_video_spec(get_spec(name))


def test_speed_options_attend_to_fewer_memories() -> None:
    """Off by default; on, a frame attends to fewer recent memories, or every k-th one."""
    vp = _fake_predictor()
    frames = _TinyFrames(20)
    counts: dict[str, list[int]] = {}
    for name, options in (
        ("default", {}),
        ("recent 2", {"recent_memories": 2}),
        ("none", {"recent_memories": 0}),
        ("stride 3", {"memory_stride": 3}),
    ):
        seen = counts[name] = []
        graphs = vp.graphs
        original = graphs.run

        def run(role: str, values: list[Any], seen: list[int] = seen, original: Any = original):
            if role == "memory_attention":
                seen.append(values[1].shape[0])
            return original(role, values)

        graphs.run = run
        state = vp.init_state(frames.size, **options)
        vp.add_prompt(state, 0, frames[0], 1, points=[[10, 10]], labels=[1])
        for _ in vp.propagate(state, frames):
            pass
        graphs.run = original
    assert counts["default"][-1] == 7 and max(counts["recent 2"]) == 3
    assert set(counts["none"]) == {1}
    # Stride 3 on frame 19: the frame before it, then 15, 12, 9, 6, 3 (and the prompt).
    assert counts["stride 3"][-1] == 7 and counts["stride 3"][:3] == [1, 2, 2]
    with pytest.raises(SamedgeError, match="recent_memories"):
        vp.init_state(frames.size, recent_memories=7)
    with pytest.raises(SamedgeError, match="memory_stride"):
        vp.init_state(frames.size, memory_stride=0)
