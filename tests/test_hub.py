"""Checkpoint downloads against a real HTTP server on 127.0.0.1 (Range, interruption, sha256)."""

from __future__ import annotations

import hashlib
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from samedge.cli.main import main
from samedge.errors import ChecksumError, DownloadError
from samedge.hub import checkpoint_path, download

PAYLOAD = bytes(range(256)) * 4096  # 1 MiB
SHA = hashlib.sha256(PAYLOAD).hexdigest()


class _Server:
    """Serves PAYLOAD at /ckpt.pth; can cut the connection after ``cut_after`` bytes."""

    def __init__(self) -> None:
        self.cut_after: int | None = None
        self.range_requests: list[str] = []
        self.payload = PAYLOAD
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                if self.path != "/ckpt.pth":
                    self.send_error(404)
                    return
                data = server.payload
                start = 0
                header = self.headers.get("Range")
                if header:
                    server.range_requests.append(header)
                    start = int(header.split("=")[1].split("-")[0])
                    if start >= len(data):
                        self.send_error(416)
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = data[start:]
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if server.cut_after is not None:
                    self.wfile.write(body[: server.cut_after])
                    self.wfile.flush()
                    self.connection.shutdown(2)
                    return
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/ckpt.pth"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[_Server]:
    srv = _Server()
    yield srv
    srv.close()


def test_complete_download(server: _Server, tmp_path: Path) -> None:
    dest = tmp_path / "ckpt.pth"
    assert download(server.url, dest, SHA, progress=False) == dest
    assert dest.read_bytes() == PAYLOAD
    assert not (tmp_path / "ckpt.pth.part").exists()


def test_interrupted_download_resumes(server: _Server, tmp_path: Path) -> None:
    dest = tmp_path / "ckpt.pth"
    server.cut_after = 300_000
    with pytest.raises(DownloadError, match=r"interrupted.*again"):
        download(server.url, dest, SHA, progress=False, timeout=5)
    part = tmp_path / "ckpt.pth.part"
    assert part.stat().st_size == 300_000 and not dest.exists()
    server.cut_after = None
    download(server.url, dest, SHA, progress=False)
    assert server.range_requests == ["bytes=300000-"]
    assert dest.read_bytes() == PAYLOAD and not part.exists()


def test_corrupted_download_is_removed_and_reported(server: _Server, tmp_path: Path) -> None:
    server.payload = PAYLOAD[:-1] + b"X"
    dest = tmp_path / "ckpt.pth"
    with pytest.raises(ChecksumError, match="does not match the expected") as err:
        download(server.url, dest, SHA, progress=False)
    assert SHA in str(err.value)
    assert list(tmp_path.iterdir()) == []


def test_offline_error_names_url_and_local_file_option(tmp_path: Path) -> None:
    url = "http://127.0.0.1:9/sam.pth"  # discard port: connection refused
    with pytest.raises(DownloadError) as err:
        download(url, tmp_path / "sam.pth", SHA, progress=False, timeout=2)
    message = str(err.value)
    assert url in message and "--checkpoint PATH" in message
    assert "\n" not in message


def test_cli_pull_into_cache(
    server: _Server,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from samedge import registry
    from samedge.specs import Checkpoint

    monkeypatch.setenv("SAMEDGE_HOME", str(tmp_path))
    spec = registry.get_spec("sam_vit_b")
    fake = type(spec)(**{**spec.__dict__, "checkpoint": Checkpoint(server.url, SHA, len(PAYLOAD))})
    monkeypatch.setitem(registry._BY_NAME, "sam_vit_b", fake)
    assert main(["models", "pull", "sam_vit_b", "--quiet", "--url", server.url]) == 0
    dest = checkpoint_path(fake)
    assert dest.read_bytes() == PAYLOAD and "sha256 verified" in capsys.readouterr().out
    # A damaged cached file is detected, removed and downloaded again.
    dest.write_bytes(b"damaged")
    assert main(["models", "pull", "sam_vit_b", "--quiet", "--url", server.url]) == 0
    assert dest.read_bytes() == PAYLOAD
    # Offline: one line, exit code 2, nothing left behind.
    dest.unlink()
    code = main(["models", "pull", "sam_vit_b", "--quiet", "--url", "http://127.0.0.1:9/x.pth"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("samedge: error: cannot download") and err.count("\n") == 1
    assert not dest.exists()


def test_gaze_fetch_offline_names_the_gaze_options_and_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Not the SAM checkpoint's advice (``samedge export --checkpoint``): the gaze models are
    passed to ``samedge gaze`` with their own options, or copied into its cache."""
    import dataclasses

    from samedge.gaze import models

    monkeypatch.setenv("SAMEDGE_HOME", str(tmp_path / "home"))
    cache = tmp_path / "home" / "gaze"
    for name, model in models.AUX_MODELS.items():
        offline = tuple(
            dataclasses.replace(f, url=f"http://127.0.0.1:9/{f.filename}") for f in model.files
        )
        monkeypatch.setitem(models.AUX_MODELS, name, dataclasses.replace(model, files=offline))
    assert main(["gaze", "--fetch-models"]) == 2
    err = capsys.readouterr().err
    assert (
        err.startswith("samedge: error: cannot download http://127.0.0.1:9/")
        and err.count("\n") == 1
    )
    assert "--checkpoint" not in err and "samedge export" not in err
    assert f"copy it to {cache}," in err
    for option in ("--face-model", "--gaze-models", "--detector"):
        assert option in err
    # The first model is yunet, a face detector: its own option comes first.
    assert "pass the file to samedge gaze with --face-model PATH" in err
    for stage, option in (("gaze", "--gaze-models"), ("detect", "--detector")):
        name = next(n for n, m in models.AUX_MODELS.items() if m.stage == stage)
        with pytest.raises(DownloadError, match=f"samedge gaze with {option} PATH"):
            models.fetch_aux_model(name, progress=False)
    assert not any(cache.glob("*.onnx")) and not any(cache.glob("*.xml"))


def test_download_without_a_published_sha256_checks_the_size(
    server: _Server, tmp_path: Path
) -> None:
    dest = tmp_path / "ckpt.pth"
    assert download(server.url, dest, None, len(PAYLOAD), progress=False) == dest
    assert dest.read_bytes() == PAYLOAD
    server.payload = PAYLOAD[:-1]
    with pytest.raises(ChecksumError, match=f"where {len(PAYLOAD)} were expected"):
        download(server.url, tmp_path / "short.pth", None, len(PAYLOAD), progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.pth"]


def test_cli_pull_and_list_without_a_published_sha256(
    server: _Server,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """mobile_sam's authors publish no sha256: the size is checked, the pull states the
    file's sha256, and ``models list`` says that none is published."""
    from samedge import registry
    from samedge.specs import Checkpoint

    monkeypatch.setenv("SAMEDGE_HOME", str(tmp_path))
    spec = registry.get_spec("mobile_sam")
    assert spec.checkpoint.sha256 is None
    fake = type(spec)(**{**spec.__dict__, "checkpoint": Checkpoint(server.url, None, len(PAYLOAD))})
    monkeypatch.setitem(registry._BY_NAME, "mobile_sam", fake)
    assert main(["models", "pull", "mobile_sam", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert f"size verified: {len(PAYLOAD)} bytes" in out and SHA in out
    dest = checkpoint_path(fake)
    dest.write_bytes(PAYLOAD[:10])  # a cut file is replaced
    assert main(["models", "pull", "mobile_sam", "--quiet"]) == 0
    assert dest.read_bytes() == PAYLOAD
    capsys.readouterr()
    assert main(["models", "list", "mobile_sam"]) == 0
    (line,) = capsys.readouterr().out.splitlines()[1:]
    assert "checkpoint" in line and "sha256 not published" in line


def test_pull_and_list_without_a_published_sha256_or_size(
    server: _Server,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """EfficientViT-SAM's authors publish neither a sha256 nor a size: a download cut short
    of the server's Content-Length is still refused (and resumed); a complete one is kept
    and the pull says it is not verified, giving the file's size and sha256."""
    from samedge import registry
    from samedge.specs import Checkpoint

    monkeypatch.setenv("SAMEDGE_HOME", str(tmp_path))
    name = "efficientvit_sam_l0"
    spec = registry.get_spec(name)
    assert spec.checkpoint.sha256 is None and spec.checkpoint.size_bytes is None
    fake = type(spec)(**{**spec.__dict__, "checkpoint": Checkpoint(server.url, None, None)})
    monkeypatch.setitem(registry._BY_NAME, name, fake)
    server.cut_after = 1000
    assert main(["models", "pull", name, "--quiet"]) != 0
    assert "interrupted at 1000 of" in capsys.readouterr().err
    server.cut_after = None
    assert main(["models", "pull", name, "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "not verified" in out and f"{len(PAYLOAD)} bytes" in out and SHA in out
    assert checkpoint_path(fake).read_bytes() == PAYLOAD
    assert server.range_requests == ["bytes=1000-"]
    assert main(["models", "list", name]) == 0
    (line,) = capsys.readouterr().out.splitlines()[1:]
    assert "unknown" in line and "sha256 and size not published: not verified" in line
