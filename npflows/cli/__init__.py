"""The command line of npflows: python -m npflows COMMAND (and COMMAND --help for its options).

  fit          train a flow by maximum likelihood on a built-in data set or a .npy/.csv file
  sample       draw points from a saved model
  score        the log-density of each row of a file under a saved model
  fit-density  train a flow by reverse KL to an unnormalized target density
  check-model  score a zuko or nflows model independently, from its exported arrays

Exit codes: 0 on success, 2 for a usage error, 1 (with one "error: ..." line) for a failure.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ..train import TrainingDiverged
from . import check_model, fit_data, fit_density, saved_model
from .common import RawFormatter, UsageError

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The parser of every subcommand; each sets ``run``, the function that carries it out, and
    ``parser``, its own parser (for usage errors found after parsing)."""
    parser = argparse.ArgumentParser(
        prog="python -m npflows", description=__doc__, formatter_class=RawFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (fit_data, saved_model, fit_density, check_model):
        module.add_parsers(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line on ``argv`` (default ``sys.argv[1:]``); return the exit code.

    Usage errors exit through argparse's ``SystemExit`` with code 2 (0 for ``--help``).
    """
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except UsageError as error:
        args.parser.error(str(error))
    except (ValueError, TrainingDiverged, OSError) as error:
        if isinstance(error, OSError) and error.filename is not None:
            error = f"{error.filename}: {error.strerror}"
        print(f"error: {error}", file=sys.stderr)
        return 1
