"""Built-in data sets: sampling, the exact density, its entropy, and lookup by name."""

from __future__ import annotations

import mpmath as mp
import numpy as np
import pytest
from scipy import integrate, stats

from npflows import datasets
from npflows.datasets import BIMODAL, Banana, Checkerboard, Circles, MixtureData, Moons

N_MC = 200_000  # Monte-Carlo sample size for the moment and entropy checks


def mixture_parameters():
    """BIMODAL's weights, means and standard deviations, each (K,)."""
    m = BIMODAL.mixture
    return m.weights, m.means[:, 0], np.sqrt(m.covs[:, 0, 0])


def test_sample_shape_dtype_and_seeding():
    x = BIMODAL.sample(100, rng=0)
    assert x.shape == (100, 1) and x.dtype == np.float64
    np.testing.assert_array_equal(x, BIMODAL.sample(100, rng=np.random.default_rng(0)))
    np.testing.assert_array_equal(x, datasets.bimodal_1d(100, rng=0))
    assert not np.array_equal(x, BIMODAL.sample(100, rng=1))
    assert BIMODAL.sample(0, rng=0).shape == (0, 1)


@pytest.mark.parametrize("n", [-1, 2.5])
def test_sample_refuses_bad_n(n):
    with pytest.raises(ValueError, match="n must be a non-negative integer"):
        BIMODAL.sample(n, rng=0)


def test_log_density_matches_scipy_and_is_stable_far_out():
    x = np.linspace(-6.0, 6.0, 101)[:, None]
    expected = np.log(
        sum(
            w * stats.norm.pdf(x[:, 0], m, s) for w, m, s in zip(*mixture_parameters(), strict=True)
        )
    )
    np.testing.assert_allclose(BIMODAL.log_density(x), expected, rtol=1e-12)
    far = BIMODAL.log_density(np.array([[-300.0], [300.0]]))  # every exp underflows here
    assert np.all(np.isfinite(far)) and np.all(far < -1e4)


def test_log_density_refuses_wrong_shape():
    with pytest.raises(ValueError, match=r"shape \(N, 1\)"):
        BIMODAL.log_density(np.zeros(5))


def test_density_integrates_to_one():
    def density(x):
        return np.exp(BIMODAL.log_density(np.array([[x]])))[0]

    total, _ = integrate.quad(density, -np.inf, np.inf, epsabs=1e-12)
    assert abs(total - 1.0) < 1e-8


def test_sample_mean_and_variance_match_the_mixture():
    w, mu, sd = mixture_parameters()
    mean = np.sum(w * mu)
    var = np.sum(w * (sd**2 + mu**2)) - mean**2
    x = BIMODAL.sample(N_MC, rng=1)[:, 0]
    mean_se = np.sqrt(var / N_MC)
    var_se = np.sqrt((np.mean((x - mean) ** 4) - var**2) / N_MC)
    assert abs(x.mean() - mean) < 4 * mean_se
    assert abs(x.var() - var) < 4 * var_se


def test_entropy_agrees_with_monte_carlo():
    neg_log_p = -BIMODAL.log_density(BIMODAL.sample(N_MC, rng=2))
    se = neg_log_p.std(ddof=1) / np.sqrt(N_MC)
    assert abs(neg_log_p.mean() - BIMODAL.entropy()) < 4 * se


def test_entropy_of_one_gaussian_is_exact():
    # Two equal components make one Gaussian, whose entropy is ½ log(2πe σ²).
    mixture = MixtureData(weights=(0.5, 0.5), means=[[3.0], [3.0]], covs=[[[0.04]], [[0.04]]])
    assert abs(mixture.entropy() - 0.5 * np.log(2 * np.pi * np.e * 0.2**2)) < 1e-10
    assert mixture.entropy() == mixture.entropy()  # cached


@pytest.mark.parametrize(
    ("weights", "means", "covs", "match"),
    [
        ((0.5, 0.6), [[0.0], [1.0]], [[[1.0]], [[1.0]]], "sum to 1"),
        ((1.0,), [[0.0], [1.0]], [[[1.0]], [[1.0]]], "shapes"),
        ((0.5, 0.5), [[0.0], [np.inf]], [[[1.0]], [[1.0]]], "finite"),
        ((1.0,), [[0.0, 0.0, 0.0]], [np.eye(3)], r"shape \(K, 1\) or \(K, 2\)"),
    ],
)
def test_mixture_refuses_bad_parameters(weights, means, covs, match):
    with pytest.raises(ValueError, match=match):
        MixtureData(weights, means, covs)


def test_get_by_name():
    assert datasets.get("bimodal") is BIMODAL
    with pytest.raises(ValueError, match="unknown dataset 'nosuch'; choose one of: 2spirals, 8g"):
        datasets.get("nosuch")


# -- 2-D data sets ---------------------------------------------------------------------------------
TWO_D = [name for name, data in datasets.DATASETS.items() if data.dim == 2]
EXACT = [name for name in TWO_D if datasets.get(name).log_density is not None]


def test_the_two_d_sets_are_registered():
    assert TWO_D == [
        "moons",
        "circles",
        "8gaussians",
        "8gaussians-narrow",
        "checkerboard",
        "pinwheel",
        "2spirals",
        "banana",
    ]
    assert EXACT == [
        "moons",
        "circles",
        "8gaussians",
        "8gaussians-narrow",
        "checkerboard",
        "banana",
    ]
    for name in set(TWO_D) - set(EXACT):
        assert datasets.get(name).entropy is None


@pytest.mark.parametrize("name", TWO_D)
def test_two_d_samples_are_seeded_float64_and_fill_the_box(name):
    data = datasets.get(name)
    x = data.sample(2000, rng=0)
    assert x.shape == (2000, 2) and x.dtype == np.float64
    np.testing.assert_array_equal(x, data.sample(2000, rng=np.random.default_rng(0)))
    assert not np.array_equal(x, data.sample(2000, rng=1))
    assert data.sample(0, rng=0).shape == (0, 2)
    lo, hi = np.quantile(x, [0.01, 0.99], axis=0)
    assert np.all(lo > -5) and np.all(hi < 5) and np.all(hi - lo > 2.5)
    with pytest.raises(ValueError, match="n must be a non-negative integer"):
        data.sample(-1, rng=0)


def test_noise_free_samplers_follow_their_documented_curves():
    x = datasets.two_moons(500, rng=0, noise=0.0)
    upper = np.isclose(np.linalg.norm(x - [-1.0, -0.2], axis=1), 2.0) & (x[:, 1] >= -0.2)
    lower = np.isclose(np.linalg.norm(x - [1.0, 0.8], axis=1), 2.0) & (x[:, 1] <= 0.8)
    assert np.all(upper | lower) and upper.any() and lower.any()
    r = np.linalg.norm(datasets.circles(500, rng=0, noise=0.0), axis=1)
    assert set(np.round(r, 12)) == {1.5, 3.0}
    x = datasets.two_spirals(500, rng=0, noise=0.0)
    assert np.linalg.norm(x, axis=1).max() <= np.pi + 1e-12
    x = datasets.pinwheel(500, rng=0, radial_sd=0.0, tangential_sd=0.0)
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 2.0, rtol=1e-12)
    arm_angles = np.arctan2(x[:, 1], x[:, 0]) - 0.25 * np.e  # 2πj/5, up to a multiple of 2π
    np.testing.assert_allclose(np.cos(5 * arm_angles), 1.0, atol=1e-9)


def midpoint_grid(box, h):
    """The centres of the square cells of side h tiling ``box`` = ((lo, hi), (lo, hi)), and h."""
    axes = [np.arange(lo + h / 2, hi, h) for lo, hi in box]
    return np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 2), h


def grid_mass(log_density, box, h):
    """∫ Pr over ``box`` by the midpoint rule with cells of side h."""
    grid, h = midpoint_grid(box, h)
    return np.exp(log_density(grid)).sum() * h * h


@pytest.mark.parametrize(
    ("name", "box", "h"),
    [
        ("8gaussians", ((-6, 6), (-6, 6)), 0.05),  # h = sd/7: the midpoint rule is spectrally exact
        ("8gaussians-narrow", ((-2.5, 2.5), (-2.5, 2.5)), 0.02),  # h = sd/2, 12 sd beyond the ring
        ("banana", ((-10, 10), (-3, 40)), 0.1),  # x2 < 40 keeps |x1| < 9 = 7.2 sd1; h = sd2/4
    ],
)
def test_smooth_exact_densities_integrate_to_one(name, box, h):
    assert abs(grid_mass(datasets.get(name).log_density, box, h) - 1.0) < 1e-4


def test_checkerboard_integrates_to_exactly_one():
    # Cells of side 0.25 never straddle a square's edge, so the midpoint rule is exact.
    board = datasets.get("checkerboard")
    with np.errstate(under="ignore"):
        assert abs(grid_mass(board.log_density, ((-5, 5), (-5, 5)), 0.25) - 1.0) < 1e-12


def test_checkerboard_samples_fill_the_black_squares_evenly():
    board = Checkerboard()
    x = board.sample(80_000, rng=3)
    assert np.all(board.log_density(x) == -np.log(32.0))  # every sample is on the support
    counts, _, _ = np.histogram2d(*x.T, bins=4, range=((-4, 4), (-4, 4)))
    black = (np.add.outer(np.arange(4), np.arange(4)) % 2) == 0
    assert np.all(counts[~black] == 0)
    assert stats.chisquare(counts[black]).pvalue > 1e-3
    assert board.log_density(np.array([[-3.0, -1.0], [5.0, 0.0]])).tolist() == [-np.inf] * 2
    assert board.entropy() == np.log(32.0)


@pytest.mark.parametrize("name", EXACT)
def test_entropy_agrees_with_the_samples_mean_log_density(name):
    data = datasets.get(name)
    neg_log_p = -data.log_density(data.sample(N_MC // 4, rng=4))
    se = max(neg_log_p.std(ddof=1) / np.sqrt(len(neg_log_p)), 1e-12)
    assert abs(neg_log_p.mean() - data.entropy()) < 4 * se


def test_banana_density_is_the_documented_product_of_normals():
    banana = Banana(sd1=1.2, bend=-0.3, sd2=0.7)
    x = np.random.default_rng(5).normal(0, 2, (50, 2))
    expected = stats.norm.logpdf(x[:, 0], 0, 1.2) + stats.norm.logpdf(
        x[:, 1], -0.3 * (x[:, 0] ** 2 - 1.2**2), 0.7
    )
    np.testing.assert_allclose(banana.log_density(x), expected, rtol=1e-12)
    assert abs(banana.entropy() - np.log(2 * np.pi * np.e * 1.2 * 0.7)) < 1e-12


def test_mixture_entropy_by_gauss_hermite_is_exact_for_one_gaussian():
    cov = np.array([[0.5, 0.2], [0.2, 0.3]])
    mixture = MixtureData([0.5, 0.5], [[1.0, -1.0], [1.0, -1.0]], [cov, cov])
    exact = np.log(2 * np.pi * np.e) + 0.5 * np.log(np.linalg.det(cov))
    assert abs(mixture.entropy() - exact) < 1e-12


def test_narrow_ring_is_eight_gaussians_of_std_point_02_radius():
    ring = datasets.get("8gaussians-narrow").mixture
    np.testing.assert_allclose(np.linalg.norm(ring.means, axis=1), 2.0, rtol=1e-15)
    np.testing.assert_allclose(ring.covs, np.tile((0.02 * 2.0) ** 2 * np.eye(2), (8, 1, 1)))
    # Modes 38 sd apart barely overlap: H is that of one Gaussian plus log 8, the choice of mode.
    assert (
        abs(datasets.get("8gaussians-narrow").entropy() - np.log(8 * 2 * np.pi * np.e * 0.04**2))
        < 1e-12
    )


# -- the noisy curves: moons and circles -----------------------------------------------------------
N_ENTROPY_MC = 1_000_000


def test_curve_samplers_are_unchanged():
    """The classes sample with the public functions, whose numbers are those of before the exact
    densities were added (values recorded from that code, seed 7)."""
    before = {
        "moons": [
            [0.07628378043111639, 1.2945529053677853],
            [-2.7462933882318117, 0.6451334481002398],
            [1.020809236730342, -0.353012233322741],
            [2.686928616387584, -0.12606814294181576],
        ],
        "circles": [
            [0.25546687916303634, -1.1588561509555277],
            [0.11459325638097188, 1.332922752115304],
            [-0.34745364047231897, 1.5117525869271433],
            [1.076275605174889, -1.2935688689906373],
        ],
    }
    for name, function in (("moons", datasets.two_moons), ("circles", datasets.circles)):
        np.testing.assert_array_equal(datasets.get(name).sample(1000, rng=3), function(1000, rng=3))
        np.testing.assert_allclose(datasets.get(name).sample(4, rng=7), before[name], rtol=1e-14)
    np.testing.assert_array_equal(
        Moons(noise=0.05).sample(50, rng=2), datasets.two_moons(50, rng=2, noise=0.05)
    )
    np.testing.assert_array_equal(
        Circles(radii=(1.0, 2.0, 4.0), noise=0.1).sample(50, rng=2),
        datasets.circles(50, rng=2, radii=(1.0, 2.0, 4.0), noise=0.1),
    )


def circles_density_mpmath(x, radii=(3.0, 1.5), noise=0.24):
    """Pr(x) of the circles by 20-digit quadrature of the angle integral (not the Bessel form)."""
    with mp.workdps(20):
        rho = mp.sqrt(mp.mpf(x[0]) ** 2 + mp.mpf(x[1]) ** 2)
        var, total = mp.mpf(noise) ** 2, 0
        for r in radii:
            # Rotated so that the nearest point of the circle is at t = 0, and its value
            # exp(−(ρ − r)²/2σ²) factored out: mp.quad's tolerance is absolute.
            width = 1 / mp.sqrt(r * rho / var + 1)
            cuts = [k * width for k in (1, 2, 4, 8, 16) if k * width < mp.pi]
            arc = mp.quad(
                lambda t, r=r: mp.exp(-r * rho * (1 - mp.cos(t)) / var),
                [-mp.pi, *[-c for c in reversed(cuts)], 0, *cuts, mp.pi],
            )
            total += mp.exp(-((rho - r) ** 2) / (2 * var)) * arc / (2 * mp.pi)
        return total / (2 * mp.pi * var * len(radii))


CIRCLES_POINTS = [
    [0.0, 0.0],
    [3.0, 0.0],
    [0.0, -1.5],
    [1.0, 1.0],
    [-2.2, 2.1],
    [7.0, 7.0],
    [30.0, -40.0],
]


@pytest.mark.parametrize("x", CIRCLES_POINTS)
def test_circles_log_density_matches_mpmath(x):
    expected = float(mp.log(circles_density_mpmath(x)))
    assert abs(datasets.get("circles").log_density(np.array([x]))[0] - expected) <= 2e-15 * abs(
        expected
    )


def test_circles_entropy_matches_the_grid_rule_and_monte_carlo():
    circles_data = datasets.get("circles")
    # −∫ p log p by the midpoint rule, spectrally accurate for smooth integrands. Where the two
    # rings' terms cross (ρ ≈ 2.25) log p bends over a width σ²/(3 − 1.5) = σ/6, hence h = σ/6.
    grid, h = midpoint_grid(((-6, 6), (-6, 6)), 0.04)
    log_p = circles_data.log_density(grid)
    assert abs(-np.sum(np.exp(log_p) * log_p) * h * h - circles_data.entropy()) < 1e-12
    neg_log_p = -circles_data.log_density(circles_data.sample(N_ENTROPY_MC, rng=11))
    se = neg_log_p.std(ddof=1) / np.sqrt(N_ENTROPY_MC)
    assert abs(neg_log_p.mean() - circles_data.entropy()) < 4 * se


def test_circles_density_integrates_to_one():
    assert (
        abs(grid_mass(datasets.get("circles").log_density, ((-6, 6), (-6, 6)), 0.06) - 1.0) < 1e-10
    )


@pytest.mark.parametrize("data", [Moons(), Circles()], ids=repr)
@pytest.mark.parametrize(
    ("x", "match"),
    [
        (np.zeros(4), r"shape \(N, 2\)"),
        (np.zeros((3, 3)), r"shape \(N, 2\)"),
        (np.array([[0.0, np.nan]]), "finite"),
        (np.array([[np.inf, 0.0]]), "finite"),
        (np.zeros((2, 2), dtype=int), "float32 or float64"),
    ],
)
def test_curve_densities_refuse_bad_input(data, x, match):
    with pytest.raises(ValueError, match=match):
        data.log_density(x)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"radii": ()}, "radii"),
        ({"radii": (1.0, -1.0)}, "radii"),
        ({"radii": (1.0, np.nan)}, "radii"),
        ({"noise": 0.0}, "noise"),
        ({"noise": np.inf}, "noise"),
    ],
)
def test_circles_refuse_bad_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Circles(**kwargs)


def test_moons_refuse_bad_noise():
    for noise in (0.0, -0.1, np.nan):
        with pytest.raises(ValueError, match="noise must be positive"):
            Moons(noise)


def moons_density_mpmath(x, noise=0.2):
    """Pr(x) of the moons by 20-digit quadrature of the θ integral, written from the sampler."""
    with mp.workdps(20):
        x0, x1, var, total = mp.mpf(x[0]), mp.mpf(x[1]), mp.mpf(noise) ** 2, 0
        for (c0, c1), sign in (((-1.0, -0.2), 1), ((1.0, 0.8), -1)):  # c ± 2 (cos θ, sin θ)

            def sq(theta, c0=c0, c1=c1, sign=sign):
                return (x0 - c0 - sign * 2 * mp.cos(theta)) ** 2 + (
                    x1 - c1 - sign * 2 * mp.sin(theta)
                ) ** 2

            # The nearest point of the arc, and the squared distance to it factored out (mp.quad's
            # tolerance is absolute); cuts around it at the widths of a peak and of an end's decay.
            phi = mp.atan2(sign * (x1 - c1), sign * (x0 - c0))
            peak = min([mp.mpf(0), mp.pi] + ([phi] if 0 <= phi <= mp.pi else []), key=sq)
            nearest = sq(peak)
            width = 1 / mp.sqrt(2 * mp.sqrt((x0 - c0) ** 2 + (x1 - c1) ** 2) / var + 1)
            cuts = {mp.mpf(0), mp.pi, peak}
            for k in (1, 4, 16):
                for step in (width, width**2):
                    cuts |= {t for t in (peak - k * step, peak + k * step) if 0 < t < mp.pi}
            arc = mp.quad(
                lambda t, sq=sq, nearest=nearest: mp.exp(-(sq(t) - nearest) / (2 * var)),
                sorted(cuts),
            )
            total += mp.exp(-nearest / (2 * var)) * arc / mp.pi
        return total / 2 / (2 * mp.pi * var)


MOONS_POINTS = [
    [0.6029, 0.542],  # on the lower moon
    [-1.0, -0.2],  # the upper moon's centre (κ = 0)
    [1.0, -0.2],  # the upper moon's right end
    [-3.0, -0.2],  # its left end
    [0.0, 0.3],  # between the moons
    [-1.0, -10.0],  # below the upper moon: both ends are nearest
    [7.0, -7.0],
    [-1.0, -100.0],
]


@pytest.mark.parametrize("x", MOONS_POINTS)
def test_moons_log_density_matches_mpmath(x):
    expected = float(mp.log(moons_density_mpmath(x)))
    assert abs(datasets.get("moons").log_density(np.array([x]))[0] - expected) <= 1e-14 * abs(
        expected
    )


def test_moons_density_integrates_to_one_and_its_entropy_is_the_grid_rule():
    moons = datasets.get("moons")
    grid, h = midpoint_grid(((-5.6, 5.6), (-4.8, 5.4)), 0.2 / 5)  # 13 σ around both half discs
    log_p = moons.log_density(grid)
    assert abs(np.exp(log_p).sum() * h * h - 1.0) < 1e-12
    assert abs(-np.sum(np.exp(log_p) * log_p) * h * h - moons.entropy()) < 1e-12


def test_moons_entropy_matches_the_quadrature_over_the_generating_variables():
    """H = (1/π) ∫ E_ε[−log Pr(c + 2 (cos θ, sin θ) + σ ε)] dθ over the upper moon (the reflection
    x ↦ c₁ + c₂ − x swaps the moons and keeps Pr), by Gauss–Legendre × Gauss–Hermite: a different
    rule from the module's, slow to converge here (8e-8 nats off with 32 × 40 × 40 nodes)."""
    t, w_t = np.polynomial.legendre.leggauss(32)
    e, w_e = np.polynomial.hermite_e.hermegauss(40)
    eps = np.stack(np.meshgrid(e, e, indexing="ij"), axis=-1).reshape(-1, 2)
    w_eps = np.outer(w_e, w_e).ravel() / w_e.sum() ** 2
    theta = 0.5 * np.pi * (1 + t)
    arc = np.array([-1.0, -0.2]) + 2.0 * np.stack([np.cos(theta), np.sin(theta)], axis=1)
    x = (arc[:, None, :] + 0.2 * eps).reshape(-1, 2)
    neg_log_p = -datasets.get("moons").log_density(x).reshape(len(t), -1)
    assert abs(0.5 * w_t @ neg_log_p @ w_eps - datasets.get("moons").entropy()) < 2e-7
