"""Checkpoint downloads against a real HTTP server on 127.0.0.1 (Range, interruption, sha256)."""

from __future__ import annotations

import hashlib
import http.server
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from samedge.cli.main import main
from samedge.errors import ChecksumError, DownloadError
from samedge.hub import checkpoint_path, download
from samedge.registry import get_spec
from samedge.specs import Checkpoint, ModelSpec

PAYLOAD = bytes(range(256)) * 4096  # 1 MiB
SHA = hashlib.sha256(PAYLOAD).hexdigest()


class _Server:
    """Serves PAYLOAD at /ckpt.pth; can cut the connection after ``cut_after`` bytes."""

    def __init__(self) -> None:
        self.cut_after: int | None = None
        self.range_requests: list[str] = []
        self.payload = PAYLOAD
        self.gets = 0
        self.chunk_delay = 0.0  # seconds between 64 KiB chunks: a slow download
        self.resume_from_zero = False  # answer a Range request with 206 from byte 0
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                if self.path != "/ckpt.pth":
                    self.send_error(404)
                    return
                server.gets += 1
                data = server.payload
                start = 0
                header = self.headers.get("Range")
                if header:
                    server.range_requests.append(header)
                    asked = int(header.split("=")[1].split("-")[0])
                    start = 0 if server.resume_from_zero else asked
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
                if server.chunk_delay:
                    for i in range(0, len(body), 1 << 16):
                        self.wfile.write(body[i : i + (1 << 16)])
                        time.sleep(server.chunk_delay)
                    return
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/ckpt.pth"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _served(
    monkeypatch: pytest.MonkeyPatch, name: str, url: str, sha256: str | None, size: int | None
) -> ModelSpec:
    """The registered ``name`` with its checkpoint at ``url`` (the local server) and the
    given published sha256 and size, in a ``SAMEDGE_HOME`` set by the test."""
    from samedge import registry

    spec = registry.get_spec(name)
    fake = type(spec)(**{**spec.__dict__, "checkpoint": Checkpoint(url, sha256, size)})
    monkeypatch.setitem(registry._BY_NAME, name, fake)
    return fake


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
    monkeypatch.setenv("SAMEDGE_HOME", str(tmp_path))
    fake = _served(monkeypatch, "sam_vit_b", server.url, SHA, len(PAYLOAD))
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
    monkeypatch.setenv("SAMEDGE_HOME", str(tmp_path))
    assert get_spec("mobile_sam").checkpoint.sha256 is None
    fake = _served(monkeypatch, "mobile_sam", server.url, None, len(PAYLOAD))
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
    monkeypatch.setenv("SAMEDGE_HOME", str(tmp_path))
    name = "efficientvit_sam_l0"
    published = get_spec(name).checkpoint
    assert published.sha256 is None and published.size_bytes is None
    fake = _served(monkeypatch, name, server.url, None, None)
    server.payload = zipped = b"PK\x03\x04" + PAYLOAD[4:]  # starts as a torch.save file does
    sha = hashlib.sha256(zipped).hexdigest()
    server.cut_after = 1000
    assert main(["models", "pull", name, "--quiet"]) != 0
    assert "interrupted at 1000 of" in capsys.readouterr().err
    server.cut_after = None
    assert main(["models", "pull", name, "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "not verified" in out and f"{len(PAYLOAD)} bytes" in out and sha in out
    assert checkpoint_path(fake).read_bytes() == zipped
    assert server.range_requests == ["bytes=1000-"]
    assert main(["models", "list", name]) == 0
    (line,) = capsys.readouterr().out.splitlines()[1:]
    assert "unknown" in line and "sha256 and size not published: not verified" in line


def test_two_downloads_of_one_file_take_turns(server: _Server, tmp_path: Path) -> None:
    """Two processes pulling one checkpoint at once (two terminals, batch workers sharing
    one cache) used to append to one ``.part`` and rename each other's bytes into place: a
    corrupt file reported as verified. The second now waits and takes the first's file."""
    server.chunk_delay = 0.01  # ~0.2 s for the 1 MiB payload
    dest = tmp_path / "ckpt.pth"
    results: list[object] = []

    def pull() -> None:
        try:
            results.append(download(server.url, dest, SHA, progress=False))
        except Exception as exc:  # reported by the assertion below
            results.append(exc)

    threads = [threading.Thread(target=pull) for _ in range(2)]
    for t in threads:
        t.start()
        time.sleep(0.05)
    for t in threads:
        t.join(timeout=30)
    assert results == [dest, dest]
    assert dest.read_bytes() == PAYLOAD
    assert server.gets == 1 and server.range_requests == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.pth"]  # no .part, no lock


def test_resume_answered_from_another_byte_is_refused(server: _Server, tmp_path: Path) -> None:
    """A server that answers ``Range: bytes=N-`` with bytes from 0 would splice two copies;
    the partial file is removed instead and the next run starts afresh."""
    dest = tmp_path / "ckpt.pth"
    part = tmp_path / "ckpt.pth.part"
    part.write_bytes(PAYLOAD[:1000])
    server.resume_from_zero = True
    with pytest.raises(DownloadError, match="from byte 0 instead of 1000") as err:
        download(server.url, dest, None, len(PAYLOAD), progress=False)
    assert "\n" not in str(err.value)
    assert not part.exists() and not dest.exists()
    assert download(server.url, dest, None, len(PAYLOAD), progress=False) == dest
    assert dest.read_bytes() == PAYLOAD


def test_unwritable_cache_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "not-a-folder"
    home.write_text("x")
    monkeypatch.setenv("SAMEDGE_HOME", str(home))
    assert main(["models", "pull", "sam_vit_b", "--quiet", "--url", "http://127.0.0.1:9/x"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("samedge: error: cannot write to") and "SAMEDGE_HOME" in err
    assert err.count("\n") == 1


def test_a_reply_that_is_not_http_is_one_error(tmp_path: Path) -> None:
    """A proxy or captive portal answering garbage raised http.client's BadStatusLine."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)

    def answer() -> None:
        conn, _ = listener.accept()
        conn.recv(4096)
        conn.sendall(b"garbage\r\n\r\n")
        conn.close()

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/ckpt.pth"
    try:
        with pytest.raises(DownloadError, match="BadStatusLine") as err:
            download(url, tmp_path / "ckpt.pth", SHA, progress=False, timeout=5)
    finally:
        listener.close()
    assert url in str(err.value) and "--checkpoint PATH" in str(err.value)


def test_pull_refuses_an_error_page_where_nothing_is_published(
    server: _Server,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """EfficientSAM publishes neither sha256 nor size: a mirror's HTML page used to be kept
    as the checkpoint, and pull then never replaced it (export kept failing)."""
    monkeypatch.setenv("SAMEDGE_HOME", str(tmp_path))
    name = "efficientsam_ti"
    published = get_spec(name).checkpoint
    assert published.sha256 is None and published.size_bytes is None
    fake = _served(monkeypatch, name, server.url, None, None)
    dest = checkpoint_path(fake)
    server.payload = b"<!DOCTYPE html><html>Not Found</html>"
    assert main(["models", "pull", name, "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "is not a PyTorch checkpoint" in err and "<!DOCTYPE" in err and err.count("\n") == 1
    assert list(dest.parent.iterdir()) == []
    # Such a file already in the cache (from an older samedge) is replaced.
    zipped = b"PK\x03\x04" + PAYLOAD[4:]
    server.payload = zipped
    dest.write_bytes(b"<html>")
    assert main(["models", "pull", name, "--quiet"]) == 0
    assert dest.read_bytes() == zipped
    # --force downloads again even a file that passes.
    gets = server.gets
    assert main(["models", "pull", name, "--quiet"]) == 0 and server.gets == gets
    assert main(["models", "pull", name, "--quiet", "--force"]) == 0 and server.gets == gets + 1
