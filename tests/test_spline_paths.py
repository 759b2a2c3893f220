"""The splines' shortcuts (issue 15) give the same bits as their general paths: no selection of
the identity tails when no entry lies in one, and sums over the bins in one call for few
coordinates."""

import numpy as np
import pytest

from npflows.transformers import PiecewiseLinearTransformer, RQSplineTransformer
from npflows.transformers.rq_spline import FEW_COORDINATES, _cumsum_bins

TRANSFORMERS = {
    "rq-spline": lambda: RQSplineTransformer(bins=5, bound=3.0),
    "rq-spline-float32": lambda: RQSplineTransformer(bins=5, bound=3.0),
    "piecewise-linear": lambda: PiecewiseLinearTransformer(bins=4, bound=3.0),
}


def passes(transformer, u, theta, grads, direction):
    """Outputs, the pullback's gradients, of one direction: arrays to compare row by row."""
    out, log_deriv, pullback = getattr(transformer, f"{direction}_vjp")(u, theta)
    grad_in, grad_theta = pullback(*grads)
    return [out, log_deriv, grad_in, grad_theta, *getattr(transformer, direction)(u, theta)]


@pytest.mark.parametrize("direction", ["forward", "inverse"])
@pytest.mark.parametrize("name", sorted(TRANSFORMERS))
def test_entries_inside_get_the_same_bits_with_or_without_a_tail_in_the_batch(name, direction):
    transformer = TRANSFORMERS[name]()
    dtype = np.float32 if name.endswith("float32") else np.float64
    rng = np.random.default_rng(0)
    n, d, p = 40, 3, transformer.n_params
    u = rng.uniform(-2.99, 2.99, (n + 1, d))
    u[0, 0], u[1, 1] = -3.0, 3.0  # the bound itself is inside
    u[n] = [4.0, -7.0, 0.5]  # the extra row: two entries in the tails
    theta = 2.0 * rng.standard_normal((n + 1, d, p))
    grads = [rng.standard_normal((n + 1, d)) for _ in range(2)]
    u, theta, grads = u.astype(dtype), theta.astype(dtype), [g.astype(dtype) for g in grads]

    inside_only = passes(transformer, u[:n], theta[:n], [g[:n] for g in grads], direction)
    with_tails = passes(transformer, u, theta, grads, direction)
    for a, b in zip(inside_only, with_tails, strict=True):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b[:n])
    out, log_deriv = with_tails[4:]
    np.testing.assert_array_equal(out[n, :2], u[n, :2])  # the identity in the tails
    np.testing.assert_array_equal(log_deriv[n, :2], 0.0)


def test_sums_over_bins_for_few_coordinates_are_those_for_many():
    # Up to FEW_COORDINATES coordinates one accumulate call, above a loop over the bins: the
    # first coordinates of a batch too large for the one get the bits of the other, −0 included.
    rng = np.random.default_rng(1)
    a = rng.standard_normal((2, 7, FEW_COORDINATES + 5))
    a[0, 0, :3] = -0.0
    a[1, :, 4] = 0.0
    few = _cumsum_bins(a[..., :FEW_COORDINATES].copy())
    many = _cumsum_bins(a)
    np.testing.assert_array_equal(few, many[..., :FEW_COORDINATES])
    np.testing.assert_array_equal(np.signbit(few), np.signbit(many[..., :FEW_COORDINATES]))
    np.testing.assert_allclose(many, np.cumsum(a, axis=1), rtol=1e-15, atol=0)
    assert not np.signbit(many[0, 0, :3]).any()  # 0 + (−0) = +0, in both paths
