"""The auxiliary model registry, its resolver, the I/O check and downloads.

Downloads run against a real HTTP server on 127.0.0.1 (no internet here).
"""

from __future__ import annotations

import hashlib
import http.server
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from samedge.errors import ArtifactError, ChecksumError, ModelNotFoundError
from samedge.gaze.backend import load_network
from samedge.gaze.models import (
    AUX_MODELS,
    aux_cache_dir,
    check_io,
    fetch_aux_model,
    resolve_aux_model,
)
from samedge.hub import verify_file

from ..conftest import shared_path

#: The 0.1.1rc0 release asset as public projects pinning its URL record it.
YOLOX_RELEASE_SHA256 = "c789161ed43c8269fcd4e67c67eeeb4e80c622da2eb296a20bc6007bd18a0b7d"

SHARED_COPIES = {
    "yunet": "face/yunet_n_640_640.onnx",
    "ultraface": "face/ultraface-RFB-320.onnx",
    "yolox_nano": "detection/yolox_nano.onnx",
    "landmarks-regression-retail-0009": "gaze/landmarks-regression-retail-0009/FP16",
    "head-pose-estimation-adas-0001": "gaze/head-pose-estimation-adas-0001/FP16",
    "gaze-estimation-adas-0002": "gaze/gaze-estimation-adas-0002/FP16",
}


def test_every_entry_is_complete():
    assert set(AUX_MODELS) == set(SHARED_COPIES)
    for model in AUX_MODELS.values():
        assert model.licence in ("Apache-2.0", "MIT")
        assert model.stage in ("face", "gaze", "detect")
        for item in model.files:
            assert item.url.startswith("https://") and item.url.endswith(item.filename)
            assert re.fullmatch(r"[0-9a-f]{64}", item.sha256)
            assert item.tested_sha256 == "" or re.fullmatch(r"[0-9a-f]{64}", item.tested_sha256)
        assert model.signature.inputs and model.signature.outputs


@pytest.mark.parametrize("name", sorted(SHARED_COPIES))
def test_sha256_matches_the_tested_copies(name):
    folder = shared_path("models", SHARED_COPIES[name])
    if folder.is_file():
        folder = folder.parent
    shared_name = {"ultraface": "ultraface-RFB-320.onnx"}
    for item in AUX_MODELS[name].files:
        path = folder / shared_name.get(name, item.filename)
        assert verify_file(path, item.tested_sha256 or item.sha256), f"{path} does not match"


def test_yolox_downloads_are_checked_against_the_release_not_the_test_copy():
    (item,) = AUX_MODELS["yolox_nano"].files
    assert item.sha256 == YOLOX_RELEASE_SHA256 and item.size == 3_659_407
    assert item.url.endswith("/0.1.1rc0/yolox_nano.onnx")
    copy = shared_path("models", "detection", "yolox_nano.onnx")
    assert copy.stat().st_size == 3_660_092  # a re-export: not the release bytes
    assert not verify_file(copy, item.sha256) and verify_file(copy, item.tested_sha256)


def test_resolver_explicit_file_folder_and_omz_tree(tmp_path, monkeypatch):
    monkeypatch.setenv("SAMEDGE_HOME", str(tmp_path / "home"))
    models = shared_path("models")
    yunet = models / "face" / "yunet_n_640_640.onnx"
    assert resolve_aux_model("yunet", yunet) == yunet
    assert resolve_aux_model("yunet", yunet.parent) == yunet
    gaze = resolve_aux_model("gaze-estimation-adas-0002", models / "gaze")
    assert gaze == models / "gaze/gaze-estimation-adas-0002/FP16/gaze-estimation-adas-0002.xml"


def test_resolver_uses_the_cache_and_never_the_shared_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("SAMEDGE_HOME", str(tmp_path))
    with pytest.raises(ModelNotFoundError, match="--fetch-models"):
        resolve_aux_model("yolox_nano")
    cached = tmp_path / "gaze" / "yolox_nano.onnx"
    cached.parent.mkdir()
    cached.write_bytes(b"x")
    assert resolve_aux_model("yolox_nano") == cached
    with pytest.raises(ModelNotFoundError, match="not a file"):
        resolve_aux_model("yolox_nano", tmp_path / "missing.onnx")
    with pytest.raises(ModelNotFoundError, match="unknown auxiliary model 'nope'"):
        resolve_aux_model("nope", Path("."))


@pytest.mark.parametrize(
    ("name", "path", "backend"),
    [
        ("yunet", "face/yunet_n_640_640.onnx", "ort"),
        ("yunet", "face/yunet_n_dynamic.onnx", "ort"),  # dynamic sizes match any size
        ("ultraface", "face/ultraface-RFB-320.onnx", "ort"),
        ("yolox_nano", "detection/yolox_nano.onnx", "ort"),
        # OpenVINO gives some compiled outputs an internal tensor name besides the file's
        # (YuNet's cls_8 is also '330'): the file's own names are the ones checked.
        ("yunet", "face/yunet_n_640_640.onnx", "openvino"),
        ("yunet", "face/yunet_n_dynamic.onnx", "openvino"),
        ("ultraface", "face/ultraface-RFB-320.onnx", "openvino"),
        ("yolox_nano", "detection/yolox_nano.onnx", "openvino"),
        *[
            (n, f"gaze/{n}/FP16/{n}.xml", "openvino")
            for n in (
                "landmarks-regression-retail-0009",
                "head-pose-estimation-adas-0001",
                "gaze-estimation-adas-0002",
            )
        ],
    ],
)
def test_every_tested_copy_matches_its_io_signature(name, path, backend):
    if backend == "openvino":
        pytest.importorskip(
            "openvino", reason="needs the [gaze] extra: pip install 'samedge[gaze]'"
        )
    check_io(name, load_network(shared_path("models", *path.split("/")), backend, threads=1))


@pytest.mark.parametrize(
    ("name", "path", "message"),
    [
        ("yolox_nano", "detection/fastestdet.onnx", "output '758' has shape 1x85x22x22"),
        ("yunet", "face/ultraface-RFB-320.onnx", "2 output(s), expected 12"),
        ("ultraface", "detection/yolox_nano.onnx", "1 output(s), expected 2"),
    ],
)
def test_a_wrong_file_fails_the_io_check_with_one_line(name, path, message):
    net = load_network(shared_path("models", *path.split("/")), "ort", threads=1)
    with pytest.raises(ArtifactError) as err:
        check_io(name, net)
    text = str(err.value)
    assert message in text and f"is not a {name} model" in text and "\n" not in text


class _Files:
    """Serves ``files`` (name -> bytes) on 127.0.0.1 and counts the requests."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files
        self.requests: list[str] = []
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                owner.requests.append(self.path)
                body = owner.files.get(self.path.lstrip("/"))
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def mirror() -> Iterator[_Files]:
    server = _Files({})
    yield server
    server.close()


def test_a_re_export_is_refused_as_a_download_but_accepted_as_your_file(
    mirror, tmp_path, monkeypatch
):
    monkeypatch.setenv("SAMEDGE_HOME", str(tmp_path / "home"))
    copy = shared_path("models", "detection", "yolox_nano.onnx")
    mirror.files["yolox_nano.onnx"] = copy.read_bytes()
    with pytest.raises(ChecksumError) as err:
        fetch_aux_model("yolox_nano", progress=False, mirror=mirror.url)
    assert YOLOX_RELEASE_SHA256 in str(err.value)
    assert mirror.requests == ["/yolox_nano.onnx"]
    assert not aux_cache_dir().exists() or list(aux_cache_dir().iterdir()) == []
    with pytest.raises(ModelNotFoundError, match="--fetch-models"):
        resolve_aux_model("yolox_nano")
    # The same bytes given as a file are used: the I/O contract is what is checked.
    path = resolve_aux_model("yolox_nano", copy)
    check_io("yolox_nano", load_network(path, "ort", threads=1))


def test_a_download_matching_the_registry_lands_in_the_cache_once(mirror, tmp_path, monkeypatch):
    monkeypatch.setenv("SAMEDGE_HOME", str(tmp_path / "home"))
    payload = shared_path("models", "face", "yunet_n_640_640.onnx").read_bytes()
    (item,) = AUX_MODELS["yunet"].files
    assert hashlib.sha256(payload).hexdigest() == item.sha256
    mirror.files[item.filename] = payload
    fetched = fetch_aux_model("yunet", progress=False, mirror=mirror.url + "/")
    assert fetched == aux_cache_dir() / item.filename and fetched.read_bytes() == payload
    assert resolve_aux_model("yunet") == fetched
    assert fetch_aux_model("yunet", progress=False, mirror=mirror.url) == fetched
    assert mirror.requests == ["/yunet_n_640_640.onnx"]  # the verified copy was kept
    # A damaged cache file is replaced by a fresh download.
    fetched.write_bytes(b"damaged")
    fetch_aux_model("yunet", progress=False, mirror=mirror.url)
    assert fetched.read_bytes() == payload and len(mirror.requests) == 2
