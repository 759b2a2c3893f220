"""What the subcommands share: argument types and options, building a flow by name, and reading
and writing the points of users' files."""

from __future__ import annotations

import argparse
import inspect
import io
import sys
import textwrap
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .. import flows
from ..estimator import BUILDERS
from ..flow import Flow
from ..io import load
from ..layer import Layer, RNGLike
from ..layers import Diagonal, RQSpline

PREBUILT = {
    **BUILDERS,
    "iaf": flows.IAF,
    "iaf-spline": lambda dim, **kw: flows.IAF(dim, transformer="spline", **kw),
    "planar": lambda dim, hidden, **kw: flows.PlanarFlow(dim, **kw),
    "radial": lambda dim, hidden, **kw: flows.RadialFlow(dim, **kw),
    "resflow": flows.ResidualFlow,
}
"""The prebuilt flows of :mod:`npflows.flows` by name: those of FlowDensity, and IAF."""

FLOWS = ["gaussian", "spline", *PREBUILT]

PLOT_HINT = "matplotlib is not installed; pip install 'npflows[plot]' to get"


class UsageError(Exception):
    """Arguments that parse one by one but not together; exits 2 with the subcommand's usage."""


class RawFormatter(argparse.RawTextHelpFormatter):
    """Help as written: line breaks kept, in the descriptions and in the options' help."""


# -- building a flow -------------------------------------------------------------------------------
def build_layers(
    name: str, dim: int, hidden: int, n_layers: int | None, rng: RNGLike
) -> list[Layer]:
    """The layers of flow ``name`` (one of ``FLOWS``) from the base up, before the data side.

    "gaussian" has none; "spline" is a :class:`Diagonal`, then a 16-bin rational-quadratic spline
    on [−4, 4] per coordinate; the others are the prebuilt flows of :mod:`npflows.flows` with two
    hidden layers of ``hidden`` units and ``n_layers`` layers (None: the builder's default).
    """
    if name == "gaussian":
        return []
    if name == "spline":
        return [Diagonal(dim), RQSpline(dim, bins=16, bound=4.0)]
    kwargs = {"hidden": (hidden, hidden), "rng": rng}
    if n_layers is not None:
        kwargs["n_layers"] = n_layers
    return PREBUILT[name](dim, **kwargs).layers


def build_flow(layers: list[Layer], mean: np.ndarray, std: np.ndarray) -> Flow:
    """``layers`` followed by a data-side :class:`Diagonal` x = std ⊙ h + mean (each (D,)), so the
    layers below it see roughly standardized data and the flow works in data units."""
    constant = np.flatnonzero(~(std > 0))
    if constant.size:
        raise ValueError(
            f"column {constant[0] + 1} of the data is constant: a density needs spread in every "
            "column"
        )
    data_side = Diagonal(len(mean))
    data_side.params["log_scale"][:] = np.log(std)
    data_side.params["beta"][:] = mean
    return Flow([*layers, data_side])


def load_flow(path: Path) -> Flow:
    """The unconditional :class:`Flow` saved at ``path``."""
    model = load(path)
    if not isinstance(model, Flow):
        raise ValueError(f"{path} holds a {type(model).__name__}, not a Flow")
    if model.context_dim:
        raise ValueError(f"{path} is a conditional flow; the command line has no context to give")
    return model


# -- points in users' files ------------------------------------------------------------------------
def read_points(path: Path) -> np.ndarray:
    """The points in a .npy file (a numeric array, (N, D), or (N,) for one coordinate) or a .csv
    file (numbers separated by commas, one point per line, an optional header line; the path ``-``
    reads it from standard input), as float64 of shape (N, D).

    Raises:
        ValueError: saying what is wrong with the file: not numbers, no rows, rows of different
            lengths, more than two dimensions, or rows with NaN or inf.
    """
    if path.suffix.lower() == ".npy":
        try:
            x = np.load(path, allow_pickle=False)
        except (ValueError, EOFError) as error:
            raise ValueError(f"{path}: not a numeric .npy array ({error})") from None
        if not isinstance(x, np.ndarray):
            raise ValueError(f"{path}: an .npz archive, not one .npy array")
    else:
        x = _parse_csv(path, sys.stdin.read() if str(path) == "-" else path.read_text())
    if x.dtype.kind not in "iuf":
        raise ValueError(f"{path}: expected numbers, got an array of dtype {x.dtype}")
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or x.size == 0:
        raise ValueError(f"{path}: expected points in rows, shape (N, D), got shape {x.shape}")
    x = x.astype(np.float64)
    bad = np.flatnonzero(~np.isfinite(x).all(axis=1))
    if bad.size:
        raise ValueError(
            f"{path}: {bad.size} row(s) with NaN or inf, the first is point {bad[0] + 1}; "
            "remove or fix them"
        )
    return x


def _parse_csv(path: Path, text: str) -> np.ndarray:
    """Numbers separated by commas, (N, D); one header line is skipped if the first fails."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # loadtxt warns of an empty file; read_points says so
        try:
            return np.loadtxt(io.StringIO(text), delimiter=",", ndmin=2)
        except ValueError as error:
            try:
                return np.loadtxt(io.StringIO(text), delimiter=",", ndmin=2, skiprows=1)
            except ValueError:
                raise ValueError(f"{path}: not a CSV of numbers: {error}") from None


def write_points(x: np.ndarray, path: Path | None) -> None:
    """Rows of ``x`` (N, D) to a .npy or .csv ``path``, or as CSV to standard output (None). CSV
    numbers are written in the shortest form that reads back as the same float64."""
    if path is not None and path.suffix.lower() == ".npy":
        np.save(path, x)
        return
    text = "".join(",".join(map(repr, row)) + "\n" for row in x.tolist())
    if path is None:
        sys.stdout.write(text)
    else:
        path.write_text(text)


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


def points_file(text: str) -> Path:
    """An argparse ``type``: a path ending in .npy or .csv, or ``-`` (CSV on standard input)."""
    if text != "-" and Path(text).suffix.lower() not in (".npy", ".csv"):
        raise argparse.ArgumentTypeError(f"expected a .npy or .csv file, got {text!r}")
    return Path(text)


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
        "--seed", type=int, default=0, metavar="INT", help=f"seed for {seeded} (default: 0)"
    )
    p.add_argument("--out", type=Path, metavar="DIR", help=f"output directory (default: {out})")
    p.add_argument("--no-progress", action="store_true", help="do not show training progress")


def stderr(values: np.ndarray) -> float:
    """The standard error of the mean of ``values`` (N,)."""
    return float(values.std(ddof=1) / np.sqrt(len(values)))
