"""How SAM 2's encoder is traced: Hiera blocks in bands and separate q/k/v projections
compute what the official modules compute (the export's parity gate checks whole graphs;
these check the pieces, including block shapes the test models do not have)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")  # samedge.export is the [export] extra
hieradet = pytest.importorskip("sam2.modeling.backbones.hieradet")

from samedge.export import attention  # noqa: E402


@pytest.mark.parametrize(
    ("dim_out", "q_stride", "window", "rows"),
    [
        (16, None, 4, 8),  # a windowed block: 4 bands of 8 rows (256 tokens)
        (32, (2, 2), 4, 8),  # a block that pools its queries: bands of 8 input rows
        (16, None, 0, None),  # global attention: runs whole
        (16, None, 6, None),  # windows do not tile 32 rows: runs whole
    ],
)
def test_banded_blocks_and_separate_qkv_match_the_official_block(
    monkeypatch: pytest.MonkeyPatch,
    dim_out: int,
    q_stride: tuple[int, int] | None,
    window: int,
    rows: int | None,
) -> None:
    torch.manual_seed(0)
    block = hieradet.MultiScaleBlock(
        16, dim_out, num_heads=2, q_stride=q_stride, window_size=window
    ).eval()
    x = torch.randn(1, 32, 32, 16)
    monkeypatch.setattr(attention, "BAND_TOKENS", 256)
    assert attention.band_rows(block, 32, 32) == rows
    assert attention.band_rows(block, 16, 16) is None  # small enough to run whole
    official = (hieradet.MultiScaleBlock.forward, hieradet.MultiScaleAttention.forward)
    with torch.no_grad():
        expected = block(x)
        with attention.banded_blocks(), attention.separate_qkv():
            assert hieradet.MultiScaleBlock.forward is not official[0]
            got = block(x)
    assert (hieradet.MultiScaleBlock.forward, hieradet.MultiScaleAttention.forward) == official
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
