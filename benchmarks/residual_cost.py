"""Cost of a residual-flow training step with each log-det estimator, against the dimension.

For D in (2, 16, 64) and logdet in ("exact", "series", "roulette"), a ResidualFlow of ``--layers``
blocks with hidden (64, 64), LipSwish, Lipschitz 0.9, is trained by maximum likelihood on standard
normal data: one step = ``Flow.nll_and_grad`` (forward and hand-written pullbacks) plus one
``Adam.step``. Reported: the median wall time per step over ``--steps`` steps after one warm-up
step, in ms, float64. "series" uses ``n_terms`` = 10, "roulette" 2 exact terms plus a geometric
(p = 0.5) count, both one Hutchinson probe per row. The BLAS library is printed first.

    OPENBLAS_NUM_THREADS=1 python benchmarks/residual_cost.py
    OPENBLAS_NUM_THREADS=1 python benchmarks/residual_cost.py --dims 2 16 --steps 5
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import npflows as nf


def blas_name() -> str:
    """The BLAS libraries loaded (numpy's and scipy's may differ), from threadpoolctl if present,
    else numpy's build configuration."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return str(np.show_config(mode="dicts")["Build Dependencies"]["blas"].get("name"))
    return "; ".join(
        f"{i.get('internal_api')} {i.get('version')} ({i.get('architecture')}, "
        f"{i.get('num_threads')} thread(s), {i.get('filepath')})"
        for i in threadpool_info()
        if i.get("user_api") == "blas"
    )


def step_ms(dim, logdet, layers, batch, steps):
    flow = nf.flows.ResidualFlow(dim, n_layers=layers, logdet=logdet, rng=0)
    x = np.random.default_rng(1).standard_normal((batch, dim))
    optimizer = nf.optim.Adam(flow.params, lr=1e-3)
    times = []
    for _ in range(steps + 1):
        start = time.perf_counter()
        _, grads = flow.nll_and_grad(x)
        optimizer.step(grads)
        times.append(time.perf_counter() - start)
    return 1e3 * float(np.median(times[1:]))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dims", nargs="*", type=int, default=[2, 16, 64])
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()
    print(f"BLAS: {blas_name()}")
    print(
        f"ResidualFlow, {args.layers} blocks, hidden (64, 64), batch {args.batch}, median of "
        f"{args.steps} steps, ms per training step"
    )
    print("| D | exact | series (10 terms) | roulette (2 + Geom(0.5)) |")
    print("|---|---|---|---|")
    for dim in args.dims:
        cells = [
            f"{step_ms(dim, logdet, args.layers, args.batch, args.steps):.1f}"
            for logdet in ("exact", "series", "roulette")
        ]
        print(f"| {dim} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
