"""How the edge encoders are traced for ONNX Runtime: EfficientViT's bicubic upsampling as
matrix products and its tanh GELU as one ONNX ``Gelu`` node, EfficientSAM's global attention
as the fused ``MultiHeadAttention`` and its position table resized by matrix products,
MobileSAM's TinyViT with separate projections and its token grids permuted into and out of
its convolutions. Each rewrite computes what the
official module computes, in torch and in ONNX Runtime (the export's parity gate checks
whole graphs; these check the pieces, including shapes the test models do not have)."""

from __future__ import annotations

import io

import numpy as np
import pytest

torch = pytest.importorskip("torch")  # samedge.export is the [export] extra
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from samedge.export import attention, efficientvit  # noqa: E402
from samedge.export.attention import CONTRIB_OPSET  # noqa: E402
from samedge.export.exporter import OPSET  # noqa: E402


def _export(
    module: torch.nn.Module, x: torch.Tensor, *contexts: object, opset: int = OPSET
) -> bytes:
    import contextlib

    buffer = io.BytesIO()
    with contextlib.ExitStack() as stack, torch.no_grad():
        for context in contexts:
            stack.enter_context(context)  # type: ignore[arg-type]
        torch.onnx.export(
            module,
            (x,),
            buffer,
            dynamo=False,
            opset_version=opset,
            input_names=["x"],
            custom_opsets=CONTRIB_OPSET,
        )
    return buffer.getvalue()


def _ops(model: bytes) -> set[str]:
    return {node.op_type for node in onnx.load_from_string(model).graph.node}


def _run(model: bytes, x: torch.Tensor) -> np.ndarray:
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x.numpy()})[0]


@pytest.mark.parametrize(("size_in", "size_out"), [((16, 16), 64), ((32, 24), (64, 40))])
def test_separable_upsample_is_the_official_bicubic_upsample_without_a_resize(
    size_in: tuple[int, int], size_out: int | tuple[int, int]
) -> None:
    ops_module = pytest.importorskip("efficientsam.models.nn.ops")
    layer = ops_module.UpSampleLayer(mode="bicubic", size=size_out).eval()
    official_forward = ops_module.UpSampleLayer.forward
    x = torch.randn(1, 8, *size_in)
    with torch.no_grad():
        expected = layer(x)
        assert "Resize" in _ops(_export(layer, x))  # the official code traces a cubic resize
        with efficientvit.separable_upsample():
            got = layer(x)
        model = _export(layer, x, efficientvit.separable_upsample())
    assert ops_module.UpSampleLayer.forward is official_forward  # restored
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)
    assert "Resize" not in _ops(model) and "MatMul" in _ops(model)
    np.testing.assert_allclose(_run(model, x), expected.numpy(), rtol=0, atol=1e-5)


def test_separable_upsample_leaves_other_modes_to_the_official_code() -> None:
    ops_module = pytest.importorskip("efficientsam.models.nn.ops")
    layer = ops_module.UpSampleLayer(mode="bilinear", size=32).eval()
    x = torch.randn(1, 4, 8, 8)
    model = _export(layer, x, efficientvit.separable_upsample())
    assert "Resize" in _ops(model)
    np.testing.assert_allclose(_run(model, x), layer(x).detach().numpy(), rtol=0, atol=1e-5)


def test_efficientsam_position_table_is_resized_without_a_resize_node() -> None:
    """EfficientSAM's 14 x 14 position table is resized bicubically to the 64 x 64 token
    grid as two matrix products: what ``F.interpolate`` gives, and no ``Resize`` of a
    constant, which OpenVINO folds with scalar code (12.5 s of a 12.8 s compile)."""
    from samedge.export.efficientsam import ImageEncoder

    class Positions(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = ImageEncoder(dim=8, heads=2, depth=1)
            torch.nn.init.normal_(self.encoder.pos_embed)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x + self.encoder._positions(64)

    module = Positions().eval()
    x = torch.zeros(1, 64, 64, 8)
    table = module.encoder.pos_embed[:, 1:].reshape(1, 14, 14, 8).permute(0, 3, 1, 2)
    with torch.no_grad():
        expected = torch.nn.functional.interpolate(table, size=(64, 64), mode="bicubic")
        expected = expected.permute(0, 2, 3, 1)
        torch.testing.assert_close(module(x), expected, rtol=0, atol=1e-5)
        model = _export(module, x)
    assert "Resize" not in _ops(model)
    np.testing.assert_allclose(_run(model, x), expected.numpy(), rtol=0, atol=1e-5)


def test_tanh_gelu_exports_as_one_gelu_node_and_leaves_exact_gelu() -> None:
    module = torch.nn.Sequential(
        torch.nn.Conv2d(4, 8, 1), torch.nn.GELU(approximate="tanh"), torch.nn.GELU()
    ).eval()
    x = torch.randn(1, 4, 6, 6) * 4
    with torch.no_grad():
        expected = module(x)
    model = _export(module, x, efficientvit.tanh_gelu(), opset=efficientvit.TANH_GELU_OPSET)
    nodes = onnx.load_from_string(model).graph.node
    approximate = [
        {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}.get("approximate")
        for n in nodes
        if n.op_type == "Gelu"
    ]
    # The exact GELU is traced as written (opset 20's exporter writes it as Gelu too).
    assert approximate == [b"tanh", b"none"]
    assert {n.op_type for n in nodes}.isdisjoint({"Tanh", "FastGelu", "Erf"})
    assert torch.nn.GELU.forward.__module__ == "torch.nn.modules.activation"  # restored
    np.testing.assert_allclose(_run(model, x), expected.numpy(), rtol=1e-5, atol=1e-5)


def test_tanh_gelu_stays_in_onnx_runtimes_blocked_convolution_layout(tmp_path) -> None:
    """Why ``Gelu`` and not ``FastGelu``: between two convolutions, ONNX Runtime's NCHWc
    pass runs the ``Gelu`` on the blocked tensor, where ``FastGelu`` needed a reorder out of
    the layout and back in (on CPUs where the layout is used at all)."""
    module = torch.nn.Sequential(
        torch.nn.Conv2d(16, 32, 3, padding=1),
        torch.nn.GELU(approximate="tanh"),
        torch.nn.Conv2d(32, 16, 1),
    ).eval()
    x = torch.randn(1, 16, 32, 32)
    model = _export(module, x, efficientvit.tanh_gelu(), opset=efficientvit.TANH_GELU_OPSET)
    options = ort.SessionOptions()
    options.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    nodes = onnx.load(tmp_path / "optimized.onnx").graph.node
    blocked = [n.op_type for n in nodes if n.domain == "com.microsoft.nchwc"]
    if not blocked:
        pytest.skip("ONNX Runtime does not use its NCHWc layout on this CPU")
    assert blocked.count("ReorderInput") == 1 and blocked.count("ReorderOutput") == 1
    assert [n.op_type for n in nodes].count("Gelu") == 1


def _exact_rewrite(module: torch.nn.Module, x: torch.Tensor, cls: type, rewrite) -> np.ndarray:
    """The official output of ``module`` on ``x``, after checking that within ``rewrite()``
    it is the same bit for bit and that ``cls.forward`` is restored after it."""
    official_forward = cls.forward
    with torch.no_grad():
        expected = module(x)
        with rewrite():
            got = module(x)
    assert cls.forward is official_forward
    torch.testing.assert_close(got, expected, rtol=0, atol=0)
    return expected.numpy()


@pytest.mark.parametrize(("dim", "heads"), [(192, 3), (48, 2)])
def test_efficientsam_attention_runs_as_multi_head_attention(dim: int, heads: int) -> None:
    from samedge.export.efficientsam import _SelfAttention

    torch.manual_seed(0)
    layer = _SelfAttention(dim, heads).eval()
    x = torch.randn(1, 256, dim)
    official_forward = _SelfAttention.forward
    with torch.no_grad():
        expected = layer(x)
        with attention.separate_vit_qkv():
            got = layer(x)
    assert _SelfAttention.forward is official_forward  # restored
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    model = _export(layer, x, attention.fused_sdpa(OPSET), attention.separate_vit_qkv())
    ops = _ops(model)
    assert "MultiHeadAttention" in ops and "Softmax" not in ops
    np.testing.assert_allclose(_run(model, x), expected.numpy(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(("dim", "heads", "resolution"), [(128, 4, 7), (160, 5, 14)])
def test_tinyvit_attention_projects_queries_keys_and_values_apart(
    dim: int, heads: int, resolution: int
) -> None:
    """MobileSAM's windowed attention with its packed projection cut into three: the same
    values in torch (bit for bit) and in ONNX Runtime, and no Split left in the graph."""
    from samedge.export.torch_compat import ensure_torchvision

    ensure_torchvision()
    tiny_vit = pytest.importorskip("mobile_sam.modeling.tiny_vit_sam")
    torch.manual_seed(0)
    layer = tiny_vit.Attention(dim, 32, heads, attn_ratio=1, resolution=(resolution,) * 2)
    with torch.no_grad():
        layer.attention_biases.normal_()  # zero in a new layer: make the bias matter
    layer.train(False)  # TinyViT's train() returns nothing; this caches the bias as `ab`
    x = torch.randn(9, resolution * resolution, dim)
    expected = _exact_rewrite(layer, x, tiny_vit.Attention, attention.separate_tinyvit_qkv)
    assert "Split" in _ops(_export(layer, x))  # the official trace splits the packed output
    model = _export(layer, x, attention.separate_tinyvit_qkv())
    assert "Split" not in _ops(model)
    np.testing.assert_allclose(_run(model, x), expected, rtol=0, atol=1e-5)


def _conv_inputs_are_permuted_grids(model: bytes) -> bool:
    """Whether no ``Reshape`` feeds a ``Conv`` or reads its output, and the token grids
    enter and leave the convolutions by ``Transpose`` (``permute``): layouts the runtimes
    fold into their convolutions' own, which a ``Reshape`` in between stops."""
    graph = onnx.load_from_string(model).graph
    producer = {out: node for node in graph.node for out in node.output}
    readers = [(name, node) for node in graph.node for name in node.input]
    convs = [node for node in graph.node if node.op_type == "Conv"]
    inputs = {producer[c.input[0]].op_type for c in convs if c.input[0] in producer}
    outputs = {node.op_type for c in convs for name, node in readers if name == c.output[0]}
    return bool(convs) and "Reshape" not in inputs | outputs and "Transpose" in inputs | outputs


@pytest.mark.parametrize(
    ("dim", "heads", "resolution", "window"), [(64, 2, 16, 7), (32, 1, 14, 14), (32, 1, 14, 7)]
)
def test_tinyvit_block_hands_its_local_convolution_a_permuted_grid(
    dim: int, heads: int, resolution: int, window: int
) -> None:
    """MobileSAM's TinyViT block (padded windows, one whole window, exact windows) traced
    with its local convolution fed by ``permute`` instead of ``transpose`` + ``reshape``:
    the same values bit for bit in torch, and in ONNX Runtime."""
    from samedge.export.torch_compat import ensure_torchvision

    ensure_torchvision()
    tiny_vit = pytest.importorskip("mobile_sam.modeling.tiny_vit_sam")
    torch.manual_seed(0)
    block = tiny_vit.TinyViTBlock(dim, (resolution,) * 2, heads, window_size=window)
    with torch.no_grad():
        for module in block.modules():
            if isinstance(module, tiny_vit.Attention):
                module.attention_biases.normal_()
            if isinstance(module, torch.nn.BatchNorm2d):  # not the identity of a new layer
                module.running_mean.normal_()
                module.running_var.uniform_(0.5, 2.0)
    block.train(False)
    x = torch.randn(2, resolution * resolution, dim)
    expected = _exact_rewrite(block, x, tiny_vit.TinyViTBlock, attention.tinyvit_permuted_grids)
    assert not _conv_inputs_are_permuted_grids(_export(block, x))  # the official trace
    model = _export(block, x, attention.separate_tinyvit_qkv(), attention.tinyvit_permuted_grids())
    assert _conv_inputs_are_permuted_grids(model)
    np.testing.assert_allclose(_run(model, x), expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize(
    ("dim", "out_dim", "tokens"), [(64, 128, True), (160, 320, True), (32, 64, False)]
)
def test_tinyvit_patch_merging_returns_tokens_by_permute(
    dim: int, out_dim: int, tokens: bool
) -> None:
    """MobileSAM's PatchMerging (stride 2, and stride 1 for 320 channels) with its tokens
    taken by ``permute`` of the last convolution's output: the same values bit for bit."""
    from samedge.export.torch_compat import ensure_torchvision

    ensure_torchvision()
    tiny_vit = pytest.importorskip("mobile_sam.modeling.tiny_vit_sam")
    torch.manual_seed(0)
    merge = tiny_vit.PatchMerging((16, 16), dim, out_dim, torch.nn.GELU).eval()
    x = torch.randn(1, 256, dim) if tokens else torch.randn(1, dim, 16, 16)
    expected = _exact_rewrite(merge, x, tiny_vit.PatchMerging, attention.tinyvit_permuted_grids)
    assert not _conv_inputs_are_permuted_grids(_export(merge, x))  # the official trace
    model = _export(merge, x, attention.tinyvit_permuted_grids())
    assert _conv_inputs_are_permuted_grids(model)
    np.testing.assert_allclose(_run(model, x), expected, rtol=0, atol=1e-5)
