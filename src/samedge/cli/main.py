"""``samedge`` command line: one module per command, each with ``register`` and ``run``.

Errors a user can fix are printed as one line (``samedge: error: ...``) with exit code 2;
``SAMEDGE_DEBUG=1`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence

from .. import __version__
from ..errors import SamedgeError

#: Command modules under ``samedge.cli``, in the order ``--help`` lists them.
COMMANDS = [
    "models",
    "export",
    "segment",
    "everything",
    "batch",
    "track",
    "eval",
    "web",
    "gaze",
    "bench",
    "quantize",
    "doctor",
]

EXIT_USAGE = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="samedge",
        description="Segment Anything on ordinary machines (ONNX Runtime + NumPy).",
    )
    parser.add_argument("--version", action="version", version=f"samedge {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        importlib.import_module(f"samedge.cli.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = (
        logging.WARNING
        if args.verbose == 0
        else logging.INFO
        if args.verbose == 1
        else logging.DEBUG
    )
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except SamedgeError as exc:
        if os.environ.get("SAMEDGE_DEBUG"):
            raise
        print(f"samedge: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("samedge: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
