"""What the subcommands share: argument types and options, building a flow by name, running a
flow over many points in chunks, the size limit, and writing a run's files only on success
(users' files of points are read and written in :mod:`npflows.cli.points`)."""

from __future__ import annotations

import argparse
import contextlib
import inspect
import os
import shutil
import tempfile
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from ..flow import Flow
from ..flow_names import BUILDERS, build
from ..io import load
from ..layer import RNGLike

FLOWS = list(BUILDERS)
"""The names --flow accepts: those of :data:`npflows.flow_names.BUILDERS`."""

PLOT_HINT = "matplotlib is not installed; pip install 'npflows[plot]' to get"

MAX_POINTS_BYTES = 2**30
"""The most memory (1 GiB) an array of points made by a command may take: N rows × D coordinates ×
8 bytes. Larger requests are refused before anything is allocated."""

CHUNK_ROWS = 2**16
"""Rows per pass through a flow when scoring or sampling many points, so that the networks'
intermediates (rows × hidden units) stay small whatever N is."""


class UsageError(Exception):
    """Arguments that parse one by one but not together; exits 2 with the subcommand's usage."""


class RawFormatter(argparse.RawTextHelpFormatter):
    """Help as written: line breaks kept, in the descriptions and in the options' help."""


# -- building, loading and running flows -----------------------------------------------------------
def build_prebuilt(
    name: str, dim: int, hidden: int, n_layers: int | None, rng: RNGLike, context_dim: int = 0
) -> Flow:
    """The prebuilt flow ``name`` (one of ``FLOWS``), with two hidden layers of ``hidden`` units
    in its conditioner networks and ``n_layers`` layers (None: the builder's default), conditional
    on a context of ``context_dim`` values when that is > 0."""
    options = {} if n_layers is None else {"n_layers": n_layers}
    if context_dim:
        options["context_dim"] = context_dim
    try:
        return build(name, dim, hidden=(hidden, hidden), rng=rng, **options)
    except TypeError as error:
        if not context_dim or "context_dim" not in str(error):
            raise
        raise ValueError(
            f"the {name} flow takes no context; with --context-columns use nsf, realnvp, nice, "
            "piecewise-linear, maf, maf-spline, iaf or iaf-spline"
        ) from None


def load_flow(path: Path) -> Flow:
    """The :class:`Flow` saved at ``path`` (conditional or not)."""
    model = load(path)
    if not isinstance(model, Flow):
        raise ValueError(f"{path} holds a {type(model).__name__}, not a Flow")
    return model


def split_columns(rows: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray | None]:
    """(points, context) of rows (N, D + k) of a file: the context is the last ``k`` columns (None
    for k = 0), as ``fit --context-columns k`` reads them."""
    return (rows[:, :-k], rows[:, -k:]) if k else (rows, None)


def log_prob_in_chunks(flow: Flow, x: np.ndarray, context: np.ndarray | None = None) -> np.ndarray:
    """``flow.log_prob(x, context)`` (N,), computed ``CHUNK_ROWS`` rows at a time: the same
    numbers up to rounding (BLAS may add in another order for another number of rows)."""
    rows = range(0, len(x), CHUNK_ROWS)
    return np.concatenate(
        [
            flow.log_prob(
                x[i : i + CHUNK_ROWS], None if context is None else context[i : i + CHUNK_ROWS]
            )
            for i in rows
        ]
        or [np.zeros(0)]
    )


def sample_in_chunks(
    flow: Flow, n: int, rng: np.random.Generator, context: np.ndarray | None = None
) -> np.ndarray:
    """``flow.sample(n, rng, context)`` (n, D) for one ``context`` row (or None), drawn
    ``CHUNK_ROWS`` rows at a time from the one ``rng`` (its normal draws come in the same order, so
    the points are those of one call, up to the rounding of BLAS on another number of rows)."""
    chunks = [
        flow.sample(min(CHUNK_ROWS, n - i), rng, context=context) for i in range(0, n, CHUNK_ROWS)
    ]
    return np.concatenate(chunks) if chunks else np.zeros((0, flow.dim))


def check_points_size(n: int, dim: int, what: str) -> None:
    """Refuse (ValueError) ``n`` points of ``dim`` coordinates above ``MAX_POINTS_BYTES``."""
    size = n * dim * 8
    if size > MAX_POINTS_BYTES:
        raise ValueError(
            f"{what} = {n} points of {dim} coordinates would take {size / 1e9:.3g} GB as float64, "
            f"more than the command line's limit of {MAX_POINTS_BYTES / 1e9:.3g} GB "
            f"(at most {MAX_POINTS_BYTES // (8 * dim)} points of {dim} coordinates)"
        )


@contextlib.contextmanager
def staged_output(out: Path) -> Iterator[Path]:
    """A fresh hidden directory inside ``out`` to write a run's files to; when the block succeeds
    they replace their namesakes in ``out`` (``os.replace``), otherwise ``out`` is left as it was
    (and removed again if this call created it, empty).

    Creating the staging directory first checks that ``out`` is usable (a directory we can write
    to) before any training starts.
    """
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=".incomplete-", dir=out))
    succeeded = False
    try:
        yield stage
        for path in sorted(stage.iterdir()):
            os.replace(path, out / path.name)
        succeeded = True
    finally:
        shutil.rmtree(stage, ignore_errors=True)
        if created and not succeeded and not any(out.iterdir()):
            out.rmdir()


# -- arguments -------------------------------------------------------------------------------------
def int_at_least(low: int) -> Callable[[str], int]:
    """An argparse ``type``: an integer ≥ ``low``, else a usage error."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
        return value

    return parse


POSITIVE = int_at_least(1)
SEED = int_at_least(0)


def positive_float(text: str) -> float:
    """An argparse ``type``: a finite number > 0 (a learning rate), else a usage error."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (np.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text!r}")
    return value


def points_file(text: str) -> Path:
    """An argparse ``type``: a path ending in .npy or .csv, or ``-`` (CSV on standard input)."""
    if text != "-" and Path(text).suffix.lower() not in (".npy", ".csv"):
        raise argparse.ArgumentTypeError(f"expected a .npy or .csv file, got {text!r}")
    return Path(text)


def add_skip_columns(p: argparse.ArgumentParser) -> None:
    """The option that drops leading columns of a points file (an index column, say)."""
    p.add_argument(
        "--skip-columns",
        type=int_at_least(0),
        default=0,
        metavar="K",
        help="drop the first K columns of the file, e.g. 1 for the index column\n"
        "pandas' to_csv writes (default: 0)",
    )


def listed(names) -> str:
    """``names`` separated by commas, in lines that fit the help's column."""
    return textwrap.fill(", ".join(names), 66, break_on_hyphens=False)


def add_command(commands, name: str, run: Callable, help: str) -> argparse.ArgumentParser:
    """A subcommand ``name`` whose --help shows ``run``'s docstring; parsing sets ``args.run``."""
    description = inspect.cleandoc(run.__doc__)
    p = commands.add_parser(name, help=help, description=description, formatter_class=RawFormatter)
    p.set_defaults(run=run, parser=p)
    return p


def add_training_options(p: argparse.ArgumentParser, seeded: str, out: str) -> None:
    """The options fit and fit-density share: the flow's size, the seed, output and progress."""
    p.add_argument(
        "--hidden",
        type=POSITIVE,
        default=64,
        metavar="N",
        help="units in each of the two hidden layers of the conditioner networks\n"
        "(default: %(default)s)",
    )
    p.add_argument(
        "--layers",
        type=POSITIVE,
        metavar="N",
        help="layers of a prebuilt flow (default: its own; see npflows.flows)",
    )
    p.add_argument(
        "--seed", type=SEED, default=0, metavar="INT", help=f"seed for {seeded} (default: 0)"
    )
    p.add_argument("--out", type=Path, metavar="DIR", help=f"output directory (default: {out})")
    p.add_argument("--no-progress", action="store_true", help="do not show training progress")


def stderr(values: np.ndarray) -> float:
    """The standard error of the mean of ``values`` (N,)."""
    return float(values.std(ddof=1) / np.sqrt(len(values)))
