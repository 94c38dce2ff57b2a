"""How the edge encoders are traced for ONNX Runtime: EfficientViT's bicubic upsampling as
matrix products and its tanh GELU as ``FastGelu``, EfficientSAM's global attention as the
fused ``MultiHeadAttention``. Each rewrite computes what the official module computes, in
torch and in ONNX Runtime (the export's parity gate checks whole graphs; these check the
pieces, including shapes the test models do not have)."""

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


def _export(module: torch.nn.Module, x: torch.Tensor, *contexts: object) -> bytes:
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
            opset_version=OPSET,
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


def test_fast_gelu_exports_tanh_gelu_as_one_node_and_leaves_exact_gelu() -> None:
    module = torch.nn.Sequential(
        torch.nn.Conv2d(4, 8, 1), torch.nn.GELU(approximate="tanh"), torch.nn.GELU()
    ).eval()
    x = torch.randn(1, 4, 6, 6) * 4
    with torch.no_grad():
        expected = module(x)
    model = _export(module, x, efficientvit.fast_gelu(OPSET))
    nodes = [n.op_type for n in onnx.load_from_string(model).graph.node]
    assert nodes.count("FastGelu") == 1 and "Tanh" not in nodes and "Erf" in nodes
    assert torch.nn.GELU.forward.__module__ == "torch.nn.modules.activation"  # restored
    np.testing.assert_allclose(_run(model, x), expected.numpy(), rtol=1e-5, atol=1e-5)


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
