"""The command line: ``python -m npflows fit``.

``fit`` draws train and test sets from a built-in data set, trains a flow on them by maximum
likelihood, prints the test NLL next to the data's entropy, and writes the model and a plot.
Exit codes: 0 on success, 2 for a usage error, 1 (with one "error: ..." line) for a failure.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from . import datasets
from .flow import Flow
from .io import save
from .layers import Diagonal, RQSpline
from .train import TrainingDiverged, fit

FLOWS = {
    "spline": lambda dim: [Diagonal(dim), RQSpline(dim, bins=16, bound=4.0)],
    "gaussian": lambda dim: [],
}
"""Flow name -> its layers on the z side of the data-side :class:`Diagonal` (see :func:`build_flow`)."""


def build_flow(name: str, x: np.ndarray) -> Flow:
    """The flow ``FLOWS[name]`` for data ``x`` (N, D), followed by a data-side :class:`Diagonal`.

    The data-side Diagonal starts at x = σ ⊙ h + μ with the data's mean μ and standard deviation σ,
    so the layers below it see roughly standardized data: "spline" is Diagonal, then a 16-bin
    rational-quadratic spline on [−4, 4]; "gaussian" is that Diagonal alone, the best single
    Gaussian, a baseline that cannot show two modes.
    """
    data_side = Diagonal(x.shape[1])
    data_side.params["log_scale"][:] = np.log(x.std(axis=0))
    data_side.params["beta"][:] = x.mean(axis=0)
    return Flow([*FLOWS[name](x.shape[1]), data_side])


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


def build_parser() -> argparse.ArgumentParser:
    """The parser of every subcommand; each sets ``run``, the function that carries it out."""
    parser = argparse.ArgumentParser(prog="python -m npflows", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = commands.add_parser("fit", help="train a flow on a built-in data set")
    p.description = fit_command.__doc__
    p.set_defaults(run=fit_command)
    p.add_argument(
        "--data",
        default="bimodal",
        choices=sorted(datasets.DATASETS),
        help="data set (default: %(default)s)",
    )
    p.add_argument(
        "--flow",
        default="spline",
        choices=sorted(FLOWS),
        help="flow (default: %(default)s); see npflows.cli.build_flow",
    )
    p.add_argument(
        "--n-train",
        type=int_at_least(2),
        default=10_000,
        metavar="N",
        help="training points, 10%% of them held out for validation (default: %(default)s)",
    )
    p.add_argument(
        "--n-test",
        type=int_at_least(2),
        default=10_000,
        metavar="N",
        help="test points (default: %(default)s)",
    )
    p.add_argument(
        "--epochs", type=int_at_least(1), default=40, metavar="N", help="default: %(default)s"
    )
    p.add_argument(
        "--batch-size", type=int_at_least(1), default=256, metavar="N", help="default: %(default)s"
    )
    p.add_argument(
        "--lr",
        type=float,
        default=1e-2,
        metavar="RATE",
        help="Adam step size (default: %(default)s)",
    )
    p.add_argument(
        "--seed",
        type=int,
        default=0,
        metavar="INT",
        help="seed for the data, the split and the batches (default: %(default)s)",
    )
    p.add_argument(
        "--out", type=Path, metavar="DIR", help="output directory (default: runs/<data>)"
    )
    p.add_argument("--no-progress", action="store_true", help="do not show training progress")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line on ``argv`` (default ``sys.argv[1:]``); return the exit code.

    Usage errors exit through argparse's ``SystemExit`` with code 2 (0 for ``--help``).
    """
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (ValueError, TrainingDiverged, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


def fit_command(args: argparse.Namespace) -> int:
    """Train a flow on a built-in data set; print its test NLL against the data's entropy; save the
    model to DIR/model.npz and a plot of the densities to DIR/density.png."""
    dataset = datasets.get(args.data)
    rng_train, rng_test, rng_fit = map(
        np.random.default_rng, np.random.SeedSequence(args.seed).spawn(3)
    )
    x_train = dataset.sample(args.n_train, rng_train)
    x_test = dataset.sample(args.n_test, rng_test)
    flow = build_flow(args.flow, x_train)
    out = Path("runs") / args.data if args.out is None else args.out
    out.mkdir(parents=True, exist_ok=True)  # before training, so a bad --out fails at once
    print(
        f"fitting a {args.flow} flow to {args.n_train} points of {args.data!r} "
        f"(10% held out for validation; seed {args.seed})"
    )
    fit(
        flow,
        x_train,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        validation_fraction=0.1,
        patience=None,
        rng=rng_fit,
        progress=not args.no_progress,
    )
    neg_log_q = -flow.log_prob(x_test)  # (n_test,)
    nll, entropy = float(neg_log_q.mean()), dataset.entropy()
    std_error = float(neg_log_q.std(ddof=1) / np.sqrt(len(neg_log_q)))
    print(
        f"test NLL      {nll:.4f} ± {std_error:.4f} nats ({args.n_test} points, ± one standard error)"
    )
    print(f"entropy H[p]  {entropy:.4f} nats (the true density, by quadrature)")
    print(
        f"gap           {nll - entropy:.4f} nats: test NLL − H[p] estimates KL(p‖q) ≥ 0 "
        "(p: the data's density, q: the flow's)"
    )

    save(flow, out / "model.npz")
    print(f"saved {out / 'model.npz'}")
    title = (
        f"{args.data}, {args.flow} flow: test NLL {nll:.3f} nats, entropy H[p] {entropy:.3f} nats"
    )
    if plot_density(out / "density.png", dataset, flow, x_test, title):
        print(f"saved {out / 'density.png'}")
    else:
        print("matplotlib is not installed; pip install 'npflows[plot]' to get density.png")
    return 0


def plot_density(
    path: Path, dataset: datasets.Dataset, flow: Flow, x: np.ndarray, title: str
) -> bool:
    """Plot a histogram of 1-D data ``x`` (N, 1), the true density and ``exp(flow.log_prob)`` to
    ``path``; return False, drawing nothing, when matplotlib is not installed.

    Uses ``matplotlib.figure.Figure`` (rendered by Agg) rather than pyplot, so no global backend
    or figure state changes.
    """
    try:
        from matplotlib.figure import Figure
    except ImportError:
        return False
    margin = 0.1 * (x.max() - x.min())
    grid = np.linspace(x.min() - margin, x.max() + margin, 500)[:, None]
    fig = Figure(figsize=(7, 4.2), layout="constrained")
    ax = fig.add_subplot()
    ax.hist(x[:, 0], bins=80, density=True, color="0.8", label=f"test data ({len(x)} points)")
    ax.plot(grid[:, 0], np.exp(dataset.log_density(grid)), color="black", label="true density p(x)")
    ax.plot(
        grid[:, 0], np.exp(flow.log_prob(grid)), color="tab:red", linestyle="--", label="flow q(x)"
    )
    ax.set(xlabel="x", ylabel="density", title=title)
    ax.legend()
    fig.savefig(path, dpi=120)
    return True
