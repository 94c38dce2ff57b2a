"""U²-Net-p backend: download through samedge.hub (local HTTP server on 127.0.0.1 serving a
tiny stand-in ONNX file; the real weights cannot be fetched here), the offline message, and
the backend's contract on ONNX Runtime."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from samedge.errors import ChecksumError, DownloadError, ModelNotFoundError, SamedgeError
from samedge.saliency import make_backend, u2netp
from tests.test_hub import _Server

onnx = pytest.importorskip("onnx")


def _stand_in() -> bytes:
    """A graph with U²-Net-p's I/O: (1, 3, 320, 320) in, the fused map d0 first (sigmoid
    of the channel mean), one side output after it."""
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("input.1", TensorProto.FLOAT, [1, 3, 320, 320])
    d0 = helper.make_tensor_value_info("d0", TensorProto.FLOAT, [1, 1, 320, 320])
    d1 = helper.make_tensor_value_info("d1", TensorProto.FLOAT, [1, 1, 320, 320])
    nodes = [
        helper.make_node("ReduceMean", ["input.1"], ["m"], axes=[1], keepdims=1),
        helper.make_node("Sigmoid", ["m"], ["d0"]),
        helper.make_node("Neg", ["d0"], ["d1"]),
    ]
    graph = helper.make_graph(nodes, "u2netp_stand_in", [x], [d0, d1])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model.SerializeToString()


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[_Server]:
    payload = _stand_in()
    srv = _Server()
    srv.payload = payload
    monkeypatch.setenv("SAMEDGE_HOME", str(tmp_path))
    monkeypatch.setattr(u2netp, "URL", srv.url)
    monkeypatch.setattr(u2netp, "SHA256", hashlib.sha256(payload).hexdigest())
    monkeypatch.setattr(u2netp, "SIZE_BYTES", len(payload))
    yield srv
    srv.close()


def test_published_file_identity() -> None:
    assert u2netp.URL.endswith("/u2netp.onnx") and u2netp.URL.startswith("https://")
    assert len(u2netp.SHA256) == 64 and int(u2netp.SHA256, 16) >= 0
    assert u2netp.SIZE_BYTES == 4_574_861


def test_download_verify_cache_and_run(served: _Server, tmp_path: Path) -> None:
    backend = make_backend("u2netp", progress=False)
    path = tmp_path / "saliency" / "u2netp.onnx"
    assert backend.name == "u2netp" and path.read_bytes() == served.payload
    # Cached: a second backend downloads nothing (the server would now send bad bytes).
    served.payload = b"x" * len(served.payload)
    assert u2netp.fetch(progress=False, url=u2netp.URL) == path
    image = np.zeros((90, 160, 3), np.uint8)
    image[:, 80:] = 255
    sal = backend.saliency(image)
    assert sal.shape == (90, 160) and sal.dtype == np.float32
    # Stand-in d0 = sigmoid(mean of the normalised channels): dark half < bright half.
    assert sal.min() >= 0 and sal.max() <= 1 and sal[:, :70].mean() < sal[:, 90:].mean()


def test_damaged_cache_is_replaced_and_bad_download_removed(
    served: _Server, tmp_path: Path
) -> None:
    path = tmp_path / "saliency" / "u2netp.onnx"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"damaged")
    good = served.payload
    served.payload = good[:-1] + b"\x00"
    with pytest.raises(ChecksumError, match="does not match"):
        u2netp.fetch(progress=False)
    assert list(path.parent.iterdir()) == []
    served.payload = good
    assert u2netp.fetch(progress=False).read_bytes() == good


def test_offline_names_url_and_saliency_model(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SAMEDGE_HOME", str(tmp_path))
    with pytest.raises(DownloadError) as err:
        u2netp.fetch(progress=False, url="http://127.0.0.1:9/u2netp.onnx")
    message = str(err.value)
    assert "http://127.0.0.1:9/u2netp.onnx" in message and "--saliency-model PATH" in message
    assert "\n" not in message
    with pytest.raises(ModelNotFoundError, match=r"--saliency-model PATH") as err2:
        make_backend("u2netp", download=False)
    assert u2netp.URL in str(err2.value)


def test_explicit_path(tmp_path: Path) -> None:
    path = tmp_path / "mine.onnx"
    path.write_bytes(_stand_in())
    assert make_backend("u2netp", path).saliency(np.zeros((4, 6, 3), np.uint8)).shape == (4, 6)
    with pytest.raises(ModelNotFoundError, match="is not a file"):
        make_backend("u2netp", tmp_path / "missing.onnx")
    with pytest.raises(SamedgeError, match="classic has no weights"):
        make_backend("classic", path)
    (tmp_path / "photo.png").write_bytes(b"\x89PNG not a network")  # said: re-export it
    with pytest.raises(SamedgeError, match=r"\(is it u2netp.onnx\? download .*--saliency-model"):
        make_backend("u2netp", tmp_path / "photo.png")


def test_preprocess_is_imagenet_normalised() -> None:
    image = np.zeros((10, 20, 3), np.uint8)
    image[..., 0] = 200
    x = u2netp.preprocess(image)
    assert x.shape == (1, 3, 320, 320) and x.dtype == np.float32
    # Divided by the image's maximum (200) first, then (v - mean) / std.
    np.testing.assert_allclose(x[0, 0, 5, 5], (1.0 - 0.485) / 0.229, rtol=1e-5)
    np.testing.assert_allclose(x[0, 1, 5, 5], (0.0 - 0.456) / 0.224, rtol=1e-5)


def test_cli_offline_is_one_line_and_writes_nothing(
    export_test_model: Callable[[str], Path],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from samedge.cli.main import main
    from tests.conftest import shared_path

    model = export_test_model("mobile_sam")
    monkeypatch.setenv("SAMEDGE_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(u2netp, "URL", "http://127.0.0.1:9/u2netp.onnx")
    photo = shared_path("data", "interactive", "GrabCut", "data_GT", "teddy.jpg")
    out = tmp_path / "m.png"
    argv = ["segment", str(photo), "--model", str(model), "--auto", "--saliency", "u2netp"]
    assert main([*argv, "--out", str(out), "--json", str(tmp_path / "r.json")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "http://127.0.0.1:9/u2netp.onnx" in err
    assert "--saliency-model PATH" in err
    assert not out.exists() and not (tmp_path / "r.json").exists()
