"""Density quality on 2-D toy data with an exact density: test NLL and KL(p ‖ q) at a fixed budget.

For each dataset with an exact log-density (ring of 8 Gaussians, checkerboard, banana), draw
50,000 training and 50,000 test points, train each flow with ``npflows.fit`` (Adam, batch 512,
about 5,000 steps, 10 % of the training points for validation, best epoch restored), and report
    test NLL = −mean log q(x),   KL(p ‖ q) ≈ mean over test points of [log p(x) − log q(x)]
(± its standard error), and the wall time. The flows are those of the CLI: a prebuilt flow from
``npflows.flows`` below a data-side ``Diagonal`` set to the data's mean and standard deviation.

    python benchmarks/quality_2d.py
    python benchmarks/quality_2d.py --flows nsf-tuned       # NSF, 8 layers of 32 bins on [−4, 4]
    python benchmarks/quality_2d.py --datasets banana --flows nsf --steps 500
    python benchmarks/quality_2d.py --flows resflow --steps 1000   # 6 residual blocks, exact log-det
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np

import npflows as nf
from npflows.cli.common import build_flow, build_layers
from npflows.flows import NSF

DATASETS = ["8gaussians", "checkerboard", "banana"]
FLOWS = ["realnvp", "nsf", "maf", "maf-spline", "nsf-tuned", "resflow"]
DEFAULT_FLOWS = FLOWS[:4]


def layers_of(name, hidden):
    """The CLI's flow ``name``; "nsf-tuned" is an NSF with 8 layers of 32 bins on [−4, 4]."""
    if name == "nsf-tuned":
        return NSF(2, n_layers=8, bins=32, bound=4.0, hidden=(hidden, hidden), rng=0).layers
    return build_layers(name, 2, hidden, None, rng=0)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="*", default=DATASETS, choices=DATASETS)
    parser.add_argument("--flows", nargs="*", default=DEFAULT_FLOWS, choices=FLOWS)
    parser.add_argument("--n", type=int, default=50_000, help="train and test points, each")
    parser.add_argument("--steps", type=int, default=5000)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--hidden", type=int, default=64)
    args = parser.parse_args()
    n_train = int(0.9 * args.n)
    epochs = max(1, math.ceil(args.steps / math.ceil(n_train / args.batch_size)))
    print(
        f"{args.n} train / {args.n} test points, {epochs} epochs of batch {args.batch_size} "
        f"(≈{epochs * math.ceil(n_train / args.batch_size)} Adam steps), lr {args.lr}, "
        f"hidden ({args.hidden}, {args.hidden})"
    )
    print("| dataset | flow | test NLL | KL(p‖q) | ± stderr | seconds |")
    print("|---|---|---|---|---|---|")
    for name in args.datasets:
        data = nf.datasets.get(name)
        x_train = data.sample(args.n, rng=1)
        x_test = data.sample(args.n, rng=2)
        log_p = data.log_density(x_test)
        for flow_name in args.flows:
            layers = layers_of(flow_name, args.hidden)
            flow = build_flow(layers, x_train.mean(axis=0), x_train.std(axis=0))
            start = time.perf_counter()
            nf.fit(
                flow,
                x_train,
                epochs=epochs,
                batch_size=args.batch_size,
                lr=args.lr,
                rng=3,
                progress=False,
            )
            seconds = time.perf_counter() - start
            log_q = flow.log_prob(x_test)
            gap = log_p - log_q
            print(
                f"| {name} | {flow_name} | {-log_q.mean():.4f} | {gap.mean():.4f} "
                f"| {gap.std() / np.sqrt(len(gap)):.4f} | {seconds:.0f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
