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


class _PosEmbed(torch.nn.Module):
    """Hiera's two positional-embedding parameters, added to a token grid as Hiera does."""

    def __init__(self) -> None:
        super().__init__()
        self.pos_embed = torch.nn.Parameter(torch.randn(1, 8, 7, 7))
        self.pos_embed_window = torch.nn.Parameter(torch.randn(1, 8, 4, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + hieradet.Hiera._get_pos_embed(self, x.shape[1:3])


def _op_types(module: torch.nn.Module, x: torch.Tensor) -> set[str]:
    import io

    onnx = pytest.importorskip("onnx")
    buffer = io.BytesIO()
    torch.onnx.export(module, (x,), buffer, dynamo=False, opset_version=17)
    return {node.op_type for node in onnx.load_from_string(buffer.getvalue()).graph.node}


def test_separable_pos_embed_matches_the_official_resize_without_a_resize_node() -> None:
    from samedge.export.pos_embed import separable_pos_embed

    torch.manual_seed(0)
    module = _PosEmbed().eval()
    x = torch.zeros(1, 32, 24, 8)  # a non-square token grid, whole windows
    with torch.no_grad():
        official = module(x)
        assert "Resize" in _op_types(module, x)  # the official code traces a bicubic resize
        with separable_pos_embed():
            ours = module(x)
            ops = _op_types(module, x)
    torch.testing.assert_close(ours, official, rtol=0, atol=1e-5)
    assert "Resize" not in ops and "MatMul" in ops
    assert hieradet.Hiera._get_pos_embed.__module__ == hieradet.__name__  # restored


def test_fused_sdpa_takes_the_tensors_by_torchs_parameter_names() -> None:
    """Within :func:`attention.fused_sdpa`, ``scaled_dot_product_attention`` keeps torch's
    signature: a call passing ``query=``, ``key=``, ``value=`` (the replacement named them
    ``q``, ``k``, ``v`` and raised TypeError) computes the same attention."""
    from samedge.export.exporter import OPSET

    sdpa = torch.nn.functional.scaled_dot_product_attention
    q, k, v = (
        torch.randn(1, 2, 5, 4, generator=torch.Generator().manual_seed(i)) for i in range(3)
    )
    want = sdpa(q, k, v)
    with attention.fused_sdpa(OPSET):
        got = torch.nn.functional.scaled_dot_product_attention(query=q, key=k, value=v)
    torch.testing.assert_close(got, want)
