"""The command line of npflows: ``npflows COMMAND`` or ``python -m npflows COMMAND`` (and COMMAND
--help for its options).

  fit          train a flow by maximum likelihood on a built-in data set or a .npy/.csv file
  sample       draw points from a saved model
  score        the log-density of each row of a file under a saved model
  fit-density  train a flow by reverse KL to an unnormalized target density
  check-model  score a zuko or nflows model independently, from its exported arrays
  golden       write the conformance pack: reference vectors for every layer and transformer

Exit codes: 0 on success, 2 for a usage error, 1 (with one "error: ..." line) for a failure, 130
when interrupted (Ctrl-C).

BLAS threads: the flows here are small (two hidden layers of 64 units by default), and on a busy
machine several BLAS threads per matrix product cost more than they save. When threadpoolctl is
installed (pip install 'npflows[threads]') the commands therefore run with one BLAS thread, unless
OMP_NUM_THREADS, OPENBLAS_NUM_THREADS or MKL_NUM_THREADS is set, which then decides.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from .. import __version__
from ..train import TrainingDiverged
from . import check_model, fit_data, fit_density, golden, saved_model
from .common import RawFormatter, UsageError

__all__ = ["build_parser", "main"]

THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def build_parser() -> argparse.ArgumentParser:
    """The parser of every subcommand; each sets ``run``, the function that carries it out, and
    ``parser``, its own parser (for usage errors found after parsing)."""
    prog = "npflows" if Path(sys.argv[0]).name == "npflows" else "python -m npflows"
    parser = argparse.ArgumentParser(prog=prog, description=__doc__, formatter_class=RawFormatter)
    parser.add_argument("--version", action="version", version=f"npflows {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (fit_data, saved_model, fit_density, check_model, golden):
        module.add_parsers(commands)
    return parser


def blas_threads():
    """A context with one BLAS thread (threadpoolctl), or nothing to do when threadpoolctl is
    missing or the user chose a thread count in the environment."""
    chosen = any(os.environ.get(name) for name in THREAD_VARIABLES)
    if chosen or importlib.util.find_spec("threadpoolctl") is None:
        return contextlib.nullcontext()
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="blas")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line on ``argv`` (default ``sys.argv[1:]``); return the exit code.

    Usage errors exit through argparse's ``SystemExit`` with code 2 (0 for ``--help`` and
    ``--version``).
    """
    args = build_parser().parse_args(argv)
    try:
        with blas_threads():
            return args.run(args)
    except UsageError as error:
        args.parser.error(str(error))
    except (ValueError, TrainingDiverged, OSError) as error:
        if isinstance(error, OSError) and error.filename is not None:
            error = f"{error.filename}: {error.strerror}"
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(
            "error: interrupted; an output directory keeps its previous files",
            file=sys.stderr,
        )
        return 130
    except MemoryError:
        print(
            "error: out of memory; use fewer points (a file: fewer rows) or a smaller flow",
            file=sys.stderr,
        )
        return 1
