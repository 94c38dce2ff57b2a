"""Command-line options shared by the commands that run a model."""

from __future__ import annotations

import argparse


def add_runtime_options(parser: argparse.ArgumentParser) -> None:
    """``--provider`` (ordered execution providers, CPU fallback) and ``--threads``."""
    parser.add_argument("--provider", help="execution providers, e.g. cuda,cpu (default cpu)")
    parser.add_argument("--threads", type=int, help="intra-op threads (default: all cores)")
