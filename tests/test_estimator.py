import numpy as np
import pytest
from scipy import integrate

from npflows.estimator import FlowDensity


def data(n, seed=0):
    """A correlated, badly scaled 2-D Gaussian: the estimator must standardize and count it."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, 2))
    return np.column_stack([300 + 50 * z[:, 0], 0.01 * (z[:, 0] + z[:, 1])])


def small(**kw):
    args = dict(flow="realnvp", n_layers=2, hidden=(16,), epochs=15, random_state=0)
    return FlowDensity(**(args | kw))


def test_fit_returns_self_and_scores():
    X = data(2000)
    est = small()
    assert est.fit(X) is est
    scores = est.score_samples(X[:7])
    assert scores.shape == (7,) and np.all(np.isfinite(scores))
    assert est.score(X[:7]) == pytest.approx(scores.mean())
    # the true density's mean log-likelihood: −log(2πe) − ½ log det Σ
    cov = np.array([[2500.0, 0.5], [0.5, 2e-4]])
    true = -np.log(2 * np.pi * np.e) - 0.5 * np.linalg.slogdet(cov)[1]
    assert abs(est.score(data(2000, seed=1)) - true) < 0.1


def test_standardization_is_counted_so_the_density_integrates_to_one():
    est = small().fit(data(2000))
    a = np.linspace(300 - 400, 300 + 400, 401)
    b = np.linspace(-0.08, 0.08, 401)
    aa, bb = np.meshgrid(a, b)
    p = np.exp(est.score_samples(np.column_stack([aa.ravel(), bb.ravel()]))).reshape(aa.shape)
    assert integrate.trapezoid(integrate.trapezoid(p, a, axis=1), b) == pytest.approx(1, abs=1e-3)


def test_sampling_is_seeded_and_in_data_units():
    est = small().fit(data(2000))
    s = est.sample(5000, random_state=3)
    np.testing.assert_array_equal(s, est.sample(5000, random_state=3))
    assert abs(s[:, 0].mean() - 300) < 5 and abs(s[:, 1].std() - 0.01 * np.sqrt(2)) < 0.003


def test_get_set_params_and_clone_protocol():
    est = small(lr=3e-3)
    params = est.get_params()
    assert params["lr"] == 3e-3 and params["flow"] == "realnvp"
    clone = type(est)(**est.get_params(deep=False))  # what sklearn.base.clone does
    assert clone.get_params() == params and not hasattr(clone, "flow_")
    assert est.set_params(lr=1e-2) is est and est.lr == 1e-2
    with pytest.raises(ValueError, match="unknown parameter"):
        est.set_params(learning_rate=1)
    assert "lr=0.01" in repr(est)


def test_sklearn_clone_if_installed():
    base = pytest.importorskip("sklearn.base")
    est = small()
    assert base.clone(est).get_params() == est.get_params()


def test_same_random_state_same_model():
    X = data(500)
    a, b = small().fit(X), small().fit(X)
    np.testing.assert_array_equal(a.score_samples(X[:5]), b.score_samples(X[:5]))


def test_refusals():
    with pytest.raises(ValueError, match="not fitted"):
        small().score_samples(np.zeros((1, 2)))
    with pytest.raises(ValueError, match="flow must be one of"):
        small(flow="glow").fit(data(100))
    with pytest.raises(ValueError, match="2-D"):
        small().fit(np.zeros(10))
    est = small(epochs=1).fit(data(100))
    with pytest.raises(ValueError, match=r"shape \(N, 2\)"):
        est.score_samples(np.zeros((3, 3)))
