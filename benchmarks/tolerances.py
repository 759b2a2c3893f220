"""The worst errors of the property checks over the whole layer registry, with where they occur.

The tests assert fixed tolerances (round trip 1e-9, log-det 1e-6, consistency 1e-10, vjp 1e-6);
this measures how far inside them every registered layer configuration stays: 20 random
parameter draws × 8 rows each, inputs uniform in the case's bounds and 2e-3 clear of its kinks.

    python benchmarks/tolerances.py
"""

from __future__ import annotations

import pathlib
import sys

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).parents[1] / "tests"))
from registry import CASES, DIM  # noqa: E402

from npflows.testing import check_bijection, check_vjp  # noqa: E402

LOOSE = {"round_trip_tol": 1.0, "log_det_tol": 1.0, "consistency_tol": 1.0}


def errors_of(case, seed):
    rng = np.random.default_rng(seed)
    layer = case.build(rng)
    c = rng.normal(size=(8, layer.context_dim)) if layer.context_dim else None
    z = rng.uniform(case.low, case.high, (8, DIM))
    for kink in case.kinks:
        z[np.abs(z - kink) < 1e-3] = kink + 2e-3
    errors = check_bijection(
        lambda h: layer.forward(h, c), lambda h: layer.inverse(h, c), z, **LOOSE
    )
    if layer.has_forward_vjp:
        fn = lambda h: layer.forward_vjp(h, c)  # noqa: E731
        errors["forward_vjp"] = max(check_vjp(fn, z, layer.params, rng=seed, rtol=1.0).values())
    if layer.has_inverse_vjp:
        fn = lambda h: layer.inverse_vjp(h, c)  # noqa: E731
        x = layer.forward(z, c)[0]
        errors["inverse_vjp"] = max(check_vjp(fn, x, layer.params, rng=seed, rtol=1.0).values())
    return errors


def main():
    worst = {}
    for name, case in CASES.items():
        for seed in range(20):
            for kind, error in errors_of(case, seed).items():
                if error > worst.get(kind, (0.0,))[0]:
                    worst[kind] = (error, name, seed)
    print(f"{len(CASES)} configurations × 20 seeds × 8 rows")
    for kind, (error, name, seed) in worst.items():
        print(f"{kind:16s} max {error:.2e}  ({name}, seed {seed})")


if __name__ == "__main__":
    main()
