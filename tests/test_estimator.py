import numpy as np
import pytest
from scipy import integrate

import npflows as nf
from npflows.estimator import FlowDensity, NotFittedError


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
    with pytest.raises(ValueError, match="flow must be 'auto' or one of"):
        small(flow="glow").fit(data(100))
    with pytest.raises(ValueError, match="Expected 2D array, got 1D array"):
        small().fit(np.zeros(10))
    est = small(epochs=1).fit(data(100))
    with pytest.raises(ValueError, match="X has 3 features, but FlowDensity is expecting 2"):
        est.score_samples(np.zeros((3, 3)))


def test_flow_is_a_density_of_the_data_itself():
    X = data(500) * 10 + 50
    est = small(epochs=2).fit(X)
    np.testing.assert_array_equal(est.flow_.log_prob(X[:9]), est.score_samples(X[:9]))
    assert isinstance(est.flow_.layers[-1], nf.Standardize) and est.flow_.layers[-1].params == {}
    np.testing.assert_allclose(est.mean_, X.mean(axis=0), rtol=1e-13)
    np.testing.assert_allclose(est.scale_, X.std(axis=0), rtol=1e-13)
    s = est.flow_.sample(3000, rng=0)
    assert abs(s[:, 0].mean() - X[:, 0].mean()) < 0.05 * X[:, 0].std()


def test_standardize_false_trains_the_builder_flow_on_the_raw_data():
    X = np.random.default_rng(0).normal(size=(300, 2))
    est = small(epochs=1, standardize=False).fit(X)
    assert not any(isinstance(la, nf.Standardize) for la in est.flow_.layers)
    np.testing.assert_array_equal(est.mean_, 0)
    np.testing.assert_array_equal(est.scale_, 1)


@pytest.mark.parametrize("a", [1e-4, 1e4])
def test_fitting_is_scale_equivariant(a):
    X = nf.datasets.get("moons").sample(800, rng=0)
    base = small(epochs=3).fit(X).score(X)
    assert small(epochs=3).fit(a * X).score(a * X) == pytest.approx(base - 2 * np.log(a), abs=1e-6)


@pytest.mark.parametrize("a", [1e-200, 1e200])
def test_extreme_scales_give_correct_and_distinct_log_densities(a):
    X = data(400)
    reference = small(epochs=2).fit(X).score_samples(X[:50])
    scores = small(epochs=2).fit(a * X).score_samples(a * X[:50])
    assert np.all(np.isfinite(scores)) and len(np.unique(scores)) == 50
    np.testing.assert_allclose(scores, reference - 2 * np.log(a), rtol=1e-9)


def test_a_constant_feature_and_too_few_samples_are_refused_clearly():
    X = np.column_stack([np.random.default_rng(0).normal(size=300), np.full(300, 0.3)])
    with pytest.raises(ValueError, match=r"column 2 of the data is \(nearly\) constant"):
        small().fit(X)
    with pytest.raises(ValueError, match="at least 3 samples to fit, got n_samples = 2"):
        small().fit(np.ones((2, 2)))


def test_one_feature_works_with_the_default_flow_and_is_explained_otherwise():
    X = np.random.default_rng(0).normal(size=(200, 1))
    est = FlowDensity(epochs=2, random_state=0).fit(X)
    assert est.score_samples(X[:4]).shape == (4,)
    with pytest.raises(ValueError, match="cannot model n_features = 1"):
        small().fit(X)


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda est: est.score_samples(None), TypeError, "X must be an array-like"),
        (lambda est: est.score_samples([[1 + 2j, 0]]), ValueError, "Complex data not supported"),
        (lambda est: est.score_samples([[np.nan, 0]]), ValueError, "Input X contains NaN"),
        (lambda est: est.score_samples([[np.inf, 0]]), ValueError, "Input X contains infinity"),
        (lambda est: est.score_samples(np.zeros((0, 2))), ValueError, "0 sample"),
        (lambda est: est.score_samples([["a", "b"]]), TypeError, "dtype <U1"),
        (lambda est: est.sample(np.inf), TypeError, "n_samples must be an integer"),
        (lambda est: est.sample(True), TypeError, "n_samples must be an integer"),
        (lambda est: est.sample(2.0), TypeError, "n_samples must be an integer"),
        (lambda est: est.sample(-1), ValueError, "n_samples must be non-negative"),
    ],
)
def test_bad_arguments_name_the_argument(call, error, message):
    est = small(epochs=1).fit(data(100))
    with pytest.raises(error, match=message):
        call(est)


def test_integer_and_object_input_is_converted_like_scikit_learn_does():
    X = np.random.default_rng(0).integers(-50, 50, size=(200, 2))
    est = small(epochs=1).fit(X)
    np.testing.assert_array_equal(est.score_samples(X[:5]), est.score_samples(X[:5].astype(float)))
    np.testing.assert_array_equal(est.score_samples(X[:5].astype(object)), est.score_samples(X[:5]))


def test_unfitted_use_raises_not_fitted_error():
    for call in (lambda e: e.score_samples(np.zeros((1, 2))), lambda e: e.sample(1)):
        with pytest.raises(NotFittedError, match="not fitted yet"):
            call(small())
    assert issubclass(NotFittedError, ValueError) and issubclass(NotFittedError, AttributeError)


def test_a_failed_refit_leaves_the_previous_fit_intact():
    est = small(epochs=1).fit(data(200))
    before = est.flow_, est.mean_, est.score_samples(data(5, seed=2))
    with pytest.raises(ValueError, match="constant"):
        est.fit(np.column_stack([np.arange(300.0), np.ones(300)]))
    with pytest.raises(ValueError, match="at least 3 samples"):
        est.fit(np.ones((2, 2)))
    assert est.flow_ is before[0] and est.mean_ is before[1] and est.n_features_in_ == 2
    np.testing.assert_array_equal(est.score_samples(data(5, seed=2)), before[2])


@pytest.mark.parametrize(
    ("params", "error", "message"),
    [
        ({"hidden": 64}, TypeError, "hidden must be a sequence of positive integers, got 64"),
        ({"hidden": "64"}, TypeError, "hidden must be a sequence"),
        ({"hidden": (16, 0)}, ValueError, "hidden must be a sequence of positive integers"),
        ({"hidden": (16.0,)}, ValueError, "hidden must be a sequence of positive integers"),
        ({"flow_kwargs": "x"}, TypeError, "flow_kwargs must be None or a dict"),
        ({"flow_kwargs": {"hidden": (3,)}}, ValueError, r"flow_kwargs must not hold \['hidden'\]"),
        ({"standardize": "no"}, TypeError, "standardize must be True or False"),
        ({"progress": 1}, TypeError, "progress must be True or False"),
        ({"lr": "0.1"}, TypeError, "lr must be a number or None, got '0.1'"),
        ({"flow": 3}, ValueError, "flow must be 'auto' or one of"),
    ],
)
def test_bad_hyperparameters_are_named_at_fit(params, error, message):
    with pytest.raises(error, match=message):
        small(**params).fit(data(100))


def test_context_columns_condition_on_the_last_columns_in_raw_units():
    x = nf.datasets.get("moons").sample(2000, rng=0)
    raw = x * [1.0, 100.0] + [0.0, 1000.0]  # the context column far from standardized
    est = FlowDensity(context_columns=1, epochs=10, random_state=0).fit(raw)
    assert est.n_features_in_ == 2 and est.flow_.context_dim == 1
    np.testing.assert_allclose(est.context_mean_, raw[:, 1:].mean(axis=0))
    # The context map is folded into the flow: flow_ takes the raw context.
    log_p = est.score_samples(raw)
    np.testing.assert_array_equal(log_p, est.flow_.log_prob(raw[:, :1], context=raw[:, 1:]))
    # log p(x0 | x1) beats the marginal log p(x0) by what x1 tells about x0.
    marginal = FlowDensity(epochs=10, random_state=0).fit(raw[:, :1]).score(raw[:, :1])
    assert est.score(raw) > marginal + 0.3
    # Given x1 = -0.4 (the lower moon's bottom, x0 near 1) samples lie right of those given
    # x1 = 0.9 (the upper moon's top, x0 near 0).
    below = est.sample(400, random_state=1, context=[960.0])
    above = est.sample(400, random_state=1, context=[[1090.0]])
    assert below.shape == (400, 1) and np.median(below) > np.median(above) + 0.4
    assert np.array_equal(below, est.sample(400, random_state=1, context=np.full((400, 1), 960.0)))
    with pytest.raises(ValueError, match="conditional"):
        est.sample(3)
    with pytest.raises(ValueError, match="not conditional"):
        FlowDensity(epochs=1, random_state=0).fit(x).sample(3, context=[0.0])


def test_context_columns_are_checked_by_name():
    x = nf.datasets.get("moons").sample(50, rng=0)
    with pytest.raises(ValueError, match="leaves no data column"):
        FlowDensity(context_columns=2, epochs=1).fit(x)
    with pytest.raises(TypeError, match="context_columns"):
        FlowDensity(context_columns=1.0, epochs=1).fit(x)
    with pytest.raises(ValueError, match="takes no context"):
        FlowDensity(flow="spline", context_columns=1, epochs=1).fit(x)
    with pytest.raises(ValueError, match="column 1 of the context is"):
        FlowDensity(context_columns=1, epochs=1).fit(np.c_[x, np.ones(50)])


@pytest.mark.parametrize("name", ["nsf", "maf", "iaf-spline"])
def test_absorbed_context_map_gives_the_same_densities_on_the_raw_context(name):
    from npflows.context_map import absorb_context_map, context_map_from_data

    rng = np.random.default_rng(0)
    flow = nf.flow_names.build(name, 2, context_dim=2, hidden=(8,), rng=0)
    for leaf in nf.tree.leaves(flow.params):
        leaf += 0.1 * rng.standard_normal(leaf.shape)  # a conditioner that reads the context
    context = rng.normal([1000.0, -3.0], [50.0, 0.01], (20, 2))
    x = rng.standard_normal((20, 2))
    context_map = context_map_from_data(context)
    before = flow.log_prob(x, context=context_map.inverse(context)[0])
    absorb_context_map(flow, context_map)
    np.testing.assert_allclose(flow.log_prob(x, context=context), before, rtol=1e-9, atol=1e-9)
    assert np.abs(before - flow.log_prob(x, context=context_map.inverse(context)[0])).max() > 1e-3


def test_without_standardize_the_context_is_passed_as_is():
    x = nf.datasets.get("moons").sample(500, rng=0)
    est = FlowDensity(context_columns=1, standardize=False, epochs=2, random_state=0).fit(x)
    assert np.array_equal(est.context_mean_, [0.0]) and np.array_equal(est.context_scale_, [1.0])
    np.testing.assert_array_equal(
        est.score_samples(x[:7]), est.flow_.log_prob(x[:7, :1], context=x[:7, 1:])
    )
