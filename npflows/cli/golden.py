"""``python -m npflows golden``: write the conformance pack (docs/golden.md)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..golden import GOLDEN_VERSION, write_pack
from .common import add_command


def golden_command(args: argparse.Namespace) -> int:
    """Write the conformance pack into DIR: for every layer and transformer of npflows, float64
    reference vectors (raw parameters by name, inputs including knots, bounds and tails, outputs and
    log-dets in both directions, pullbacks for fixed cotangents), one .npz per case, and
    index.json listing the cases, their constructor arguments and their members' shapes.
    docs/golden.md describes the format for readers in any language."""
    index = write_pack(args.out)
    print(f"wrote {len(index['cases'])} cases (pack version {GOLDEN_VERSION}) to {args.out}")
    return 0


def add_parsers(commands) -> None:
    """Register ``golden``."""
    p = add_command(commands, "golden", golden_command, "write the conformance pack")
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="directory to write")
