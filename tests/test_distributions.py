import numpy as np
import pytest
from scipy import stats

from npflows import StandardNormal


def test_log_prob_matches_scipy():
    z = np.random.default_rng(0).normal(size=(6, 3))
    expected = stats.multivariate_normal(np.zeros(3), np.eye(3)).logpdf(z)
    np.testing.assert_allclose(StandardNormal(3).log_prob(z), expected, rtol=1e-14)


def test_log_prob_vjp_is_minus_z():
    z = np.random.default_rng(1).normal(size=(4, 2))
    _, pullback = StandardNormal(2).log_prob_vjp(z)
    grad_z, grads = pullback(np.full(4, 2.0))
    np.testing.assert_array_equal(grad_z, -2.0 * z)
    assert grads == {}


def test_sampling_is_seeded_and_checked():
    base = StandardNormal(2)
    np.testing.assert_array_equal(base.sample(3, rng=5), base.sample(3, rng=5))
    assert base.sample(0).shape == (0, 2)
    with pytest.raises(ValueError, match="non-negative"):
        base.sample(2.5)
    with pytest.raises(ValueError, match="positive integer"):
        StandardNormal(0)


def test_entropy():
    assert StandardNormal(2).entropy() == pytest.approx(
        stats.multivariate_normal(np.zeros(2)).entropy()
    )
