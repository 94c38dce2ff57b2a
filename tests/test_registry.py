from __future__ import annotations

import inspect
import re
import sys

import pytest

from samedge import get_spec, list_models
from samedge.errors import ModelNotFoundError

EXPECTED = {
    "sam_vit_b",
    "sam_vit_l",
    "sam_vit_h",
    "sam2.1_hiera_tiny",
    "sam2.1_hiera_small",
    "sam2.1_hiera_base_plus",
    "sam2.1_hiera_large",
    "mobile_sam",
    *(f"efficientvit_sam_{v}" for v in ("l0", "l1", "l2", "xl0", "xl1")),
    "efficientsam_ti",
    "efficientsam_s",
}
#: Where each family's authors publish their checkpoints.
OFFICIAL_DOWNLOADS = {
    "sam": "https://dl.fbaipublicfiles.com/segment_anything/",
    "sam2": "https://dl.fbaipublicfiles.com/segment_anything_2/",
    "mobile_sam": "https://github.com/ChaoningZhang/MobileSAM/raw/master/weights/",
    "efficientvit_sam": "https://huggingface.co/mit-han-lab/efficientvit-sam/resolve/main/",
    "efficientsam": "https://github.com/yformer/EfficientSAM/raw/main/weights/",
}
#: Models whose authors publish no sha256 (a download is checked by its size).
_EFFICIENTVIT_SAM = {n for n in EXPECTED if n.startswith("efficientvit_sam")}
NO_PUBLISHED_SHA256 = {"mobile_sam", *_EFFICIENTVIT_SAM, "efficientsam_ti", "efficientsam_s"}
#: ... nor a size (a download is only checked against the server's Content-Length).
NO_PUBLISHED_SIZE = {*_EFFICIENTVIT_SAM, "efficientsam_ti", "efficientsam_s"}
#: Encoder input side where it is not the 1024-pixel prompt frame.
ENCODER_SIDE = {f"efficientvit_sam_{v}": 512 for v in ("l0", "l1", "l2")}


def test_every_required_model_is_registered() -> None:
    assert set(list_models()) == EXPECTED
    assert list_models("sam2*") == [n for n in list_models() if n.startswith("sam2")]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_spec_is_complete(name: str) -> None:
    spec = get_spec(name)
    assert spec.name == name
    if name in NO_PUBLISHED_SHA256:
        assert spec.checkpoint.sha256 is None
    else:
        assert re.fullmatch(r"[0-9a-f]{64}", spec.checkpoint.sha256 or "")
    assert spec.checkpoint.url.startswith(OFFICIAL_DOWNLOADS[spec.family])
    if name in NO_PUBLISHED_SIZE:
        assert spec.checkpoint.size_bytes is None
    else:
        assert (spec.checkpoint.size_bytes or 0) > 40_000_000
    assert spec.licence == "Apache-2.0"
    assert spec.image_size == ENCODER_SIDE.get(name, 1024)
    assert spec.prompt_size == 1024
    # SAM resizes the longest side and pads; SAM 2 stretches to a square.
    assert spec.resize == (
        "stretch" if spec.family in ("sam2", "efficientsam") else "longest_side_pad"
    )
    assert spec.encoder_outputs[0] == "image_embeddings"
    assert len(spec.encoder_outputs) == (3 if spec.family == "sam2" else 1)
    assert ("object_score_logits" in spec.decoder_outputs) == (spec.family == "sam2")


def test_unknown_name_suggests_close_names() -> None:
    with pytest.raises(ModelNotFoundError) as err:
        get_spec("sam_vit_x")
    message = str(err.value)
    assert "unknown model 'sam_vit_x'" in message
    assert "sam_vit_b" in message and "samedge models list" in message


@pytest.mark.parametrize("name", list_models())
def test_reference_package_is_the_one_export_builds_with(name: str) -> None:
    """``reference_package`` (missing-extra messages, bench --compare-torch) names the
    package whose predictor and generator the exporter's builders return."""
    pytest.importorskip("torch")
    from samedge.export.build import (
        has_official_mask_generator,
        official_mask_generator_class,
        official_predictor_class,
    )
    from samedge.export.torch_compat import ensure_torchvision

    ensure_torchvision()
    spec = get_spec(name)
    classes = [official_predictor_class(spec)]
    if has_official_mask_generator(spec):
        classes.append(official_mask_generator_class(spec))
    for cls in classes:
        if spec.reference_source is None:
            assert cls.__module__.split(".")[0] == spec.reference_package
        else:  # no package: samedge's adapter calls the official code, imported by name
            source = inspect.getsource(sys.modules[cls.__module__])
            assert f'"{spec.reference_package}.' in source
    assert spec.small_regions in ("full_res", "low_res")
    # A separate prompt frame where the encoder runs below SAM's 1024 pixels.
    assert spec.prompt_size == 1024 and spec.prompt_frame in (None, 1024)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_low_res_logits_are_256_pixels_for_every_registered_model(name: str) -> None:
    assert get_spec(name).low_res_size == 256


def test_a_sam2_model_at_another_input_size_scales_its_grids() -> None:
    spec = get_spec("sam2.1_hiera_tiny")
    small = spec.at_image_size(512)
    assert (small.name, small.image_size, small.prompt_size) == (spec.name, 512, 512)
    assert small.embedding_shape == (256, 32, 32)
    assert small.high_res_shapes == ((32, 128, 128), (64, 64, 64))
    assert small.low_res_size == 128
    assert small.context_shapes[0] == (1, 32 * 32, 256)
    assert small.video == spec.video and small.resize == spec.resize
    assert spec.at_image_size(1024) is spec


@pytest.mark.parametrize(
    ("name", "size", "message"),
    [
        ("sam2.1_hiera_tiny", 500, "positive multiple of 32, got 500"),
        ("sam2.1_hiera_tiny", 0, "positive multiple of 32, got 0"),
        ("sam_vit_b", 512, "only SAM 2 models take another input size"),
        ("efficientvit_sam_l0", 1024, "only SAM 2 models take another input size"),
    ],
)
def test_another_input_size_is_refused_with_the_reason(name: str, size: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        get_spec(name).at_image_size(size)
