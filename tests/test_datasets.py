"""Built-in data sets: sampling, the exact density, its entropy, and lookup by name."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import integrate, stats

from npflows import datasets
from npflows.datasets import BIMODAL, GaussianMixture1D

N_MC = 200_000  # Monte-Carlo sample size for the moment and entropy checks


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
            w * stats.norm.pdf(x[:, 0], m, s)
            for w, m, s in zip(BIMODAL.weights, BIMODAL.means, BIMODAL.sds, strict=True)
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
    w, mu, sd = BIMODAL.weights, BIMODAL.means, BIMODAL.sds
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
    mixture = GaussianMixture1D(weights=(0.5, 0.5), means=(3.0, 3.0), sds=(0.2, 0.2))
    assert abs(mixture.entropy() - 0.5 * np.log(2 * np.pi * np.e * 0.2**2)) < 1e-10
    assert mixture.entropy() == mixture.entropy()  # cached


@pytest.mark.parametrize(
    ("weights", "means", "sds", "match"),
    [
        ((0.5, 0.6), (0.0, 1.0), (1.0, 1.0), "sum to 1"),
        ((1.0,), (0.0, 1.0), (1.0, 1.0), "one length"),
        ((0.5, 0.5), (0.0, 1.0), (1.0, 0.0), "sds must be positive"),
        ((0.5, 0.5), (0.0, np.inf), (1.0, 1.0), "finite"),
    ],
)
def test_mixture_refuses_bad_parameters(weights, means, sds, match):
    with pytest.raises(ValueError, match=match):
        GaussianMixture1D(weights, means, sds)


def test_get_by_name():
    assert datasets.get("bimodal") is BIMODAL
    with pytest.raises(ValueError, match="unknown dataset 'moons'; choose one of: bimodal"):
        datasets.get("moons")
