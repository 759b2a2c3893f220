import numpy as np
import pytest
from scipy import integrate, stats

import npflows as nf
from npflows.testing import check_vjp
from npflows.transformers import AffineTransformer
from npflows.tree import leaves, tree_map


def affine_flow(dim, rng):
    layer = nf.Elementwise(dim, AffineTransformer(clamp=None))
    layer.params["theta"][...] = rng.normal(size=(dim, 2))
    return nf.Flow([layer]), layer.params["theta"]


def test_log_prob_of_an_affine_flow_is_the_gaussian_it_makes():
    # x = z·e^s + t with z ~ N(0, 1) is N(t, e^{2s}): this pins the sign of every log-det.
    flow, theta = affine_flow(3, np.random.default_rng(0))
    x = np.random.default_rng(1).normal(size=(7, 3))
    expected = stats.norm.logpdf(x, loc=theta[:, 0], scale=np.exp(theta[:, 1])).sum(axis=1)
    np.testing.assert_allclose(flow.log_prob(x), expected, rtol=1e-13)


def test_sample_and_log_prob_agrees_with_log_prob():
    flow = nf.Flow([affine_flow(2, np.random.default_rng(2))[0], nf.LeakyReLU(2), nf.Sigmoid(2)])
    x, log_p = flow.sample_and_log_prob(50, rng=3)
    np.testing.assert_allclose(flow.log_prob(x), log_p, rtol=1e-10, atol=1e-10)


def test_same_seed_same_samples_and_rng_types():
    flow, _ = affine_flow(2, np.random.default_rng(4))
    np.testing.assert_array_equal(flow.sample(5, rng=7), flow.sample(5, rng=7))
    np.testing.assert_array_equal(
        flow.sample(5, rng=np.random.default_rng(7)), flow.sample(5, rng=7)
    )
    with pytest.raises(ValueError, match="rng"):
        flow.sample(5, rng=np.random.RandomState(0))
    with pytest.raises(ValueError, match="non-negative integer"):
        flow.sample(-1)


def test_nll_and_grad_matches_central_differences():
    rng = np.random.default_rng(5)
    flow = nf.Flow(
        [affine_flow(2, rng)[0], nf.LeakyReLU(2, alpha=0.5), affine_flow(2, rng)[0], nf.Sigmoid(2)]
    )
    x = flow.sample(20, rng=6)
    nll, grads = flow.nll_and_grad(x)
    np.testing.assert_allclose(nll, -flow.log_prob(x).mean(), rtol=1e-14)
    direction = tree_map(lambda p: rng.normal(size=p.shape), flow.params)

    def nll_at(step):
        for p, d in zip(leaves(flow.params), leaves(direction), strict=True):
            p += step * d
        value = -flow.log_prob(x).mean()
        for p, d in zip(leaves(flow.params), leaves(direction), strict=True):
            p -= step * d
        return value

    eps = 1e-6
    numeric = (nll_at(eps) - nll_at(-eps)) / (2 * eps)
    analytic = sum(np.sum(g * d) for g, d in zip(leaves(grads), leaves(direction), strict=True))
    np.testing.assert_allclose(analytic, numeric, rtol=1e-7)


def test_flow_vjps_cover_every_layer():
    rng = np.random.default_rng(8)
    flow = nf.Flow([affine_flow(2, rng)[0], nf.LeakyReLU(2), affine_flow(2, rng)[0]])
    z = rng.normal(size=(4, 2)) + 0.1
    check_vjp(flow.forward_vjp, z, flow.params)
    check_vjp(flow.inverse_vjp, flow.forward(z)[0], flow.params)


def test_params_are_live_arrays():
    flow, theta = affine_flow(1, np.random.default_rng(9))
    x = np.array([[0.3]])
    before = flow.log_prob(x)
    flow.params["layers"][0]["theta"][0, 0] += 1.0
    assert flow.log_prob(x) != before and theta[0, 0] == flow.params["layers"][0]["theta"][0, 0]


def test_density_of_a_1d_flow_integrates_to_one():
    flow = nf.Flow([affine_flow(1, np.random.default_rng(10))[0], nf.LeakyReLU(1, alpha=0.4)])
    density = lambda t: float(np.exp(flow.log_prob(np.array([[t]]))[0]))  # noqa: E731
    total = sum(
        integrate.quad(density, a, b, epsabs=1e-12)[0] for a, b in ((-np.inf, 0), (0, np.inf))
    )
    assert abs(total - 1.0) < 1e-6


def test_density_of_a_2d_flow_integrates_to_one_on_a_grid():
    # A smooth density (no leaky-ReLU kink), so the trapezoid rule converges as h².
    rng = np.random.default_rng(11)
    (first, theta1), (last, theta2) = affine_flow(2, rng), affine_flow(2, rng)
    theta1 *= 0.3
    theta2 *= 0.3
    flow = nf.Flow([first, nf.Sigmoid(2, -1.0, 2.0), nf.Logit(2, -1.0, 2.0), last, nf.Sigmoid(2)])
    t = np.linspace(0.0, 1.0, 801)[1:-1]
    xx, yy = np.meshgrid(t, t)
    p = np.exp(flow.log_prob(np.column_stack([xx.ravel(), yy.ravel()]))).reshape(xx.shape)
    total = integrate.trapezoid(integrate.trapezoid(p, t, axis=1), t)
    assert abs(total - 1.0) < 1e-4


def test_empty_batch_and_refusals():
    flow, _ = affine_flow(2, np.random.default_rng(12))
    assert flow.log_prob(np.zeros((0, 2))).shape == (0,)
    with pytest.raises(ValueError, match="no rows"):
        flow.nll_and_grad(np.zeros((0, 2)))
    with pytest.raises(ValueError, match="not conditional"):
        flow.log_prob(np.zeros((1, 2)), context=np.zeros((1, 1)))
    with pytest.raises(ValueError, match=r"shape \(N, 2\)"):
        flow.log_prob(np.zeros((3, 3)))
    with pytest.raises(ValueError, match="same dim"):
        nf.Flow([nf.LeakyReLU(2), nf.LeakyReLU(3)])
    with pytest.raises(ValueError, match="at least one layer"):
        nf.Flow([])


def test_out_of_support_data_is_a_clear_error():
    flow = nf.Flow([nf.LeakyReLU(1), nf.Sigmoid(1)])
    with pytest.raises(ValueError, match=r"strictly inside \(0.0, 1.0\)"):
        flow.log_prob(np.array([[0.5], [1.0]]))


def test_density_of_a_trained_2d_spline_flow_integrates_to_one():
    from npflows.flows import NSF

    rng = np.random.default_rng(13)
    x = np.concatenate([rng.normal(-1.5, 0.5, (500, 2)), rng.normal(1.0, 0.7, (500, 2))])
    flow = NSF(2, n_layers=2, bins=6, bound=4.0, hidden=(16,), rng=0)
    nf.fit(flow, x, epochs=10, batch_size=100, lr=1e-2, rng=0, progress=False)
    assert flow.nll_and_grad(x)[0] < nf.Flow([nf.Diagonal(2)]).nll_and_grad(x)[0]  # it learned
    t = np.linspace(-9.0, 9.0, 451)
    xx, yy = np.meshgrid(t, t)
    p = np.exp(flow.log_prob(np.column_stack([xx.ravel(), yy.ravel()]))).reshape(xx.shape)
    assert abs(integrate.trapezoid(integrate.trapezoid(p, t, axis=1), t) - 1.0) < 1e-4


@pytest.mark.parametrize("n", [np.inf, True, 2.5, "3", None, -1])
def test_a_bad_sample_count_is_refused_naming_it(n):
    flow, _ = affine_flow(2, np.random.default_rng(14))
    for method in (flow.sample, flow.sample_and_log_prob):
        # A bool or a non-number is a TypeError, another number a ValueError (layer.check_int).
        with pytest.raises((TypeError, ValueError), match="n must be a non-negative integer"):
            method(n, rng=0)
    assert flow.sample(np.int64(3), rng=0).shape == (3, 2)


def test_flow_arguments_are_checked_by_name():
    with pytest.raises(TypeError, match="layers must be a list"):
        nf.Flow(nf.LeakyReLU(2))
    with pytest.raises(TypeError, match=r"layers\[1\] must be a Layer"):
        nf.Flow([nf.LeakyReLU(2), "LeakyReLU"])
    with pytest.raises(TypeError, match="base must be a density"):
        nf.Flow([nf.LeakyReLU(2)], base="normal")
    with pytest.raises(ValueError, match="rng"):
        nf.Flow([nf.LeakyReLU(2)]).sample(2, rng=1.5)
    conditional = nf.Flow([nf.Coupling(2, AffineTransformer(), context_dim=1, rng=0)])
    with pytest.raises(ValueError, match="context"):
        conditional.sample(3, rng=0)  # checked before any work
    with pytest.raises(ValueError, match="3 rows"):
        conditional.sample(3, rng=0, context=np.zeros((2, 1)))
    with pytest.raises(ValueError, match="context must be finite"):
        conditional.log_prob(np.zeros((1, 2)), context=np.full((1, 1), np.nan))


@pytest.mark.parametrize("factory", [nf.flows.RealNVP, nf.flows.NICE, nf.flows.MAF, nf.flows.IAF])
@pytest.mark.parametrize("n_layers", [True, np.inf, 2.5, 0])
def test_flow_factories_refuse_a_bad_layer_count_by_name(factory, n_layers):
    with pytest.raises((TypeError, ValueError), match="n_layers must be a positive integer"):
        factory(2, n_layers=n_layers, hidden=(4,), rng=0)


@pytest.mark.parametrize("one", [[0.5, -1.0], [[0.5, -1.0]]])
def test_one_context_row_is_used_for_every_sample(one):
    flow = nf.flows.RealNVP(2, n_layers=2, hidden=(8,), context_dim=2, rng=0)
    every = np.tile([[0.5, -1.0]], (5, 1))
    x = flow.sample(5, rng=3, context=one)
    assert x.shape == (5, 2) and np.array_equal(x, flow.sample(5, rng=3, context=every))
    x2, log_p = flow.sample_and_log_prob(5, rng=3, context=np.asarray(one))
    assert np.array_equal(x2, x)
    np.testing.assert_allclose(log_p, flow.log_prob(x, context=every), rtol=1e-10, atol=1e-10)
    assert flow.sample(0, rng=3, context=one).shape == (0, 2)
    with pytest.raises(ValueError, match="context must have shape"):
        flow.sample(5, rng=3, context=[0.5, -1.0, 2.0])
    with pytest.raises(ValueError, match="5 rows"):
        flow.sample(5, rng=3, context=np.zeros((2, 2)))
