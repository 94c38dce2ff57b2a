"""``samedge`` command line: one module per command, each with ``register`` and ``run``.

Errors a user can fix are printed as one line (``samedge: error: ...``) with exit code 2;
``SAMEDGE_DEBUG=1`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator, Sequence

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


class Terminated(KeyboardInterrupt):
    """SIGTERM (``kill``, a job scheduler, a container stop): unwinds as Ctrl-C does, so
    every command removes what it had not finished writing."""


def _terminate(signum: int, frame: object) -> None:
    raise Terminated


@contextlib.contextmanager
def _sigterm_unwinds() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may set signal handlers
        return
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


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
        with _sigterm_unwinds():
            return int(args.func(args) or 0)
    except SamedgeError as exc:
        if os.environ.get("SAMEDGE_DEBUG"):
            raise
        print(f"samedge: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except Terminated:
        print("samedge: terminated", file=sys.stderr)
        return 128 + signal.SIGTERM
    except KeyboardInterrupt:
        print("samedge: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
