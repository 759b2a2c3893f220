"""``python -m npflows fit-density``: reverse-KL training to an unnormalized target density."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from .. import plotting, targets
from ..flow import Flow
from ..io import save
from ..layers.diagonal import Diagonal
from ..train import TrainingDiverged
from ..variational import fit_to_density
from .common import (
    FLOWS,
    PLOT_HINT,
    POSITIVE,
    add_command,
    add_training_options,
    build_prebuilt,
    check_points_size,
    int_at_least,
    listed,
    positive_float,
    staged_output,
)


def fit_density_command(args: argparse.Namespace) -> int:
    """Train a flow q to an unnormalized target density p̃ = Z·p by reverse KL, maximizing the
    ELBO E_q[log p̃ − log q] = log Z − KL(q‖p) (npflows.variational.fit_to_density). Print it, the
    importance-sampling estimate log Ẑ next to the true log Z where known, and the effective
    sample size; save the model to DIR/model.npz and a plot of p̃, q and samples of q to
    DIR/density.png. Every layer of the flow must offer forward_vjp: not maf (use iaf, its
    mirror). Its last layer is a trainable Diagonal that starts as the identity (the gaussian flow
    is that Diagonal alone). The files are moved into DIR only when training succeeded: a run that
    diverges exits 1 and leaves DIR as it was."""
    rng_init, rng_fit = map(np.random.default_rng, np.random.SeedSequence(args.seed).spawn(2))
    target = targets.get_target(args.target)
    check_points_size(args.batch_size, target.dim, "--batch-size")
    check_points_size(args.n_eval, target.dim, "--n-eval")
    flow = build_prebuilt(args.flow, target.dim, args.hidden, args.layers, rng_init)
    if args.flow != "gaussian":  # a learned affine map next to the target, as in a fit to data
        flow = Flow([*flow.layers, Diagonal(target.dim)], base=flow.base)
    out = Path("runs") / args.target if args.out is None else args.out
    with staged_output(out) as stage:  # before training, so a bad --out fails at once
        print(
            f"fitting a {args.flow} flow to the {args.target!r} target by reverse KL: {args.steps} "
            f"steps of {args.batch_size} base draws (seed {args.seed})"
        )
        try:
            result = fit_to_density(
                flow,
                target.log_density,
                steps=args.steps,
                batch_size=args.batch_size,
                lr=args.lr,
                rng=rng_fit,
                progress=not args.no_progress,
                n_eval=args.n_eval,
            )
        except TrainingDiverged as error:
            raise TrainingDiverged(
                f"training diverged: {error} Nothing was written to {out}."
            ) from error
        report(result, target, args.n_eval)
        save(flow, stage / "model.npz")
        title = (
            f"{args.target}, {args.flow} flow: ELBO {result.final_elbo:.3f}, ESS {result.ess:.2f}"
        )
        plotted = target.dim == 2 and plotting.plot_target(
            stage / "density.png", flow, target, title, rng_fit
        )
    print(f"saved {out / 'model.npz'}")
    if target.dim != 2:
        print(f"no density.png: the plot shows 2-D targets, not {target.dim}-D")
    elif plotted:
        print(f"saved {out / 'density.png'}")
    else:
        print(f"{PLOT_HINT} density.png")
    return 0


def report(result, target, n_eval: int) -> None:
    """Print the ELBO, log Ẑ beside the true log Z where known, and the effective sample size."""
    print(f"ELBO          {result.final_elbo:.4f} nats (on {n_eval} samples of q; ≤ log Z)")
    print(
        f"log Ẑ         {result.log_z:.4f} ± {result.log_z_stderr:.4f} nats (importance "
        "sampling with q as the proposal, ± one standard error)"
    )
    if target.log_z is None:
        print("log Z         not known for this target")
    else:
        print(
            f"log Z         {target.log_z:.4f} nats (exact), so KL(q‖p) = log Z − ELBO = "
            f"{target.log_z - result.final_elbo:.4f} nats"
        )
    print(f"ESS           {result.ess:.3f} of the samples (1 when q = p)")


def add_parsers(commands) -> None:
    """Register ``fit-density``."""
    p = add_command(
        commands, "fit-density", fit_density_command, "train a flow by reverse KL to a target"
    )
    p.add_argument(
        "--target",
        choices=targets.TARGETS,
        default="ring",
        metavar="NAME",
        help=f"an unnormalized density of npflows.targets:\n{listed(targets.TARGETS)}"
        " (default: %(default)s)",
    )
    p.add_argument(
        "--flow",
        choices=FLOWS,
        default="iaf",
        metavar="FLOW",
        help=f"{listed(FLOWS)}\nbut not maf or maf-spline, whose layers lack forward_vjp\n"
        "(default: %(default)s)",
    )
    p.add_argument("--steps", type=POSITIVE, default=2000, metavar="N", help="default: %(default)s")
    p.add_argument(
        "--batch-size",
        type=POSITIVE,
        default=256,
        metavar="N",
        help="base draws per step (default: %(default)s)",
    )
    p.add_argument(
        "--lr",
        type=positive_float,
        default=1e-3,
        metavar="RATE",
        help="Adam's step size (default: 0.001)",
    )
    p.add_argument(
        "--n-eval",
        type=int_at_least(2),
        default=10_000,
        metavar="N",
        help="samples of q for the ELBO, log Ẑ and the ESS (default: %(default)s)",
    )
    add_training_options(p, "the flow and the base draws", "runs/<target>")
