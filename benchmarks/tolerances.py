"""The worst errors of the property checks over the whole layer registry, with where they occur.

The tests assert fixed tolerances (round trip 1e-9, log-det 1e-6, consistency 1e-10, vjp 1e-6);
this measures how far inside them every registered layer configuration stays: 20 random
parameter draws × 8 rows each, inputs uniform in the case's bounds and 2e-3 clear of its kinks.

It then measures the rational-quadratic spline against the 40-digit mpmath oracle of
tests/spline_oracle.py: forward and inverse value and log-det (errors relative to max(1, |value|)),
on the float64 knots and end to end from the raw numbers, at raw scales 0.3 to 10, and the round
trip forward(inverse(y)) − y at raw scale 10 in ulps of B.

    python benchmarks/tolerances.py                  # both
    python benchmarks/tolerances.py --only spline    # or --only registry
"""

from __future__ import annotations

import argparse
import pathlib
import sys

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).parents[1] / "tests"))
from registry import CASES, DIM  # noqa: E402
from spline_oracle import errors_against_oracle  # noqa: E402

from npflows.testing import check_bijection, check_vjp  # noqa: E402
from npflows.transformers import RQSplineTransformer  # noqa: E402

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


def registry_report():
    worst = {}
    for name, case in CASES.items():
        for seed in range(20):
            for kind, error in errors_of(case, seed).items():
                if error > worst.get(kind, (0.0,))[0]:
                    worst[kind] = (error, name, seed)
    print(f"{len(CASES)} configurations × 20 seeds × 8 rows")
    for kind, (error, name, seed) in worst.items():
        print(f"{kind:16s} max {error:.2e}  ({name}, seed {seed})")


def spline_report(rows=1000, round_trip_rows=200_000):
    """The RQ spline (8 bins, B = 3) against the 40-digit oracle, and its round trip."""
    T = RQSplineTransformer(bins=8, bound=3.0)
    print(f"\nRQ spline, 8 bins, B = 3: {rows} rows per raw scale, inputs uniform in [−3.2, 3.2]")
    print("errors |a − a*| / max(1, |a*|) against 40 digits: max (median)")
    print(
        f"{'raw scale':>9s}  {'knots':8s}  {'fwd value':>19s}  {'fwd log-det':>19s}  "
        f"{'inv value':>19s}  {'inv log-det':>19s}"
    )
    for scale in (0.3, 1.0, 3.0, 10.0):
        rng = np.random.default_rng(int(10 * scale))
        theta = T.identity_params() + scale * rng.standard_normal((rows, T.n_params))
        v = rng.uniform(-3.2, 3.2, rows)
        for exact in (False, True):
            columns = []
            for inverse in (False, True):
                columns += errors_against_oracle(T, theta, v, inverse, exact)
            cells = "  ".join(f"{c.max():.1e} ({np.median(c):.0e})" for c in columns)
            print(f"{scale:9.1f}  {'exact' if exact else 'float64':8s}  {cells}")
    rng = np.random.default_rng(0)
    theta = T.identity_params() + 10.0 * rng.standard_normal((round_trip_rows, 1, T.n_params))
    y = rng.uniform(-T.bound, T.bound, (round_trip_rows, 1))
    u, log_det = T.inverse(y, theta)
    ulps = np.abs(T.forward(u, theta)[0] - y)[:, 0] / np.spacing(T.bound)
    scaled = ulps / np.maximum(1.0, np.exp(-log_det[:, 0]))
    print(
        f"round trip at raw scale 10, {round_trip_rows} rows, |forward(inverse(y)) − y| in ulps "
        f"of B: median {np.median(ulps):.0f}, max {ulps.max():.0f}; divided by max(1, dy/du): "
        f"median {np.median(scaled):.2f}, max {scaled.max():.2f}"
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["registry", "spline"])
    args = parser.parse_args()
    if args.only != "spline":
        registry_report()
    if args.only != "registry":
        spline_report()


if __name__ == "__main__":
    main()
