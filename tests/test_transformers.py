"""Every transformer: its declared parameter blocks, its argument checks, its refusals of NaN θ and
of overflowing results, and the piecewise-linear minimum bin mass (issue regressions)."""

from __future__ import annotations

import numpy as np
import pytest

import npflows as nf
from npflows.transformers import (
    AdditiveTransformer,
    AffineTransformer,
    LeakyReLUTransformer,
    PiecewiseLinearTransformer,
    RQSplineTransformer,
    SigmoidTransformer,
    Transformer,
)

BLOCKS = {
    "affine": (AffineTransformer(), (("shift", ()), ("log_scale", ()))),
    "additive": (AdditiveTransformer(), (("shift", ()),)),
    "leaky-relu": (LeakyReLUTransformer(), ()),
    "sigmoid": (SigmoidTransformer(), ()),
    "piecewise-linear": (PiecewiseLinearTransformer(6, 2.0), (("masses", (6,)),)),
    "rq-spline": (
        RQSplineTransformer(5, 2.5),
        (("widths", (5,)), ("heights", (5,)), ("derivatives", (4,))),
    ),
}


def test_every_public_transformer_declares_its_blocks():
    public = {
        cls
        for cls in vars(nf.transformers).values()
        if isinstance(cls, type) and cls is not Transformer
    }
    assert {type(T) for T, _ in BLOCKS.values()} == public


@pytest.mark.parametrize("name", sorted(BLOCKS))
def test_blocks_declared_and_split_in_packing_order(name):
    T, blocks = BLOCKS[name]
    assert T.blocks == blocks
    assert T.n_params == sum(int(np.prod(shape)) for _, shape in blocks)
    assert T.identity_params().shape == (T.n_params,)
    if not blocks:
        return
    theta = np.random.default_rng(0).standard_normal((4, 3, T.n_params))
    parts = T.split_params(theta)
    assert list(parts) == [n for n, _ in blocks]
    start = 0
    for block_name, shape in blocks:  # the packed layout: block after block along the last axis
        size = int(np.prod(shape))
        expected = theta[..., start : start + size].reshape(4, 3, *shape)
        np.testing.assert_array_equal(parts[block_name], expected)
        start += size
    np.testing.assert_array_equal(T.join_params(parts), theta)


def test_rq_blocks_are_nflows_layout():
    """widths, heights, derivatives: the order of nflows' unnormalized arrays, as tests/data uses."""
    T = RQSplineTransformer(4, 1.0)
    theta = np.arange(11.0)
    parts = T.split_params(theta)
    np.testing.assert_array_equal(parts["widths"], [0, 1, 2, 3])
    np.testing.assert_array_equal(parts["heights"], [4, 5, 6, 7])
    np.testing.assert_array_equal(parts["derivatives"], [8, 9, 10])


def test_wrong_theta_width_names_the_blocks():
    T = RQSplineTransformer(3, 1.0)
    with pytest.raises(
        ValueError, match=r"8 raw numbers.*widths \(3,\) \+ heights \(3,\) \+ deriv"
    ):
        T.forward(np.zeros((2, 1)), np.zeros((2, 1, 7)))


@pytest.mark.parametrize("name", ["affine", "additive", "piecewise-linear", "rq-spline"])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_theta_is_refused(name, bad):
    T, _ = BLOCKS[name]
    theta = np.tile(T.identity_params(), (2, 1, 1))
    theta[1, 0, 0] = bad
    u = np.full((2, 1), 0.5)
    for method in (T.forward, T.inverse, T.forward_vjp, T.inverse_vjp):
        with pytest.raises(ValueError, match="theta .* NaN or inf"):
            method(u, theta)


# -- huge finite inputs (issue 8, item 13) ------------------------------------------------------------
def test_piecewise_linear_flow_on_the_largest_float_is_finite_or_refused():
    """The issue's repro gave IndexError: the conditioner overflowed and its NaN became an index."""
    flow = nf.flows.PiecewiseLinearFlow(2, rng=0)
    with np.errstate(over="ignore", invalid="ignore"):
        with pytest.raises(ValueError, match="theta .* NaN or inf.*docs/ranges.md"):
            flow.forward(np.array([[1.7e308, 0.5]]))
    x, log_det = flow.forward(np.array([[1e300, 0.5]]))  # the tails are the identity
    assert np.all(np.isfinite(x)) and np.all(np.isfinite(log_det))


@pytest.mark.parametrize(
    "T, theta, method, value, formula",
    [
        (AffineTransformer(), [0.0, 3.0], "forward", 1.7e308, r"u·exp\(s\) \+ t"),
        (AffineTransformer(), [0.0, -3.0], "inverse", 1.7e308, r"\(y − t\)·exp\(−s\)"),
        (AffineTransformer(None), [1e308, 0.0], "forward", 1e308, r"u·exp\(s\) \+ t"),
        (AdditiveTransformer(), [1e308], "forward", 1e308, r"u \+ t"),
        (AdditiveTransformer(), [-1e308], "inverse", 1e308, r"y − t"),
        (LeakyReLUTransformer(2.0), [], "forward", -1e308, r"α u"),
        (LeakyReLUTransformer(0.1), [], "inverse", -1e308, r"y / α"),
    ],
)
def test_an_overflowing_result_is_refused(T, theta, method, value, formula):
    theta = np.broadcast_to(np.asarray(theta, dtype=float), (1, 2, T.n_params))
    u = np.array([[0.5, value]])
    with np.errstate(over="ignore"):
        with pytest.raises(
            ValueError, match=formula + r" overflows .*1 value\(s\).*docs/ranges.md"
        ):
            getattr(T, method)(u, theta)
    u[0, 1] = value * 1e-10  # well inside the range: finite
    y, log_deriv = getattr(T, method)(u, theta)
    assert np.all(np.isfinite(y)) and np.all(np.isfinite(log_deriv))


# -- piecewise-linear minimum bin mass (issue 8, item 2) -----------------------------------------------
def test_issue_repro_tiny_bin_mass_is_still_a_bijection():
    """PiecewiseLinear(1, bins=4, bound=2.0), θ = [0, 40, 0, 0]: forward of [−0.9, 0.5, 1.5] was
    [−1.6, 2.0, 2.0], two points onto one; with the minimum masses it is increasing and inverts."""
    layer = nf.PiecewiseLinear(1, bins=4, bound=2.0)
    layer.params["theta"][:] = [0.0, 40.0, 0.0, 0.0]
    z = np.array([[-0.9], [0.5], [1.5]])
    x, log_det = layer.forward(z)
    assert np.all(np.diff(x[:, 0]) > 0) and np.all(x < 2.0)
    z_back, log_det_back = layer.inverse(x)
    np.testing.assert_allclose(z_back, z, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(log_det_back, -log_det, rtol=1e-12)
    # the exact masses: φ = m + (1 − m K) softmax(θ) with m = 1e-3, K = 4
    p = np.exp([0.0, 40.0, 0.0, 0.0] - np.logaddexp.reduce([0.0, 40.0, 0.0, 0.0]))
    phi = 1e-3 + (1 - 4e-3) * p
    np.testing.assert_allclose(np.exp(log_det), 4 * phi[[1, 2, 3]], rtol=1e-13)  # bins 1, 2, 3


@pytest.mark.parametrize("bound", [None, 2.0])
def test_piecewise_linear_round_trip_holds_for_raw_parameters_up_to_50(bound):
    rng = np.random.default_rng(7)
    K = 6
    T = PiecewiseLinearTransformer(K, bound)
    lo, hi = (0.0, 1.0) if bound is None else (-bound, bound)
    u = np.linspace(lo, hi, 2001)[:, None]
    knots = np.linspace(lo, hi, K + 1)
    for _ in range(20):
        theta = rng.uniform(-50, 50, K)
        theta[rng.integers(K)] = 50.0  # one bin dominant, the others at the minimum mass
        th = np.broadcast_to(theta, (*u.shape, K))
        y, log_deriv = T.forward(u, th)
        assert np.all(np.diff(y[:, 0]) > 0)  # strictly increasing: a bijection in floating point
        assert np.all(log_deriv >= np.log(K * 1e-3) - 1e-12)
        u_back, log_deriv_back = T.inverse(y, th)
        np.testing.assert_allclose(u_back, u, rtol=0, atol=1e-12 * (hi - lo))
        # at a knot u_back may land an ulp into the neighbouring bin, with that bin's slope
        off_knots = np.all(np.abs(u - knots) > 1e-9, axis=1)
        np.testing.assert_array_equal(log_deriv_back[off_knots], -log_deriv[off_knots])


def test_piecewise_linear_masses_are_bounded_by_the_minimum():
    T = PiecewiseLinearTransformer(5, min_mass=0.01)
    theta = np.array([[[-50.0, 50.0, -50.0, -50.0, -50.0]]])
    # f′ = K φ_b in each bin, so the log-derivative at each bin's middle gives φ back
    u = (np.arange(5)[None, :] + 0.5) / 5
    _, log_deriv = T.forward(u, np.broadcast_to(theta, (1, 5, 5)))
    phi = np.exp(log_deriv[0]) / 5
    np.testing.assert_allclose(phi, [0.01, 0.96, 0.01, 0.01, 0.01], rtol=1e-13)
    assert T.get_config() == {"bins": 5, "bound": None, "min_mass": 0.01}


# -- constructor arguments (issue 8, item 12) --------------------------------------------------------
@pytest.mark.parametrize(
    "build, error, match",
    [
        (lambda: RQSplineTransformer(bins=True), TypeError, "bins"),
        (lambda: RQSplineTransformer(bins="8"), TypeError, "bins"),
        (lambda: RQSplineTransformer(bins=2.5), ValueError, "bins"),
        (lambda: RQSplineTransformer(bins=np.inf), ValueError, "bins"),
        (lambda: RQSplineTransformer(bound=np.inf), ValueError, "bound"),
        (lambda: RQSplineTransformer(bound=np.nan), ValueError, "bound"),
        (lambda: RQSplineTransformer(bound=None), TypeError, "bound"),
        (lambda: RQSplineTransformer(bound=False), TypeError, "bound"),
        (lambda: RQSplineTransformer(min_width=0.2, bins=5), ValueError, "min_width"),
        (lambda: RQSplineTransformer(min_height=-1e-3), ValueError, "min_height"),
        (lambda: RQSplineTransformer(min_derivative="0.1"), TypeError, "min_derivative"),
        (lambda: PiecewiseLinearTransformer(bins=True), TypeError, "bins"),
        (lambda: PiecewiseLinearTransformer(bins=0), ValueError, "bins"),
        (lambda: PiecewiseLinearTransformer(bound=np.inf), ValueError, "bound"),
        (lambda: PiecewiseLinearTransformer(bound="2"), TypeError, "bound"),
        (lambda: PiecewiseLinearTransformer(4, min_mass=0.25), ValueError, "min_mass"),
        (lambda: AffineTransformer(clamp=np.inf), ValueError, "clamp"),
        (lambda: AffineTransformer(clamp=True), TypeError, "clamp"),
        (lambda: AffineTransformer(clamp=0.0), ValueError, "clamp"),
        (lambda: LeakyReLUTransformer(alpha=np.inf), ValueError, "alpha"),
        (lambda: LeakyReLUTransformer(alpha=None), TypeError, "alpha"),
        (lambda: LeakyReLUTransformer(alpha=-0.1), ValueError, "alpha"),
        (lambda: SigmoidTransformer(low=np.inf), ValueError, "low"),
        (lambda: SigmoidTransformer(high="1"), TypeError, "high"),
        (lambda: SigmoidTransformer(low=1.0, high=1.0), ValueError, "low < high"),
        (lambda: SigmoidTransformer(low=-1e308, high=1e308), ValueError, "finite width"),
    ],
)
def test_bad_constructor_arguments_are_named(build, error, match):
    with pytest.raises(error, match=match):
        build()


def test_good_constructor_arguments_are_kept_as_plain_numbers():
    T = RQSplineTransformer(np.int64(4), np.float32(2.0), min_width=0.01)
    assert (T.bins, T.bound, T.min_width) == (4, 2.0, 0.01)
    assert type(T.bins) is int and type(T.bound) is float
    with pytest.raises(ValueError, match="bins must be a positive integer"):
        PiecewiseLinearTransformer(4.0)  # a count is an integer (npflows.layer.check_int)
