"""samedge doctor and provider diagnostics (no GPU here: the fallback paths and option
building are what is tested; GPU runs need a machine with onnxruntime-gpu)."""

from __future__ import annotations

import logging

import pytest

from samedge.cli.doctor import bf16_advice, cpu_info, int8_advice
from samedge.cli.main import main
from samedge.runtime import diagnostics, session

CPUINFO = """processor\t: 0
model name\t: AMD EPYC 7B13
flags\t\t: fpu sse2 avx avx2 fma f16c
"""


def test_doctor_prints_every_section(capsys) -> None:
    code = main(["doctor"])
    out = capsys.readouterr().out
    for section in ("== onnxruntime", "== providers", "== cpu", "== threads", "== conflicts"):
        assert section in out
    assert f"onnxruntime {session.onnxruntime_version()}" in out
    assert "CPUExecutionProvider" in out and "SAMEDGE_ORT_SPIN=" in out
    assert "AVX2 " in out and "AVX-512 VNNI " in out
    assert code == (1 if session.provider_conflicts() else 0)


def test_doctor_reports_a_bad_samedge_threads(monkeypatch, capsys) -> None:
    monkeypatch.setenv("SAMEDGE_THREADS", "abc")
    assert main(["doctor"]) == 1
    out = capsys.readouterr().out
    assert "SAMEDGE_THREADS=abc" in out
    assert "effective: no thread count (SAMEDGE_THREADS is invalid)" in out
    conflicts = out.split("== conflicts\n", 1)[1]
    assert "SAMEDGE_THREADS must be a positive number of threads such as 4, got 'abc'" in conflicts


def test_doctor_reports_the_int8_kernels_and_a_bad_samedge_ort_int8(monkeypatch, capsys) -> None:
    monkeypatch.setattr(diagnostics, "saturating_int8_cpu", lambda: True)
    monkeypatch.delenv("SAMEDGE_ORT_INT8", raising=False)
    main(["doctor"])
    assert "INT8 products exact (unsigned x unsigned kernels)" in capsys.readouterr().out
    monkeypatch.setenv("SAMEDGE_ORT_INT8", "fast")
    main(["doctor"])
    assert "INT8 products fast (16-bit sums that can saturate)" in capsys.readouterr().out
    monkeypatch.setenv("SAMEDGE_ORT_INT8", "bogus")
    assert main(["doctor"]) == 1
    out = capsys.readouterr().out
    assert "SAMEDGE_ORT_INT8=bogus" in out and "INT8 products refused" in out
    assert "SAMEDGE_ORT_INT8 must be one of auto, exact, fast" in out.split("== conflicts\n")[1]


def test_cpu_features_from_cpuinfo() -> None:
    model, features = cpu_info(CPUINFO)
    assert model == "AMD EPYC 7B13"
    assert features["AVX2"] and features["FMA"] and features["F16C"]
    assert not features["AVX-512F"] and not features["AVX-512 VNNI"]
    assert "no VNNI" in int8_advice(features) and "SAMEDGE_ORT_INT8=fast" in int8_advice(features)
    assert not features["AMX-BF16"] and "would run in fp32" in bf16_advice(features)


def test_bf16_units_are_reported() -> None:
    xeon = CPUINFO.replace("AMD EPYC 7B13", "Intel Xeon").replace("f16c", "f16c amx_bf16")
    _, features = cpu_info(xeon)
    assert features["AMX-BF16"]
    assert "--openvino-precision bf16" in bf16_advice(features)


def test_amx_int8_advice_names_openvino() -> None:
    xeon = CPUINFO.replace("f16c", "f16c avx512_vnni amx_int8")
    _, features = cpu_info(xeon)
    assert features["AMX-INT8"] and features["AVX-512 VNNI"]
    assert "--provider openvino" in int8_advice(features)
    vnni_only = cpu_info(CPUINFO.replace("f16c", "f16c avx512_vnni"))[1]
    assert "VNNI present" in int8_advice(vnni_only)


def test_unavailable_provider_reasons() -> None:
    cpu = ["CPUExecutionProvider"]
    assert session.unavailable_reason("cpu", cpu, {"onnxruntime": "1.0"}) is None
    missing = session.unavailable_reason("cuda", cpu, {"onnxruntime": "1.0"})
    assert "needs onnxruntime-gpu" in missing
    both = session.unavailable_reason("cuda", cpu, {"onnxruntime": "1.0", "onnxruntime-gpu": "1.0"})
    assert "several onnxruntime packages are installed" in both
    assert "pip uninstall onnxruntime onnxruntime-gpu && pip install onnxruntime-gpu" in both
    libs = session.unavailable_reason("tensorrt", cpu, {"onnxruntime-gpu": "1.2"})
    assert "native libraries were not found" in libs
    assert session.provider_conflicts({"onnxruntime": "1.0"}) == []


def test_fallback_warning_says_why(caplog) -> None:
    if "CUDAExecutionProvider" in session.available_providers():
        pytest.skip("CUDA is available here: no fallback to observe")
    with caplog.at_level(logging.WARNING):
        assert session.resolve_providers("cuda,cpu") == ["CPUExecutionProvider"]
    assert "falling back. Why: CUDAExecutionProvider is not available" in caplog.text


def test_int8_attention_by_default_only_where_the_cpu_has_the_kernel(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without VNNI or AMX OpenVINO's quantised attention is slower than fp32, so the
    default leaves it off there and says why; models whose spec keeps it off, and ONNX
    Runtime, never get it by default."""
    from samedge.quantize.model import default_int8_attention
    from samedge.registry import get_spec

    said: list[str] = []
    es_ti, l0 = get_spec("efficientsam_ti"), get_spec("efficientvit_sam_l0")
    monkeypatch.setattr(diagnostics, "integer_attention_cpu", lambda features=None: True)
    assert default_int8_attention(es_ti, "openvino", said.append)
    assert not default_int8_attention(es_ti, "onnxruntime", said.append)
    assert not default_int8_attention(l0, "openvino", said.append)
    assert said == []
    monkeypatch.setattr(diagnostics, "integer_attention_cpu", lambda features=None: False)
    assert not default_int8_attention(es_ti, "openvino", said.append)
    assert len(said) == 1 and "neither VNNI nor AMX" in said[0] and "--int8-attention" in said[0]
    # What the CPU check reads: /proc/cpuinfo's flags, as samedge doctor shows them.
    monkeypatch.undo()
    assert diagnostics.cpu_info("flags : avx2 avx512_vnni")[1]["AVX-512 VNNI"]
    for flags, has in (("avx2 fma", False), ("avx2 avx_vnni", True), ("avx512f amx_int8", True)):
        assert diagnostics.integer_attention_cpu(diagnostics.cpu_info(f"flags : {flags}")[1]) is has
