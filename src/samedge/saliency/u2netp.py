"""U²-Net-p (Qin et al., 2020; Apache-2.0) as ONNX: a learned salient-object backend.

The file is the ONNX conversion the rembg project publishes (``u2netp.onnx``, 4,574,861
bytes). rembg's session loader pins its MD5 (``8e83ca70e441ab06c318d82300c84806``); the
sha256 below is the one several independent projects record for that same file next to
that MD5. It is downloaded through :func:`samedge.hub.download` (resumable, verified,
cached under ``$SAMEDGE_HOME/saliency``); ``--saliency-model PATH`` loads any local copy
(not compared with the hash: it may be a re-export) instead.

Input contract (as rembg feeds it): RGB resized to 320x320, divided by its maximum, then
ImageNet mean/std, NCHW float32. The graph returns the fused map ``d0`` first, then the six
side outputs; ``d0`` is already a sigmoid in [0, 1]. It is used as is, not min-max scaled
as rembg does, so an image with no subject stays dark and the five-click rule can say so.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from ..errors import ArtifactError, ModelNotFoundError

URL = "https://github.com/danielgatis/rembg/releases/download/v0.0.0/u2netp.onnx"
SHA256 = "309c8469258dda742793dce0ebea8e6dd393174f89934733ecc8b14c76f4ddd8"
SIZE_BYTES = 4_574_861
FILENAME = "u2netp.onnx"
INPUT_SIZE = 320
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def cache_path() -> Path:
    """``$SAMEDGE_HOME/saliency/u2netp.onnx``."""
    from ..hub import samedge_home

    return samedge_home() / "saliency" / FILENAME


def offline_hint(url: str, dest: Path) -> str:
    """The end of a failed download's message: what to do without a network."""
    return (
        f"if this machine is offline, download {url} elsewhere and pass it with "
        f"--saliency-model PATH (or copy it to {dest}), or use --saliency classic"
    )


def fetch(progress: bool = True, url: str | None = None) -> Path:
    """The cached U²-Net-p file, downloaded (and verified by sha256) when missing or bad.

    Args:
        url: a mirror to download from instead of :data:`URL`; the bytes must match.

    Raises:
        DownloadError, ChecksumError: see :func:`samedge.hub.download`; the message names
            the URL and ``--saliency-model PATH``.
    """
    from ..hub import download, verify_file

    dest = cache_path()
    if dest.is_file():
        if verify_file(dest, SHA256):
            return dest
        dest.unlink()
    return download(
        url or URL, dest, SHA256, SIZE_BYTES, progress=progress, offline_hint=offline_hint
    )


def preprocess(image: np.ndarray) -> np.ndarray:
    """float32 ``(1, 3, 320, 320)`` network input of a uint8 ``(H, W, 3)`` RGB image."""
    resized = cv2.resize(image, (INPUT_SIZE, INPUT_SIZE), interpolation=cv2.INTER_LANCZOS4)
    x = resized.astype(np.float32)
    x /= max(float(x.max()), 1e-6)
    x -= np.asarray(MEAN, np.float32)
    x /= np.asarray(STD, np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None])


class U2NetP:
    """:class:`samedge.saliency.SaliencyBackend` running U²-Net-p on ONNX Runtime.

    Args:
        path: a local ``u2netp.onnx``; ``None`` takes the cached file, downloading it (with
            ``download=True``) when it is missing.
        download: allow the download; without it a missing file is a
            :class:`ModelNotFoundError` naming the URL and ``--saliency-model PATH``.
    """

    name = "u2netp"

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        providers: str | Sequence[str] | None = None,
        threads: int | None = None,
        download: bool = True,
        progress: bool = True,
    ) -> None:
        from ..runtime.session import create_session

        if path is not None:
            file = Path(path).expanduser()
            if not file.is_file():
                raise ModelNotFoundError(f"--saliency-model: {file} is not a file")
        elif download:
            file = fetch(progress=progress)
        else:
            file = cache_path()
            if not file.is_file():
                raise ModelNotFoundError(
                    f"u2netp is not in {file.parent}: download {URL} and pass it with "
                    f"--saliency-model PATH, or use --saliency classic"
                )
        self.path = file
        self._session = create_session(
            file,
            providers,
            threads,
            fix=f"is it u2netp.onnx? download {URL} and pass it with --saliency-model PATH",
        )
        inputs = self._session.get_inputs()
        if len(inputs) != 1 or len(inputs[0].shape) != 4:
            shapes = [(i.name, list(i.shape)) for i in inputs]
            raise ArtifactError(
                f"{file.name} is not a U²-Net-p model: inputs {shapes}, expected one "
                f"(1, 3, {INPUT_SIZE}, {INPUT_SIZE}) image"
            )
        self._input = inputs[0].name
        self._output = self._session.get_outputs()[0].name  # d0, the fused map

    def saliency(self, image: np.ndarray) -> np.ndarray:
        """float32 ``(H, W)`` in [0, 1] for a uint8 ``(H, W, 3)`` RGB image."""
        height, width = image.shape[:2]
        (out,) = self._session.run([self._output], {self._input: preprocess(image)})
        sal = np.asarray(out, dtype=np.float32).reshape(out.shape[-2:])
        full = cv2.resize(sal, (width, height), interpolation=cv2.INTER_LINEAR)
        return np.clip(full, 0.0, 1.0)
