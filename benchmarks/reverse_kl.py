"""Reverse-KL training on energies with a known log Z: error of the estimated log Z, and the ESS.

For each target of ``npflows.targets`` whose log Z is known, train a flow with
``npflows.fit_to_density`` at a fixed budget, then report
    log Ẑ − log Z   (importance sampling with the flow as proposal; aim |error| < 0.05 nats),
    ESS / N         (effective sample size of those weights; aim above 50 %),
    ELBO − log Z    (= −KL(q ‖ p), how far the flow is from the target),
and the wall time.

    python benchmarks/reverse_kl.py                       # all targets, the default flow
    python benchmarks/reverse_kl.py --targets ring --steps 500 --flow iaf
    python benchmarks/reverse_kl.py --flow planar --targets ring wave wave-split wave-step
"""

from __future__ import annotations

import argparse
import time

from npflows import fit_to_density
from npflows.flows import IAF, NSF, PlanarFlow, RadialFlow, RealNVP
from npflows.targets import TARGETS, get_target

FLOWS = {
    "iaf-spline": lambda dim: IAF(
        dim, n_layers=3, hidden=(64, 64), transformer="spline", bins=8, bound=5.0, rng=0
    ),
    "iaf": lambda dim: IAF(dim, n_layers=5, hidden=(64, 64), rng=0),
    "nsf": lambda dim: NSF(dim, n_layers=4, hidden=(64, 64), rng=0),
    "realnvp": lambda dim: RealNVP(dim, n_layers=8, hidden=(64, 64), rng=0),
    "planar": lambda dim: PlanarFlow(dim, n_layers=32, rng=0),
    "radial": lambda dim: RadialFlow(dim, n_layers=32, rng=0),
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", nargs="*", default=TARGETS, choices=TARGETS)
    parser.add_argument("--flow", default="iaf", choices=sorted(FLOWS))
    parser.add_argument("--steps", type=int, default=5000)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--n-eval", type=int, default=100_000)
    args = parser.parse_args()
    print(
        f"flow {args.flow}, {args.steps} Adam steps of batch {args.batch_size}, lr {args.lr}, "
        f"{args.n_eval} importance samples"
    )
    print("| target | log Z | log Ẑ − log Z | ± stderr | ESS / N | ELBO − log Z | seconds |")
    print("|---|---|---|---|---|---|---|")
    for name in args.targets:
        target = get_target(name)
        if target.log_z is None:
            continue
        flow = FLOWS[args.flow](target.dim)
        start = time.perf_counter()
        result = fit_to_density(
            flow,
            target.log_density,
            steps=args.steps,
            batch_size=args.batch_size,
            lr=args.lr,
            rng=0,
            progress=False,
            n_eval=args.n_eval,
        )
        seconds = time.perf_counter() - start
        print(
            f"| {name} | {target.log_z:.4f} | {result.log_z - target.log_z:+.4f} "
            f"| {result.log_z_stderr:.4f} | {result.ess:.1%} | {result.final_elbo - target.log_z:+.4f} "
            f"| {seconds:.0f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
