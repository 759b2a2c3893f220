import warnings

import numpy as np
import pytest
from scipy import integrate, special, stats

from npflows.targets import TARGETS, Funnel, GaussianMixture, Ring, Wave, get_target
from npflows.testing import jacobian_fd

# Every target the tests check, by id; the named ones are exactly the defaults of get_target.
CASES = {
    **{name: get_target(name) for name in TARGETS},
    "wave-wide": Wave("wave-step", envelope_sd=3.5),
    "mixture-3d": GaussianMixture(
        weights=(0.25, 0.75),
        means=((0.0, 1.0, -1.0), (2.0, -1.0, 0.5)),
        covs=(np.diag([0.5, 1.0, 2.0]), [[1.0, 0.3, 0.1], [0.3, 0.8, -0.2], [0.1, -0.2, 0.6]]),
        log_z=-1.7,
    ),
    "funnel-4d": Funnel(4),
}

# A box holding all but ~1e-13 of the mass of each 2-D target, for grid quadrature.
BOXES = {
    "ring": ((-7, 7), (-7, 7)),
    "wave": ((-16, 16), (-8, 6)),
    "wave-split": ((-16, 16), (-8, 6)),
    "wave-step": ((-16, 16), (-8, 6)),
    "wave-wide": ((-28, 28), (-8, 6)),
    "mixture": ((-7, 7), (-9, 9)),
}


def points(target, n, rng):
    """Random test points spread over where the target has mass, and a little beyond."""
    if isinstance(target, Funnel):  # keep v moderate so e^{-v} does not swamp the differences
        return np.concatenate(
            [rng.normal(0, 1.5, (n, 1)), rng.normal(0, 2, (n, target.dim - 1))], 1
        )
    return rng.normal(0.0, 2.5, (n, target.dim))


def grid_integral(target, box, h=0.05):
    """∫ p̃ over ``box`` by the trapezoid rule with step h (exponentially accurate here, since p̃ is
    smooth and negligible at the edges), as log ∫ p̃."""
    axes = [np.arange(lo, hi + h / 2, h) for lo, hi in box]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 2)
    return special.logsumexp(target.log_density(grid)[0]) + 2 * np.log(h), grid


def ring_log_z_polar(n_theta=256, tol=1e-13):
    """log ∫ p̃ of the ring in polar coordinates: the periodic trapezoid rule in θ inside quad in r."""
    theta = 2 * np.pi * np.arange(n_theta) / n_theta
    ring = Ring()

    def slice_mass(r):  # r ∫ p̃(r cos θ, r sin θ) dθ
        z = r * np.stack([np.cos(theta), np.sin(theta)], axis=1)
        return r * 2 * np.pi * np.exp(ring.log_density(z)[0]).mean()

    value, _ = integrate.quad(slice_mass, 0, 8, points=[2.0], epsabs=tol, epsrel=tol, limit=200)
    return float(np.log(value))


# -- the formulas -------------------------------------------------------------------------------


def table1_energy(name, z, s=2.0):
    """U of Rezende & Mohamed (2015), Table 1, written out naively, plus the wave envelope."""
    z1, z2 = z[:, 0], z[:, 1]
    w1 = np.sin(2 * np.pi * z1 / 4)
    w2 = 3 * np.exp(-0.5 * ((z1 - 1) / 0.6) ** 2)
    w3 = 3 / (1 + np.exp(-(z1 - 1) / 0.3))
    envelope = z1**2 / (2 * s**2)
    if name == "ring":
        norm = np.sqrt(z1**2 + z2**2)
        mix = np.exp(-0.5 * ((z1 - 2) / 0.6) ** 2) + np.exp(-0.5 * ((z1 + 2) / 0.6) ** 2)
        return 0.5 * ((norm - 2) / 0.4) ** 2 - np.log(mix)
    if name == "wave":
        return 0.5 * ((z2 - w1) / 0.4) ** 2 + envelope
    if name == "wave-split":
        a, b = np.exp(-0.5 * ((z2 - w1) / 0.35) ** 2), np.exp(-0.5 * ((z2 - w1 + w2) / 0.35) ** 2)
        return -np.log(a + b) + envelope
    a, b = np.exp(-0.5 * ((z2 - w1) / 0.4) ** 2), np.exp(-0.5 * ((z2 - w1 + w3) / 0.35) ** 2)
    return -np.log(a + b) + envelope


@pytest.mark.parametrize("name", ["ring", "wave", "wave-split", "wave-step"])
def test_energies_are_table_1(name):
    z = np.random.default_rng(0).uniform(-4, 4, (200, 2))
    np.testing.assert_allclose(
        get_target(name).log_density(z)[0], -table1_energy(name, z), rtol=1e-12
    )


def test_mixture_matches_scipy():
    target = CASES["mixture-3d"]
    x = np.random.default_rng(1).normal(size=(50, 3))
    densities = [
        w * stats.multivariate_normal(m, c).pdf(x)
        for w, m, c in zip(target.weights, target.means, target.covs, strict=True)
    ]
    np.testing.assert_allclose(target.log_density(x)[0], np.log(sum(densities)) - 1.7, rtol=1e-12)


@pytest.mark.parametrize("dim", [2, 5])
def test_funnel_matches_scipy(dim):
    x = points(Funnel(dim), 50, np.random.default_rng(2))
    v = x[:, 0]
    expected = stats.norm.logpdf(v, 0, 3) + stats.norm.logpdf(
        x[:, 1:], 0, np.exp(v / 2)[:, None]
    ).sum(axis=1)
    np.testing.assert_allclose(Funnel(dim).log_density(x)[0], expected, rtol=1e-12)


# -- gradients and far-out inputs -----------------------------------------------------------------


@pytest.mark.parametrize("case", CASES)
def test_gradient_matches_central_differences(case):
    target = CASES[case]
    x = points(target, 40, np.random.default_rng(3))
    log_p, grad = target.log_density(x)
    assert log_p.shape == (40,) and grad.shape == (40, target.dim)
    numeric = jacobian_fd(target.log_density, x, eps=1e-6)
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-6)  # |error| ≤ 1e-6 (1 + |∂|)


def test_ring_at_the_origin_is_finite():
    log_p, grad = Ring().log_density(np.zeros((1, 2)))
    assert np.isfinite(log_p).all()
    np.testing.assert_array_equal(grad[:, 1], 0.0)


def far_points(dim):
    """Every corner, edge and face centre of the cube [−1e3, 1e3]^D, and random points at radius 1e3."""
    corners = np.stack(np.meshgrid(*[[-1e3, 0.0, 1e3]] * dim, indexing="ij"), -1).reshape(-1, dim)
    u = np.random.default_rng(4).normal(size=(20, dim))
    return np.concatenate([corners, 1e3 * u / np.linalg.norm(u, axis=1, keepdims=True)])


@pytest.mark.parametrize("case", CASES)
def test_far_out_inputs_are_finite_and_silent(case):
    target = CASES[case]
    x = far_points(target.dim)
    with warnings.catch_warnings(), np.errstate(over="raise", invalid="raise", divide="raise"):
        warnings.simplefilter("error")
        log_p, grad = target.log_density(x)
    assert not np.isnan(log_p).any() and not np.isnan(grad).any()
    finite = np.ones(len(x), bool)
    if isinstance(target, Funnel):  # ½e^{−v}Σx² beyond float64: log p is −inf, as documented
        with np.errstate(divide="ignore"):
            log_half_q = np.log(0.5 * (x[:, 1:] ** 2).sum(axis=1))
        finite = log_half_q - x[:, 0] < np.log(np.finfo(float).max)
        assert 0 < finite.sum() < len(x) and np.all(log_p[~finite] == -np.inf)
    assert np.isfinite(log_p[finite]).all() and np.isfinite(grad[finite]).all()


# -- log Z ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", BOXES)
def test_log_z_by_grid_quadrature(case):
    target = CASES[case]
    log_z, _ = grid_integral(target, BOXES[case])
    assert log_z == pytest.approx(target.log_z, abs=1e-10)


def test_ring_log_z_constant_by_polar_quadrature():
    assert ring_log_z_polar() == pytest.approx(Ring.log_z, abs=1e-12)


def test_wave_log_z_is_closed_form():
    # Each slice z1 = const holds √(2π) Σσ_k, so Z = (√(2π) s)(√(2π) Σσ_k).
    for name, sds in [("wave", 0.4), ("wave-split", 0.7), ("wave-step", 0.75)]:
        assert Wave(name, envelope_sd=1.5).log_z == pytest.approx(np.log(2 * np.pi * 1.5 * sds))


def test_funnel_log_z_by_quadrature():
    # x = e^{v/2} u on a grid in (v, u): the Jacobian e^{v/2} follows every slice's scale.
    v, u = np.linspace(-30, 30, 1201), np.linspace(-12, 12, 481)
    V, U = np.meshgrid(v, u, indexing="ij")
    X = np.stack([V, np.exp(V / 2) * U], axis=-1).reshape(-1, 2)
    log_p = Funnel().log_density(X)[0].reshape(V.shape) + V / 2
    log_z = special.logsumexp(log_p) + np.log((v[1] - v[0]) * (u[1] - u[0]))
    assert log_z == pytest.approx(Funnel.log_z, abs=1e-8)


# -- sampling --------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES)
def test_sampling_is_seeded_and_checked(case):
    target = CASES[case]
    if isinstance(target, Ring):
        assert target.sample is None
        return
    np.testing.assert_array_equal(
        target.sample(5, rng=9), target.sample(5, np.random.default_rng(9))
    )
    assert target.sample(0).shape == (0, target.dim)
    assert target.sample(3).dtype == np.float64
    with pytest.raises(ValueError, match="non-negative integer"):
        target.sample(2.5)


def assert_moments(samples, mean, cov):
    """Sample mean and covariance within 5 standard errors of the exact ones."""
    n = len(samples)
    centred = samples - mean
    se_mean = np.sqrt(np.diag(cov) / n)
    assert np.all(np.abs(samples.mean(0) - mean) < 5 * se_mean), (samples.mean(0), mean)
    products = centred[:, :, None] * centred[:, None, :]
    se_cov = products.std(0) / np.sqrt(n)
    assert np.all(np.abs(products.mean(0) - cov) < 5 * se_cov + 1e-12), (products.mean(0), cov)


@pytest.mark.parametrize("case", ["wave", "wave-split", "wave-step", "wave-wide", "mixture"])
def test_sample_moments_match_the_density(case):
    # Moments of p̃/Z by the same grid quadrature: the sampler and the density must agree.
    target = CASES[case]
    h = 0.1  # coarser, but still far more accurate than the sampling error
    log_z, grid = grid_integral(target, BOXES[case], h)
    p = np.exp(target.log_density(grid)[0] - log_z) * h**2
    mean = p @ grid
    cov = (grid - mean).T @ ((grid - mean) * p[:, None])
    assert_moments(target.sample(200_000, rng=10), mean, cov)


@pytest.mark.parametrize("case", ["mixture", "mixture-3d"])
def test_mixture_sample_moments_are_exact(case):
    target = CASES[case]
    mean = target.weights @ target.means
    second = np.einsum("k,kij->ij", target.weights, target.covs) + np.einsum(
        "k,ki,kj->ij", target.weights, target.means, target.means
    )
    assert_moments(target.sample(200_000, rng=11), mean, second - np.outer(mean, mean))


def test_funnel_samples():
    # v ~ N(0, 9) and x_i e^{−v/2} ~ N(0, 1), independent of v and of each other.
    x = Funnel(4).sample(200_000, rng=12)
    standardized = np.concatenate([x[:, :1] / 3, x[:, 1:] * np.exp(-x[:, :1] / 2)], axis=1)
    assert_moments(standardized, np.zeros(4), np.eye(4))


# -- inputs -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES)
def test_bad_inputs_raise(case):
    target = CASES[case]
    d = target.dim
    for bad in [np.zeros((3, d + 1)), np.zeros(d), np.zeros((3, d), int), np.full((2, d), np.nan)]:
        with pytest.raises(ValueError):
            target.log_density(bad)
    log_p, grad = target.log_density(np.ones((2, d), np.float32))
    assert log_p.dtype == grad.dtype == np.float64


def test_get_target_and_constructors_check_their_arguments():
    assert TARGETS == ["ring", "wave", "wave-split", "wave-step", "mixture", "funnel"]
    assert [get_target(name).name for name in TARGETS] == TARGETS
    assert get_target("funnel", dim=3).dim == 3
    assert get_target("mixture", log_z=2.0).log_z == 2.0
    with pytest.raises(ValueError, match="ring, wave, wave-split, wave-step, mixture, funnel"):
        get_target("banana")
    with pytest.raises(ValueError, match="at least 2"):
        Funnel(1)
    with pytest.raises(ValueError, match="envelope_sd"):
        Wave("wave", envelope_sd=0.0)
    with pytest.raises(ValueError, match="unknown wave"):
        Wave("ring")
    with pytest.raises(ValueError, match="sum to 1"):
        GaussianMixture(weights=(0.5, 0.4, 0.2))
    with pytest.raises(ValueError, match="positive definite"):
        GaussianMixture(weights=(1.0,), means=((0.0, 0.0),), covs=(((1.0, 2.0), (2.0, 1.0)),))
    with pytest.raises(ValueError, match="shapes"):
        GaussianMixture(weights=(1.0,), means=((0.0, 0.0),), covs=((1.0, 0.0),))
