"""Calibration inputs for static INT8, built from images exactly as inference builds them.

Encoder feeds are ``preprocess(image, spec)`` tensors. Decoder feeds are the fp32 parent's
embeddings of the same images with a centre point, a box and a point pair per image, built
by :func:`samedge.runtime.prompts.normalize_prompts`, so every calibrated tensor has the
value range it has at inference. Both are generators: one image is read (and, for the
decoder, encoded) at a time, so calibration memory does not grow with ``--num-images``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import SamedgeError
from ..imageio import IMAGE_SUFFIXES, load_image
from ..manifest import sha256_file
from ..runtime.preprocess import preprocess
from ..runtime.prompts import normalize_prompts


def list_images(folder: Path, limit: int | None = None) -> list[Path]:
    """Image files directly in ``folder``, sorted by name, the first ``limit`` of them.

    Raises:
        SamedgeError: the folder does not exist or holds no image.
    """
    if not folder.is_dir():
        raise SamedgeError(f"calibration folder not found: {folder}")
    images = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not images:
        raise SamedgeError(
            f"no images in {folder} (looked for {', '.join(IMAGE_SUFFIXES)}); pass a folder "
            f"of photos like those the model will see with --calibration"
        )
    return images[:limit] if limit else images


def file_hashes(paths: list[Path]) -> dict[str, Path]:
    """sha256 -> path, to find an image used twice under different names."""
    return {sha256_file(p): p for p in paths}


def encoder_feeds(images: list[Path], spec: Any) -> Iterator[dict[str, np.ndarray]]:
    """One ``{encoder input: (1,3,S,S) float32}`` dict per image."""
    for path in images:
        tensor, _ = preprocess(load_image(path), spec)
        yield {spec.encoder_inputs[0]: tensor}


def _prompt_sets(h: int, w: int) -> list[dict[str, Any]]:
    cx, cy = (w - 1) / 2, (h - 1) / 2
    return [
        {"points": np.array([[cx, cy]]), "labels": np.array([1])},
        {"box": np.array([w * 0.2, h * 0.2, w * 0.8, h * 0.8])},
        {"points": np.array([[w * 0.3, h * 0.4], [w * 0.7, h * 0.6]]), "labels": np.array([1, 0])},
    ]


def decoder_feeds(
    images: list[Path],
    parent: Any,
    with_mask: bool = False,
    embeddings: dict[Path, Any] | None = None,
) -> Iterator[dict[str, np.ndarray]]:
    """Decoder input dicts: ``parent`` (an fp32 :class:`Predictor`) encodes each image and
    three prompt sets (centre point, box, positive+negative points) are added per image.

    ``with_mask``: inputs for ``decoder_mask.onnx``: each prompt set again with the fp32
    prediction's best low-res logits as the mask input, as an interactive refinement sends.
    ``embeddings``: the parent's embeddings by image, filled on first use: calibration reads
    the samples once per pass and per decoder graph (histogram methods take two passes), and
    each image is then encoded once (16 MiB an image at most, SAM 2's high-res maps).
    """
    spec = parent.spec
    for path in images:
        if embeddings is None:
            emb = parent.encode(path)
        elif (emb := embeddings.get(path)) is None:
            emb = embeddings[path] = parent.encode(path)
        h, w = emb.original_size
        for prompt in _prompt_sets(h, w):
            if with_mask:
                first = parent.predict(emb, **prompt, best_only=True)
                prompt = {**prompt, "mask_input": first.low_res_logits[0]}
            p = normalize_prompts(spec, emb.original_size, emb.input_size, **prompt)
            yield parent.graphs.decoder_feeds(emb, p)[1]
