"""``samedge models list`` and ``samedge models pull NAME``."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import ModelNotFoundError
from ..hub import checkpoint_path, pull
from ..manifest import MANIFEST_NAME, Manifest, sha256_file
from ..registry import get_spec, list_models
from .options import add_progress_option


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("models", help="list registered models, download checkpoints")
    msub = parser.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    lst = msub.add_parser("list", help="registered models with their status in the cache")
    lst.add_argument("pattern", nargs="?", default="*", help="shell pattern, e.g. 'sam2*'")
    lst.set_defaults(func=run_list)
    pl = msub.add_parser("pull", help="download an official checkpoint into the cache")
    pl.add_argument("name", help="registered model name")
    pl.add_argument(
        "--url", help="download from this mirror URL (sha256, or size, is still checked)"
    )
    pl.add_argument(
        "--force",
        action="store_true",
        help="download again even if the cached file passes its checks (e.g. a checkpoint "
        "whose authors publish neither sha256 nor size, that export cannot read)",
    )
    add_progress_option(pl)
    pl.set_defaults(func=run_pull)


#: Printed under the full list: which model to pick for what. Latency: the encoder (one
#: image) on 2 CPU cores with ONNX Runtime, measured here (docs/benchmarks.md); quality: what
#: the authors publish (README.md cites where). Every registered model is Apache-2.0.
GUIDE = """\
Which to pick (encoder, 2 CPU cores, quiet run in the README; quality: the authors'):
  real time, gaze   efficientvit_sam_l0  ~0.3 s; authors: SAM-ViT-H's accuracy, 48.9x faster (A100)
  faster still      efficientvit_sam_l0  ~0.14 s as static INT8 with VNNI/AMX; OpenVINO ~0.06 s
  smallest file     mobile_sam           ~0.6 s; authors: ~0.73 mIoU against SAM's own masks
  small SAM 2       sam2.1_hiera_tiny    ~1.4 s; sam2.1_hiera_large for the best masks (slowest)
  original SAM      sam_vit_b            ~5.3 s; sam_vit_l and sam_vit_h are slower still
  EfficientSAM      efficientsam_ti      ~0.9 s (OpenVINO INT8 ~0.27 s); points only, no mask prompt
On an AVX2-only CPU (no AVX-512/VNNI) expect 1.3-1.6x these fp32 times and 1.1-1.2x from INT8.
All registered weights and code are Apache-2.0. More: README.md, 'Which model to pick'."""


def run_list(args: argparse.Namespace) -> int:
    from ..artifacts import default_model_folder

    names = list_models(args.pattern)
    if not names:
        raise ModelNotFoundError(f"no model matches '{args.pattern}'; try 'samedge models list'")
    header = f"{'name':24} {'family':16} {'resize':17} {'checkpoint':>10}  {'licence':10} status"
    print(header)
    for name in names:
        spec = get_spec(name)
        status = []
        if checkpoint_path(spec).exists():
            status.append("checkpoint")
        folder = default_model_folder(name)
        if (folder / MANIFEST_NAME).exists():
            status.append(_export_status(folder))
        known = spec.checkpoint.size_bytes
        if spec.checkpoint.sha256 is None:
            status.append(
                "sha256 not published: size checked"
                if known is not None
                else "sha256 and size not published: not verified"
            )
        size = f"{known / 2**20:.0f} MiB" if known is not None else "unknown"
        print(
            f"{name:24} {spec.family:16} {spec.resize:17} {size:>10}  {spec.licence:10} "
            f"{', '.join(status) or '-'}"
        )
    if args.pattern == "*":
        print()
        print(GUIDE)
    return 0


def _export_status(folder: Path) -> str:
    """``exported``, with ``random weights`` for a ``--random-init`` export, or why the
    folder cannot be used (the web UI's model list leaves such folders out)."""
    from ..errors import SamedgeError

    try:
        manifest = Manifest.read(folder)
    except SamedgeError:
        return "export unreadable: export it again"
    random = manifest.weights.get("source") == "random-init"
    return "exported (random weights)" if random else "exported"


def run_pull(args: argparse.Namespace) -> int:
    spec = get_spec(args.name)
    path = pull(spec, url=args.url, progress=not args.no_progress, force=args.force)
    if spec.checkpoint.sha256 is None and spec.checkpoint.size_bytes is None:
        print(
            f"{spec.name}: {path} (not verified: the authors publish neither a sha256 nor "
            f"a size; this file has {path.stat().st_size} bytes and sha256 "
            f"{sha256_file(path)}; export loads it strictly as the model's weights)"
        )
    elif spec.checkpoint.sha256 is None:
        print(
            f"{spec.name}: {path} (size verified: {spec.checkpoint.size_bytes} bytes; the "
            f"authors publish no sha256, this file's is {sha256_file(path)})"
        )
    else:
        print(f"{spec.name}: {path} (sha256 verified)")
    return 0
