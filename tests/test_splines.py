"""Piecewise-linear and rational-quadratic spline transformers and layers: edges, gradients, nflows.

Every test runs under ``np.errstate(all="raise", under="ignore")``, so an overflow, a division by
zero or an invalid operation (NaN) fails it instead of passing silently. Underflow stays ignored, as
numpy's default: an input one ulp above 0 is itself subnormal, and rounding it on to zero is harmless.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import integrate
from spline_oracle import errors_against_oracle, exact_knots, float64_knots

import npflows as nf
from npflows.testing import check_layer
from npflows.transformers import PiecewiseLinearTransformer, RQSplineTransformer

REFERENCE = Path(__file__).parent / "data" / "nflows_rqspline_reference.npz"
EPS = 1e-6  # central-difference step
MARGIN = 1e-4  # finite-difference points stay this far from knots


@pytest.fixture(autouse=True)
def strict_floats():
    with np.errstate(all="raise", under="ignore"):
        yield


# -- independent re-derivations of the knots (docs/elementwise.md), for placing test points ---------------------
def rq_knots(theta, K, B, m=1e-3):
    """x-knots and y-knots (…, K + 1) of the RQ spline, written out from docs/elementwise.md."""

    def knots(raw):
        e = np.exp(raw - raw.max(-1, keepdims=True))
        w = m + (1 - m * K) * e / e.sum(-1, keepdims=True)
        inner = -B + 2 * B * np.cumsum(w, -1)[..., :-1]
        return np.concatenate(
            [np.full(raw.shape[:-1] + (1,), -B), inner, np.full_like(inner[..., :1], B)], -1
        )

    return knots(theta[..., :K]), knots(theta[..., K : 2 * K])


def pl_transformers():
    return [PiecewiseLinearTransformer(5), PiecewiseLinearTransformer(4, bound=2.0)]


def rq_transformer():
    return RQSplineTransformer(bins=6, bound=2.5)


def random_theta(T, rng, shape, scale=1.0):
    return T.identity_params() + scale * rng.standard_normal((*shape, T.n_params))


def away_from(v, knots, margin=MARGIN):
    """Whether each entry of v (…) is farther than margin from every knot (…, K + 1)."""
    return np.all(np.abs(v[..., None] - knots) > margin, axis=-1)


# -- finite differences, element by element (the maps act coordinate by coordinate) ----------------
def pullback_error(fn_vjp, v, theta, rng):
    """Max relative error, |a − n| / (1 + |n|), of grad_v and grad_theta of ⟨g_y, y⟩ + ⟨g_ℓ, ℓ⟩
    against central differences, over every entry."""
    out, _, pullback = fn_vjp(v, theta)
    g_out, g_ell = rng.standard_normal(out.shape), rng.standard_normal(out.shape)
    grad_v, grad_theta = pullback(g_out, g_ell)

    def s(v_, theta_):  # per element: entry (n, d) depends on v[n, d] and theta[n, d] only
        o, ll = fn_vjp(v_, theta_)[:2]
        return g_out * o + g_ell * ll

    pairs = [(grad_v, (s(v + EPS, theta) - s(v - EPS, theta)) / (2 * EPS))]
    for p in range(theta.shape[-1]):
        step = np.zeros_like(theta)
        step[..., p] = EPS
        pairs.append((grad_theta[..., p], (s(v, theta + step) - s(v, theta - step)) / (2 * EPS)))
    return max(np.max(np.abs(a - n) / (1 + np.abs(n))) for a, n in pairs)


# -- nflows cross-check ------------------------------------------------------------------------------
def test_rq_spline_matches_nflows_reference():
    """Same raw numbers, same outputs as nflows (tests/data/make_nflows_rqspline_reference.py)."""
    ref = np.load(REFERENCE)
    T = RQSplineTransformer(bins=int(ref["bins"]), bound=float(ref["tail_bound"]))
    theta = np.concatenate(
        [ref["unnormalized_widths"], ref["unnormalized_heights"], ref["unnormalized_derivatives"]],
        -1,
    )[:, None, :]
    v = ref["inputs"][:, None]
    assert np.any(np.abs(v) > T.bound) and np.any(np.abs(v) == T.bound)
    y, ll = T.forward(v, theta)
    np.testing.assert_allclose(y[:, 0], ref["outputs_forward"], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(ll[:, 0], ref["logabsdet_forward"], rtol=1e-12, atol=1e-12)
    u, ll = T.inverse(v, theta)
    np.testing.assert_allclose(u[:, 0], ref["outputs_inverse"], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(ll[:, 0], ref["logabsdet_inverse"], rtol=1e-12, atol=1e-12)


# -- against a 40-digit oracle (tests/spline_oracle.py, mpmath) ---------------------------------------
@pytest.mark.parametrize("scale", [0.3, 1.0, 3.0])
def test_rq_matches_the_40_digit_oracle(scale):
    """Forward and inverse value and log-det within 1e-13 of the 40-digit evaluation, relative to
    max(1, |value|), at raw scale ≤ 3, inputs over [−B, B] and a little beyond (the tails)."""
    rng = np.random.default_rng(int(10 * scale))
    T = RQSplineTransformer(bins=8, bound=3.0)
    theta = T.identity_params() + scale * rng.standard_normal((150, T.n_params))
    v = rng.uniform(-3.2, 3.2, 150)
    for inverse in (False, True):
        value_errors, log_det_errors = errors_against_oracle(T, theta, v, inverse)
        assert value_errors.max() < 1e-13 and log_det_errors.max() < 1e-13, inverse


def test_rq_knots_are_the_float64_parameterization_and_near_the_exact_ones():
    """The oracle's float64 knots are the spline's, bit for bit (the forward map sends its x-knots
    to its y-knots exactly, in a batch of any size), and within 8 ulp of B of the exact knots."""
    rng = np.random.default_rng(11)
    T = RQSplineTransformer(bins=8, bound=3.0)
    theta = T.identity_params() + 3.0 * rng.standard_normal((40, T.n_params))
    for n, row in enumerate(theta):
        xs, ys, ds = float64_knots(row, T.bins, T.bound)
        for rows in (1, 5):  # numpy sums a single row differently unless told the order
            y, _ = T.forward(
                np.tile(xs, (rows, 1)).T, np.broadcast_to(row, (T.bins + 1, rows, T.n_params))
            )
            np.testing.assert_array_equal(y, np.tile(ys, (rows, 1)).T)
        exact = exact_knots(row, T.bins, T.bound)
        for computed, reference in zip((xs, ys, ds), exact, strict=True):
            errors = [abs(float(c - r)) for c, r in zip(computed, reference, strict=True)]
            assert max(errors) <= 8 * np.spacing(T.bound), n


def test_rq_round_trip_at_raw_scale_10():
    """forward(inverse(y)) − y within 8 ulp of B, times the slope h′(u) where it exceeds 1: u is a
    float, and rounding it by half an ulp moves h(u) by h′(u) times that however u is found."""
    rng = np.random.default_rng(12)
    for bound in (1.0, 3.0):
        T = RQSplineTransformer(bins=8, bound=bound)
        theta = T.identity_params() + 10.0 * rng.standard_normal((20000, 1, T.n_params))
        y = rng.uniform(-bound, bound, (20000, 1))
        u, log_det = T.inverse(y, theta)
        slope = np.exp(-log_det)
        error = np.abs(T.forward(u, theta)[0] - y)
        assert np.all(error <= 8 * np.spacing(bound) * np.maximum(1.0, slope))


# -- rational-quadratic spline -----------------------------------------------------------------------
def test_rq_identity_at_identity_params():
    T = rq_transformer()
    u = np.linspace(-4, 4, 81).reshape(27, 3)
    theta = np.broadcast_to(T.identity_params(), (*u.shape, T.n_params))
    y, ll = T.forward(u, theta)
    np.testing.assert_allclose(y, u, atol=1e-14)
    np.testing.assert_allclose(ll, 0.0, atol=1e-14)
    assert T.n_params == 3 * 6 - 1


@pytest.mark.parametrize("scale", [1.0, 50.0])
def test_rq_edges_are_finite_and_invert(scale):
    """Knots exactly, ±B and one ulp either side, tails, ±1e300, raw parameters up to ±50."""
    rng = np.random.default_rng(0)
    T = rq_transformer()
    B, K = T.bound, T.bins
    theta = random_theta(T, rng, (1, 1), scale)
    if scale == 50.0:  # the extreme raw values themselves, with random signs
        theta = 50.0 * np.sign(rng.standard_normal(theta.shape))
    x_knots, y_knots = rq_knots(theta[0, 0], K, B)
    ulp_in = [np.nextafter(B, 0), np.nextafter(-B, 0)]
    ulp_out = [np.nextafter(B, np.inf), np.nextafter(-B, -np.inf)]
    special = np.array([*x_knots, *ulp_in, *ulp_out, -B, B, 3.7, -1e3, 1e300, -1e300, 0.0])
    u = special[:, None]
    th = np.broadcast_to(theta[0, 0], (len(u), 1, T.n_params))
    y, ll, pullback = T.forward_vjp(u, th)
    grads = pullback(np.ones_like(u), np.ones_like(u))
    assert all(np.all(np.isfinite(a)) for a in (y, ll, *grads))
    np.testing.assert_allclose(y[: K + 1, 0], y_knots, rtol=1e-13, atol=1e-13)  # knots to knots
    tails = np.abs(u) > B
    np.testing.assert_array_equal(y[tails], u[tails])
    np.testing.assert_array_equal(ll[tails], 0.0)
    np.testing.assert_array_equal(grads[1][tails], 0.0)
    u_back, ll_back = T.inverse(y, th)
    np.testing.assert_allclose(u_back, u, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(ll_back, -ll, atol=1e-9)
    # the inverse at the y-knots and one ulp inside ±B
    v = np.array([*y_knots, *ulp_in])[:, None]
    u_v, _ = T.inverse(v, th[: len(v)])
    np.testing.assert_allclose(T.forward(u_v, th[: len(v)])[0], v, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(u_v[: K + 1, 0], x_knots, rtol=1e-11, atol=1e-11)


def test_rq_continuous_at_the_bounds():
    """Value and derivative (δ_0 = δ_K = 1) match the identity tails at ±B."""
    rng = np.random.default_rng(1)
    T = rq_transformer()
    B = T.bound
    u = np.array([[-B, np.nextafter(-B, 0), B, np.nextafter(B, 0)]])
    y, ll = T.forward(u, random_theta(T, rng, u.shape))
    np.testing.assert_allclose(y, u, rtol=1e-14)
    np.testing.assert_allclose(ll, 0.0, atol=1e-12)


def test_rq_monotone():
    rng = np.random.default_rng(2)
    T = rq_transformer()
    u = np.linspace(-3, 3, 20001)[:, None]
    for _ in range(5):
        y, _ = T.forward(
            u, np.broadcast_to(random_theta(T, rng, (1, 1), 2.0), (*u.shape, T.n_params))
        )
        assert np.all(np.diff(y[:, 0]) > 0)


def test_rq_pullbacks_match_central_differences():
    rng = np.random.default_rng(3)
    T = rq_transformer()
    theta = random_theta(T, rng, (40, 3))
    x_knots, y_knots = rq_knots(theta, T.bins, T.bound)
    u = rng.uniform(-3.5, 3.5, (40, 3))
    u = np.where(away_from(u, x_knots), u, u + 10 * MARGIN)  # off the knots and ±B
    assert pullback_error(T.forward_vjp, u, theta, rng) < 1e-6
    y = T.forward(u, theta)[0]
    assert np.all(away_from(y, y_knots, 1e-6))
    assert pullback_error(T.inverse_vjp, y, theta, rng) < 1e-6


@pytest.mark.parametrize("seed", range(3))
def test_rq_flow_density_integrates_to_one(seed):
    rng = np.random.default_rng(seed)
    layer = nf.RQSpline(1, bins=6, bound=2.5)
    layer.params["theta"] += rng.standard_normal(layer.params["theta"].shape)
    flow = nf.Flow([layer])

    def density(x):
        return float(np.exp(flow.log_prob(np.array([[x]]))[0]))

    y_knots = rq_knots(layer.params["theta"][0], 6, 2.5)[1]
    inside, _ = integrate.quad(density, -2.5, 2.5, points=y_knots[1:-1], epsabs=1e-12, limit=200)
    left, _ = integrate.quad(density, -np.inf, -2.5, epsabs=1e-12)
    right, _ = integrate.quad(density, 2.5, np.inf, epsabs=1e-12)
    assert abs(left + inside + right - 1.0) < 1e-6


# -- piecewise linear --------------------------------------------------------------------------------
@pytest.mark.parametrize("T", pl_transformers(), ids=["unit", "bounded"])
def test_pl_identity_at_zero_params(T):
    u = np.linspace(0, 1, 31).reshape(-1, 1) if T.bound is None else np.linspace(-4, 4, 31)[:, None]
    y, ll = T.forward(u, np.zeros((*u.shape, T.n_params)))
    np.testing.assert_allclose(y, u, atol=1e-15)
    np.testing.assert_allclose(ll, 0.0, atol=1e-15)


@pytest.mark.parametrize("T", pl_transformers(), ids=["unit", "bounded"])
@pytest.mark.parametrize("scale", [1.0, 50.0])
def test_pl_edges_are_finite_and_invert(T, scale):
    rng = np.random.default_rng(4)
    K = T.bins
    theta = scale * (rng.standard_normal(K) if scale == 1.0 else np.sign(rng.standard_normal(K)))
    lo, hi = (0.0, 1.0) if T.bound is None else (-T.bound, T.bound)
    knots = lo + (hi - lo) * np.arange(K + 1) / K
    special = [*knots, np.nextafter(lo, hi), np.nextafter(hi, lo)]
    if T.bound is not None:
        special += [np.nextafter(lo, -np.inf), np.nextafter(hi, np.inf), -7.0, 1e300, -1e300]
    u = np.array(special)[:, None]
    th = np.broadcast_to(theta, (len(u), 1, K))
    y, ll, pullback = T.forward_vjp(u, th)
    grads = pullback(np.ones_like(u), np.ones_like(u))
    assert all(np.all(np.isfinite(a)) for a in (y, ll, *grads))
    assert np.all((y[: K + 1] >= lo) & (y[: K + 1] <= hi))
    np.testing.assert_array_equal(y[[0, K]], [[lo], [hi]])
    u_back, _ = T.inverse(y, th)
    np.testing.assert_allclose(T.forward(u_back, th)[0], y, rtol=1e-12, atol=1e-12 * (hi - lo))
    if scale == 1.0:  # at ±50 a bin of mass e⁻¹⁰⁰ is flat to the last bit, so u cannot come back
        np.testing.assert_allclose(u_back, u, rtol=1e-12, atol=1e-12 * (hi - lo))


def test_pl_unit_refuses_outside_0_1():
    layer = nf.PiecewiseLinear(2, bins=4)
    with pytest.raises(ValueError, match=r"\[0, 1\].*1 value\(s\).*1\.5"):
        layer.forward(np.array([[0.2, 1.5]]))
    with pytest.raises(ValueError, match=r"2 value\(s\).*-0\.1"):
        layer.inverse(np.array([[-0.1, 0.5], [0.3, 1.2]]))
    layer.forward(np.array([[0.0, 1.0]]))  # the ends themselves are fine


@pytest.mark.parametrize("T", pl_transformers(), ids=["unit", "bounded"])
def test_pl_monotone_and_pullbacks(T):
    rng = np.random.default_rng(5)
    K = T.bins
    theta = rng.standard_normal((30, 2, K))
    lo, hi = (0.0, 1.0) if T.bound is None else (-T.bound, T.bound)
    a, b = (lo + 0.01, hi - 0.01) if T.bound is None else (lo - 1, hi + 1)  # tails when bounded
    grid = np.linspace(a, b, 5001)[:, None]
    y, _ = T.forward(grid, np.broadcast_to(theta[0, 0], (*grid.shape, K)))
    assert np.all(np.diff(y[:, 0]) > 0)
    u = rng.uniform(a, b, (30, 2))
    knots = lo + (hi - lo) * np.arange(K + 1) / K
    u = np.where(away_from(u, knots), u, u + 10 * MARGIN)
    assert pullback_error(T.forward_vjp, u, theta, rng) < 1e-6
    assert pullback_error(T.inverse_vjp, T.forward(u, theta)[0], theta, rng) < 1e-6


# -- layers ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "cls, kwargs, z",
    [
        (nf.PiecewiseLinear, {"bins": 4}, [[0.1, 0.33, 0.9], [0.6, 0.05, 0.45]]),
        (nf.PiecewiseLinear, {"bins": 5, "bound": 2.0}, [[-2.5, 0.3, 1.1], [0.5, 2.9, -0.7]]),
        (nf.RQSpline, {"bins": 5, "bound": 2.0}, [[-2.5, 0.3, 1.1], [0.5, 2.9, -0.7]]),
    ],
)
def test_layers_config_shapes_and_checks(cls, kwargs, z):
    layer = cls(3, **kwargs)
    assert layer.get_config() == {"dim": 3, "bound": None, **kwargs}
    assert cls(**layer.get_config()).get_config() == layer.get_config()
    theta = layer.params["theta"]
    assert theta.shape == (3, layer.transformer.n_params)
    theta += 0.5 * np.random.default_rng(6).standard_normal(theta.shape)
    check_layer(layer, np.array(z))


def test_constructors_refuse_bad_hyperparameters():
    for kwargs in (
        {"bins": 0},
        {"bound": 0.0},
        {"bound": np.inf},
        {"bins": 1000},
        {"min_derivative": 1.0},
    ):
        with pytest.raises(ValueError):
            RQSplineTransformer(**kwargs)
    for kwargs in ({"bins": 0}, {"bins": 2.5}, {"bound": -1.0}):
        with pytest.raises(ValueError):
            PiecewiseLinearTransformer(**kwargs)
