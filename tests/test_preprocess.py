"""Preprocessing and mask upscaling match the official transforms (needs the [export] extra)."""

from __future__ import annotations

import numpy as np
import pytest

from samedge.imageio import load_image
from samedge.registry import get_spec
from samedge.runtime.postprocess import (
    select_masks,
    stability_score,
    upscale_logits,
    upscale_masks,
)
from samedge.runtime.preprocess import preprocess

from .conftest import PARITY_PHOTOS, requires_export, shared_path

pytestmark = [requires_export, pytest.mark.export]


@pytest.fixture(scope="module")
def torch_mod():
    from samedge.export.torch_compat import ensure_torchvision

    ensure_torchvision()
    import torch

    return torch


@pytest.mark.parametrize("photo", PARITY_PHOTOS)
def test_sam_preprocess_matches_official(torch_mod, photo: str) -> None:
    from segment_anything.modeling import Sam
    from segment_anything.utils.transforms import ResizeLongestSide

    torch = torch_mod
    image = load_image(shared_path("data", "images", photo))
    ours, input_size = preprocess(image, get_spec("sam_vit_b"))
    resized = ResizeLongestSide(1024).apply_image(image)
    x = torch.as_tensor(resized).permute(2, 0, 1).contiguous()[None]
    mean = torch.tensor([123.675, 116.28, 103.53]).view(-1, 1, 1)
    std = torch.tensor([58.395, 57.12, 57.375]).view(-1, 1, 1)
    holder = type("H", (), {"pixel_mean": mean, "pixel_std": std})()
    holder.image_encoder = type("E", (), {"img_size": 1024})()
    expected = Sam.preprocess(holder, x).numpy()
    assert input_size == resized.shape[:2]
    np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize("photo", PARITY_PHOTOS[:2])
def test_sam2_preprocess_matches_official(torch_mod, photo: str) -> None:
    from sam2.utils.transforms import SAM2Transforms

    image = load_image(shared_path("data", "images", photo))
    ours, input_size = preprocess(image, get_spec("sam2.1_hiera_tiny"))
    expected = SAM2Transforms(resolution=1024, mask_threshold=0.0)(image)[None].numpy()
    assert input_size == (1024, 1024)
    # Pillow's float bilinear filter is the algorithm torchvision's antialiased resize ports.
    np.testing.assert_allclose(ours, expected, rtol=0, atol=2e-5)


@pytest.mark.parametrize("name", ["sam_vit_b", "sam2.1_hiera_tiny"])
@pytest.mark.parametrize("size", [(534, 800), (1500, 2250), (1024, 768)])
def test_upscale_matches_official(torch_mod, name: str, size: tuple[int, int]) -> None:
    torch = torch_mod
    import torch.nn.functional as F

    spec = get_spec(name)
    rng = np.random.default_rng(1)
    low = rng.standard_normal((2, 3, 256, 256)).astype(np.float32) * 5
    h, w = size
    scale = 1024 / max(h, w)
    input_size = (int(h * scale + 0.5), int(w * scale + 0.5))
    if spec.family == "sam2":
        input_size = (1024, 1024)
    t = torch.from_numpy(low)
    if spec.family == "sam":
        up = F.interpolate(t, (1024, 1024), mode="bilinear", align_corners=False)
        up = up[..., : input_size[0], : input_size[1]]
        expected = F.interpolate(up, size, mode="bilinear", align_corners=False).numpy()
    else:
        expected = F.interpolate(t, size, mode="bilinear", align_corners=False).numpy()
    ours = upscale_logits(low, spec, input_size, size)
    assert ours.shape == (2, 3, h, w)
    # OpenCV computes the float interpolation weights with slightly different rounding:
    # agreement is ~2e-5 of the logit range, far below anything that moves a mask edge.
    np.testing.assert_allclose(ours, expected, rtol=0, atol=5e-5 * np.abs(expected).max())
    assert np.mean((ours > 0) != (expected > 0)) < 1e-5
    # The binary path (one scratch buffer, thresholded in place) gives exactly those masks.
    masks = upscale_masks(low, spec, input_size, size, threshold=0.5)
    assert masks.shape == (2, 3, h, w) and masks.dtype == bool
    np.testing.assert_array_equal(masks, ours > 0.5)


def test_single_mask_selection_follows_sam2_stability_rule() -> None:
    spec = get_spec("sam2.1_hiera_tiny")
    low = np.zeros((2, 4, 256, 256), np.float32)
    low[0, 0] = 5.0  # stable single mask
    low[1, 0, :, :128] = 0.01  # unstable: flips within +-0.05 of the threshold
    low[1, 0, :, 128:] = -5
    iou = np.array([[0.5, 0.1, 0.2, 0.3], [0.5, 0.1, 0.9, 0.3]], np.float32)
    logits, scores = select_masks(low, iou, spec, multimask_output=False)
    assert logits.shape == (2, 1, 256, 256)
    np.testing.assert_array_equal(scores[:, 0], iou[[0, 1], [0, 2]])  # set 1 falls back to token 2
    np.testing.assert_array_equal(logits[1, 0], low[1, 2])
    sam = get_spec("sam_vit_b")
    assert select_masks(low, iou, sam, False)[1][:, 0].tolist() == [0.5, 0.5]
    assert stability_score(low[1, 0], 0.0, 0.05) == pytest.approx(0.0)


@pytest.mark.parametrize("photo", PARITY_PHOTOS)
def test_efficientvit_sam_frames_match_official(torch_mod, torch_model, photo: str) -> None:
    """EfficientViT-SAM L0: the encoder input is the official 512-pixel transform, while the
    resized size (prompt scaling, mask crop) and the mask upscaling are in the 1024 frame,
    as ``EfficientViTSamPredictor`` computes them."""
    from efficientsam.segment_anything.utils.transforms import ResizeLongestSide

    torch = torch_mod
    spec = get_spec("efficientvit_sam_l0")
    model = torch_model(spec.name)
    image = load_image(shared_path("data", "images", photo))
    ours, input_size = preprocess(image, spec)
    expected = model.transform(image)[None].numpy()
    assert ours.shape == expected.shape == (1, 3, 512, 512)
    np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-5)
    # EfficientViTSamPredictor.set_image: the input size for the prompt frame, image_size[0]
    assert model.image_size == (1024, 512)
    official_size = ResizeLongestSide.get_preprocess_shape(*image.shape[:2], model.image_size[0])
    assert input_size == tuple(official_size) and max(input_size) == 1024
    low = np.random.default_rng(2).standard_normal((1, 3, 256, 256)).astype(np.float32) * 5
    size = image.shape[:2]
    ref = model.postprocess_masks(torch.from_numpy(low), input_size, size).numpy()
    got = upscale_logits(low, spec, input_size, size)
    np.testing.assert_allclose(got, ref, rtol=0, atol=5e-5 * np.abs(ref).max())
    assert np.mean((got > 0) != (ref > 0)) < 1e-5


@pytest.mark.parametrize(
    ("name", "shape"), [("mobile_sam", (1, 3000)), ("efficientvit_sam_l0", (1500, 1))]
)
def test_an_image_too_thin_for_the_input_is_one_error(name: str, shape: tuple[int, int]) -> None:
    """Scaled to the input, such an image had a side of 0 pixels: a resize traceback."""
    from samedge.errors import ImageError

    image = np.zeros((*shape, 3), np.uint8)
    with pytest.raises(ImageError, match=r"short side would be 0 pixels; crop it") as err:
        preprocess(image, get_spec(name))
    assert f"{shape[1]}x{shape[0]}" in str(err.value)
    preprocess(image[:, :1000] if shape[0] == 1 else image[:500], get_spec(name))  # fits
