"""The configurations of the conformance pack: one small layer or transformer each, deterministic.

Every public layer class and every public transformer class of npflows has at least one case
(tests/test_golden.py checks it). A layer case is (builder, input low, input high, special inputs):
the builder takes a numpy Generator seeded from the case's name and returns the layer with its
parameters moved away from their initial values; inputs of ``forward`` are drawn uniformly from
[low, high] and followed by the special values (bounds, tails, kinks), one per row.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .. import flows as prebuilt
from ..flow import Flow
from ..layers import (
    IAF,
    MAF,
    ActNorm,
    Coupling,
    Diagonal,
    Elementwise,
    FactorOut,
    ImageCoupling,
    InvConv1x1,
    Invert,
    LeakyReLU,
    Linear,
    Logit,
    LULinear,
    Orthogonal,
    Permutation,
    PiecewiseLinear,
    PixelLogit,
    Planar,
    Radial,
    ResidualBlock,
    RQSpline,
    Sigmoid,
    Squeeze,
    Standardize,
    Triangular,
)
from ..transformers import (
    AdditiveTransformer,
    AffineTransformer,
    LeakyReLUTransformer,
    PiecewiseLinearTransformer,
    RQSplineTransformer,
    SigmoidTransformer,
)
from ..tree import leaves

DIM = 3
ROWS = 5  # random rows per case, before the special ones


@dataclass(frozen=True)
class LayerCase:
    build: Callable[[np.random.Generator], object]
    low: float = -2.5
    high: float = 2.5
    special: tuple[float, ...] = ()


def _perturbed(layer, rng, scale=0.4):
    for leaf in leaves(layer.params):
        leaf += scale * rng.standard_normal(leaf.shape)
    return layer


def _moved(make, scale=0.4):
    return lambda rng: _perturbed(make(rng), rng, scale)


SPLINE = RQSplineTransformer(4, 2.5)
SPLINE_EDGES = (-2.5, 2.5, -3.5, 3.5, 0.0)

LAYER_CASES: dict[str, LayerCase] = {
    "Linear": LayerCase(_moved(lambda rng: Linear(DIM), 0.3)),
    "Diagonal": LayerCase(_moved(lambda rng: Diagonal(DIM))),
    "Orthogonal": LayerCase(_moved(lambda rng: Orthogonal(DIM, rng=rng))),
    "Triangular": LayerCase(_moved(lambda rng: Triangular(DIM))),
    "LULinear": LayerCase(_moved(lambda rng: LULinear(DIM, sign=[1, -1, 1], rng=rng))),
    "Permutation": LayerCase(lambda rng: Permutation(DIM, [2, 0, 1])),
    "LeakyReLU": LayerCase(lambda rng: LeakyReLU(DIM, alpha=0.3), special=(0.0, -1.0, 1.0)),
    "PiecewiseLinear-unit": LayerCase(
        _moved(lambda rng: PiecewiseLinear(DIM, bins=5)), 0.01, 0.99, (0.0, 0.2, 0.4, 1.0)
    ),
    "PiecewiseLinear-bounded": LayerCase(
        _moved(lambda rng: PiecewiseLinear(DIM, bins=4, bound=2.0)),
        special=(-2.0, -1.0, 0.0, 2.0, -3.0, 3.0),
    ),
    "RQSpline": LayerCase(
        _moved(lambda rng: RQSpline(DIM, bins=5, bound=2.5)), special=SPLINE_EDGES
    ),
    "Sigmoid": LayerCase(lambda rng: Sigmoid(DIM, low=-2.0, high=5.0), -8.0, 8.0, (0.0,)),
    "Logit": LayerCase(lambda rng: Logit(DIM, low=-2.0, high=5.0), -1.9, 4.9, (1.5,)),
    "Elementwise-affine": LayerCase(_moved(lambda rng: Elementwise(DIM, AffineTransformer()))),
    "Elementwise-spline": LayerCase(
        _moved(lambda rng: Elementwise(DIM, SPLINE)), special=SPLINE_EDGES
    ),
    "Invert-affine": LayerCase(
        lambda rng: Invert(_perturbed(Elementwise(DIM, AffineTransformer()), rng))
    ),
    "Flow": LayerCase(
        _moved(
            lambda rng: Flow([Elementwise(DIM, AffineTransformer()), Linear(DIM)]),
            0.3,
        )
    ),
    "Coupling-affine": LayerCase(
        _moved(lambda rng: Coupling(DIM, AffineTransformer(), hidden=(4,), rng=rng), 0.3)
    ),
    "Coupling-spline-context": LayerCase(
        _moved(lambda rng: Coupling(DIM, SPLINE, hidden=(4,), context_dim=2, rng=rng), 0.3),
        special=SPLINE_EDGES,
    ),
    "MAF-spline": LayerCase(
        _moved(lambda rng: MAF(DIM, SPLINE, hidden=(4,), order="reversed", rng=rng), 0.3),
        special=SPLINE_EDGES,
    ),
    "Coupling-spline-normalizing": LayerCase(
        _moved(
            lambda rng: Coupling(DIM, SPLINE, hidden=(4,), rng=rng, orientation="normalizing"), 0.3
        ),
        special=SPLINE_EDGES,
    ),
    "MAF-spline-normalizing": LayerCase(
        _moved(
            lambda rng: MAF(
                DIM, SPLINE, hidden=(4,), order="reversed", rng=rng, orientation="normalizing"
            ),
            0.3,
        ),
        special=SPLINE_EDGES,
    ),
    "IAF-affine-context": LayerCase(
        _moved(lambda rng: IAF(DIM, AffineTransformer(), hidden=(4,), context_dim=2, rng=rng), 0.3)
    ),
    "Standardize": LayerCase(
        lambda rng: Standardize(3 * rng.normal(size=DIM), np.exp(rng.normal(size=DIM)))
    ),
    "Planar": LayerCase(_moved(lambda rng: Planar(DIM, rng=rng))),
    "Radial": LayerCase(_moved(lambda rng: Radial(DIM, rng=rng))),
    "ResidualBlock": LayerCase(
        _moved(lambda rng: ResidualBlock(DIM, (4,), activation="lipswish", lipschitz=0.9, rng=rng))
    ),
    "Squeeze": LayerCase(lambda rng: Squeeze((1, 2, 2))),
    "ActNorm": LayerCase(_moved(lambda rng: ActNorm((2, 2, 2), initialized=True))),
    "InvConv1x1": LayerCase(_moved(lambda rng: InvConv1x1((2, 2, 2), sign=[1, -1], rng=rng))),
    "ImageCoupling": LayerCase(
        _moved(lambda rng: ImageCoupling((2, 2, 2), None, hidden=2, rng=rng), 0.3)
    ),
    "FactorOut": LayerCase(
        _moved(
            lambda rng: FactorOut(
                (2, 2, 2), Flow([ImageCoupling((1, 2, 2), None, hidden=2, rng=rng)])
            ),
            0.3,
        )
    ),
    "PixelLogit": LayerCase(lambda rng: PixelLogit((1, 2, 2), alpha=0.1), -4.0, 4.0),
    "flows.RealNVP": LayerCase(
        _moved(lambda rng: prebuilt.RealNVP(DIM, 2, hidden=(4,), rng=rng), 0.3)
    ),
}

# name: (transformer, u values per coordinate beyond the knots it adds itself, raw θ scale)
TRANSFORMER_CASES: dict[str, tuple[object, tuple[float, ...]]] = {
    "AdditiveTransformer": (AdditiveTransformer(), (-3.0, -1.0, 0.0, 0.5, 2.0)),
    "AffineTransformer": (AffineTransformer(), (-3.0, -1.0, 0.0, 0.5, 2.0)),
    "AffineTransformer-unclamped": (AffineTransformer(clamp=None), (-3.0, 0.0, 2.0)),
    "LeakyReLUTransformer": (LeakyReLUTransformer(alpha=0.2), (-2.0, -1e-3, 0.0, 1e-3, 2.0)),
    "SigmoidTransformer": (SigmoidTransformer(low=-1.0, high=2.0), (-30.0, -2.0, 0.0, 3.0, 30.0)),
    "PiecewiseLinearTransformer-unit": (PiecewiseLinearTransformer(4), (0.0, 0.1, 0.55, 1.0)),
    "PiecewiseLinearTransformer-bounded": (
        PiecewiseLinearTransformer(4, 2.0),
        (-3.0, -2.0, 0.3, 2.0, 3.0),
    ),
    "RQSplineTransformer": (RQSplineTransformer(5, 3.0), (-4.5, -3.0, 0.0, 3.0, 4.5)),
}


def transformer_points(transformer, theta: np.ndarray, extra: tuple[float, ...]) -> np.ndarray:
    """u (N, D): the ``extra`` values, then the map's knots and bin midpoints per coordinate.

    Knots of the RQ spline from its documented widths, w = m_w + (1 − m_w K) softmax(θ_w),
    x_0 = −B, x_k = −B + 2B Σ_{j<k} w_j, x_K = B (docs/elementwise.md); the piecewise-linear bins are
    equal in u, at lo + k·width/K.
    """
    D = theta.shape[0]
    columns = [np.full(D, v) for v in extra]
    if isinstance(transformer, RQSplineTransformer):
        K, B = transformer.bins, transformer.bound
        raw = transformer.split_params(theta)["widths"]
        e = np.exp(raw - raw.max(axis=1, keepdims=True))
        w = transformer.min_width + (1 - transformer.min_width * K) * e / e.sum(1, keepdims=True)
        knots = np.concatenate([np.full((D, 1), -B), -B + 2 * B * np.cumsum(w, axis=1)], axis=1)
        knots[:, -1] = B
        columns += list(knots.T) + list((0.5 * (knots[:, 1:] + knots[:, :-1])).T)
    elif isinstance(transformer, PiecewiseLinearTransformer):
        lo, width = (
            (0.0, 1.0) if transformer.bound is None else (-transformer.bound, 2 * transformer.bound)
        )
        columns += [
            np.full(D, lo + k * width / transformer.bins) for k in range(transformer.bins + 1)
        ]
    return np.stack(columns)
