"""Make ``nflows_rqspline_reference.npz``: nflows' rational-quadratic spline on fixed random numbers.

An independent check of our convention (docs/elementwise.md): the same raw numbers must
give the same outputs as nflows' ``unconstrained_rational_quadratic_spline(..., tails="linear",
tail_bound=B)`` with its default minima (1e-3). ``tests/test_splines.py`` compares against the saved
arrays; it does not run this script, which needs torch and nflows. To regenerate, from the repo root:

    python -m venv /tmp/nfref
    /tmp/nfref/bin/pip install torch nflows numpy
    /tmp/nfref/bin/python tests/data/make_nflows_rqspline_reference.py

(Made with nflows 0.14 and torch 2.13.0, CPU, in float64.) With ``tails="linear"`` nflows takes
K − 1 raw derivatives and pads the two boundary ones itself, so ``unnormalized_derivatives`` here
has K − 1 columns, exactly our θ_d. The raw numbers stay well below 20 in magnitude, because torch's
softplus returns x itself above 20 (its ``threshold``), which differs from log(1 + eˣ) by ~e⁻²⁰.
"""

from pathlib import Path

import numpy as np
import torch
from nflows.transforms.splines.rational_quadratic import unconstrained_rational_quadratic_spline

BINS, TAIL_BOUND, N = 5, 2.5, 40


def main():
    rng = np.random.default_rng(20190604)
    inputs = rng.uniform(-1.4 * TAIL_BOUND, 1.4 * TAIL_BOUND, N)
    inputs[:4] = [-TAIL_BOUND, TAIL_BOUND, 0.0, -1e-3]  # both ends exactly, and the middle
    arrays = {
        "inputs": inputs,
        "unnormalized_widths": 1.5 * rng.standard_normal((N, BINS)),
        "unnormalized_heights": 1.5 * rng.standard_normal((N, BINS)),
        "unnormalized_derivatives": 1.5 * rng.standard_normal((N, BINS - 1)),
    }
    raw = {k: torch.from_numpy(v.copy()) for k, v in arrays.items()}
    for direction, inverse in (("forward", False), ("inverse", True)):
        outputs, logabsdet = unconstrained_rational_quadratic_spline(
            raw["inputs"],
            raw["unnormalized_widths"],
            raw["unnormalized_heights"],
            raw["unnormalized_derivatives"],
            inverse=inverse,
            tails="linear",
            tail_bound=TAIL_BOUND,
        )
        arrays[f"outputs_{direction}"] = outputs.numpy()
        arrays[f"logabsdet_{direction}"] = logabsdet.numpy()
    path = Path(__file__).with_name("nflows_rqspline_reference.npz")
    np.savez_compressed(path, tail_bound=TAIL_BOUND, bins=BINS, **arrays)
    print(f"wrote {path} ({path.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
