"""Planar, radial and contractive residual layers: round trips, exact log-dets and their gradients,
the stochastic log-det estimators against the exact one, and the contraction certificate."""

from __future__ import annotations

import numpy as np
import pytest
from registry import perturbed

import npflows as nf
from npflows.layers import lipschitz_bound, residual_logdet
from npflows.lipschitz import ContractiveNet, top_singular
from npflows.testing import check_vjp, jacobian_fd
from npflows.tree import leaves, tree_map


def block(dim, rng=0, hidden=(16, 16), scale=0.5, **options):
    """A residual block at Lipschitz 0.9 with every parameter moved off its initial value."""
    generator = np.random.default_rng(rng)
    layer = nf.ResidualBlock(dim, hidden, lipschitz=0.9, rng=generator, **options)
    return perturbed(layer, generator, scale)


def relative(a, b):
    return float(np.max(np.abs(a - b)) / max(1.0, float(np.max(np.abs(b)))))


def fd_param_grad(fn, params, direction, eps=1e-6):
    """Central difference of the scalar fn() along ``direction`` (a tree like params)."""
    saved = tree_map(np.copy, params)
    values = []
    for sign in (1.0, -1.0):
        for p, d, p0 in zip(leaves(params), leaves(direction), leaves(saved), strict=True):
            p[...] = p0 + sign * eps * d
        values.append(fn())
    for p, p0 in zip(leaves(params), leaves(saved), strict=True):
        p[...] = p0
    return (values[0] - values[1]) / (2 * eps)


def tree_dot(a, b):
    return sum(float(np.sum(x * y)) for x, y in zip(leaves(a), leaves(b), strict=True))


@pytest.mark.parametrize(
    "make",
    [
        lambda rng: perturbed(nf.Planar(4, rng=rng), rng, 1.0),
        lambda rng: perturbed(nf.Radial(4, rng=rng), rng, 1.0),
        lambda rng: block(4, rng, activation="lipswish"),
        lambda rng: block(4, rng, activation="elu"),
    ],
    ids=["planar", "radial", "residual-lipswish", "residual-elu"],
)
def test_round_trip_to_1e_12_relative(make):
    rng = np.random.default_rng(11)
    layer = make(rng)
    z = 3.0 * rng.standard_normal((2000, 4))
    x = layer.forward(z)[0]
    assert relative(layer.inverse(x)[0], z) <= 1e-12
    assert relative(layer.forward(layer.inverse(x)[0])[0], x) <= 1e-12


def test_planar_constraint_uses_the_squared_norm():
    layer = nf.Planar(3, rng=0)
    layer.params["u"][:] = -50.0 * layer.params["w"]  # wᵀu ≪ −1: without the fix, not invertible
    u_hat = layer._constrained()[0]
    w = layer.params["w"]
    s = w @ layer.params["u"]
    assert w @ u_hat == pytest.approx(np.logaddexp(0.0, s) - 1.0, abs=1e-12)
    assert w @ u_hat > -1.0
    z = np.random.default_rng(1).standard_normal((500, 3))
    x, log_det = layer.forward(z)
    assert np.all(np.isfinite(log_det))
    np.testing.assert_allclose(layer.inverse(x)[0], z, atol=1e-9)


def test_radial_inverse_without_cancellation_when_beta_is_near_minus_alpha():
    layer = nf.Radial(2, rng=0)
    layer.params["beta_raw"][:] = -30.0  # α + β = softplus(−30) ≈ 9e-14: a near-singular centre
    layer.params["z0"][:] = 0.0  # so that x keeps the tiny offsets from z₀ exactly
    z = np.array([[1e-3, 0.0], [0.0, 2.0], [5.0, -5.0], [1e-9, 1e-9]])
    x, log_det = layer.forward(z)
    z_back, log_det_inverse = layer.inverse(x)
    np.testing.assert_allclose(z_back, z, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(log_det_inverse, -log_det, rtol=1e-12)


@pytest.mark.parametrize("dim", [2, 3, 5])
@pytest.mark.parametrize("activation", ["lipswish", "elu"])
def test_exact_log_det_and_its_parameter_gradient(dim, activation):
    layer = block(dim, dim, activation=activation)
    x = np.random.default_rng(dim).standard_normal((6, dim))
    z, log_det, pullback = layer.inverse_vjp(x)
    _, fd_log_det = np.linalg.slogdet(jacobian_fd(layer.inverse, x))
    np.testing.assert_allclose(log_det, fd_log_det, rtol=1e-7, atol=1e-8)
    _, grads = pullback(np.zeros_like(z), np.ones(len(x)))
    direction = tree_map(lambda p: np.random.default_rng(5).standard_normal(p.shape), grads)
    numeric = fd_param_grad(lambda: float(layer.inverse(x)[1].sum()), layer.params, direction)
    assert tree_dot(grads, direction) == pytest.approx(numeric, rel=1e-6, abs=1e-8)


def test_series_gradient_is_the_derivative_of_its_estimate_at_fixed_probes():
    layer = block(3, 1, logdet="series", n_terms=6, n_probes=2)
    x = np.random.default_rng(2).standard_normal((5, 3))

    def fixed_probes(h):
        layer.estimator_rng = np.random.default_rng(7)
        return layer.inverse_vjp(h)

    check_vjp(fixed_probes, x, layer.params)

    def fixed_probes_forward(h):
        layer.estimator_rng = np.random.default_rng(8)
        return layer.forward_vjp(h)

    check_vjp(fixed_probes_forward, x, layer.params)


def test_same_seed_same_numbers():
    x = np.random.default_rng(3).standard_normal((4, 3))
    for logdet in ("series", "roulette"):
        a, b = block(3, 9, logdet=logdet), block(3, 9, logdet=logdet)
        first = [a.inverse(x)[1] for _ in range(3)]
        second = [b.inverse(x)[1] for _ in range(3)]
        np.testing.assert_array_equal(first, second)
        assert not np.array_equal(first[0], first[1])  # fresh probes on every call


def _exact_grads(layer, x):
    exact = nf.ResidualBlock(
        layer.dim, layer.hidden, activation=layer.activation, lipschitz=layer.lipschitz, rng=0
    )
    exact.params = layer.params
    _, log_det, pullback = exact.inverse_vjp(x)
    grad_x, grads = pullback(np.zeros_like(x), np.ones(len(x)))
    return log_det, grad_x, grads


def strongly_contracting_linear_block(dim, **options):
    """g(x) = W̃x + b with W = 0.85 · (random orthogonal): every eigenvalue of J has modulus 0.85, so
    many series terms matter. Geometric p = 0.25 keeps the roulette variance finite (0.85² < 0.75)."""
    layer = nf.ResidualBlock(dim, (), lipschitz=0.95, count_param=0.25, rng=dim, **options)
    orthogonal = np.linalg.qr(np.random.default_rng(dim).standard_normal((dim, dim)))[0]
    layer.params["weights"][0][:] = 0.85 * orthogonal
    layer.params["biases"][0][:] = 0.3
    return layer


@pytest.mark.parametrize("dim", [2, 3, 5])
@pytest.mark.parametrize("kind", ["network", "linear-0.85"])
def test_roulette_is_unbiased_for_the_log_det_and_its_gradient(dim, kind):
    if kind == "network":  # two hidden LipSwish layers, the default count Geometric(0.5)
        layer = block(dim, 20 + dim, logdet="roulette")
    else:
        layer = strongly_contracting_linear_block(dim, logdet="roulette")
    point = np.random.default_rng(dim).standard_normal((1, dim))
    exact_log_det, exact_grad_x, exact_grads = _exact_grads(layer, point)
    n_batches, rows = 50, 200  # 10⁴ draws, vectorized as identical rows
    x = np.repeat(point, rows, axis=0)
    direction = tree_map(lambda p: np.random.default_rng(1).standard_normal(p.shape), exact_grads)
    log_dets, grads_x, param_grads = [], [], []
    for _ in range(n_batches):
        z, log_det, pullback = layer.inverse_vjp(x)
        grad_x, grads = pullback(np.zeros_like(z), np.ones(rows))
        log_dets.append(log_det)
        grads_x.append(grad_x)
        param_grads.append(tree_dot(grads, direction) / rows)  # the batch's mean along direction
    log_dets, grads_x = np.concatenate(log_dets), np.concatenate(grads_x)

    def within_4_se(samples, exact):
        mean, se = samples.mean(axis=0), samples.std(axis=0, ddof=1) / np.sqrt(len(samples))
        assert np.all(np.abs(mean - exact) <= 4 * se), (mean, exact, se)

    within_4_se(log_dets, exact_log_det[0])
    within_4_se(grads_x, exact_grad_x[0])
    within_4_se(np.array(param_grads), tree_dot(exact_grads, direction))


def test_series_bias_is_within_its_bound_and_shrinks():
    layer = block(3, 4, logdet="series")
    x = np.random.default_rng(4).standard_normal((8, 3))
    net = ContractiveNet(
        x,
        layer.normalized_weights()[0],
        layer.params["biases"],
        "lipswish",
        layer.params["beta_raw"],
    )
    exact = residual_logdet.exact(net)[0]
    # Probes √D e_i make the Hutchinson average exact: the expected value of the series estimate.
    basis = np.broadcast_to(np.sqrt(3) * np.eye(3), (8, 3, 3))
    lip = lipschitz_bound(layer)
    biases = []
    for n in (1, 2, 4, 8, 16, 32):
        bias = np.abs(residual_logdet.series(net, basis, n)[0] - exact).max()
        bound = 3 * (-np.log1p(-lip) - sum(lip**k / k for k in range(1, n + 1)))
        assert bias <= bound
        biases.append(bias)
    assert biases[-1] < 1e-6 * biases[0] and biases[-1] < biases[2] < biases[0]
    # and the layer's own Monte Carlo estimate agrees with that expectation
    layer.n_terms = 8
    draws = layer.inverse(np.repeat(x[:1], 20_000, axis=0))[1]
    expected = residual_logdet.series(net, basis, 8)[0][0]
    assert abs(draws.mean() - expected) <= 4 * draws.std() / np.sqrt(len(draws))


def test_generative_direction_raises_with_the_residual_when_max_iter_is_too_small():
    layer = block(3, 5, max_iter=2)
    z = np.random.default_rng(0).standard_normal((4, 3))
    with pytest.raises(nf.ConvergenceError, match=r"residual ‖x \+ g\(x\) − z‖∞ = \d"):
        layer.forward(z)
    x, history = layer.solve(z, max_iter=1000)
    assert history[-1] <= 1e-14 * (1 + np.abs(z).max())
    # Banach: ‖r_{t+1}‖₂ ≤ Lip(g) ‖r_t‖₂ for r_t = x_t + g(x_t) − z; history holds max-norms.
    steps = np.array(history[1:6]) / np.array(history[0:5])
    assert len(history) > 6 and np.all(steps <= lipschitz_bound(layer) * np.sqrt(3))


def test_lipschitz_bound_stays_below_one_while_training():
    flow = nf.Flow([nf.ResidualBlock(2, (32, 32), lipschitz=0.9, rng=0) for _ in range(2)])
    x = nf.datasets.get("moons").sample(256, rng=0)
    x = (x - x.mean(0)) / x.std(0)
    optimizer = nf.optim.Adam(flow.params, lr=0.05)  # a large step, to push against the constraint
    bounds = []
    for _ in range(40):
        _, grads = flow.nll_and_grad(x)
        optimizer.step(grads)
        bounds.append([lipschitz_bound(layer) for layer in flow.layers])
    bounds = np.array(bounds)
    assert np.all(bounds < 1.0) and np.all(bounds <= 0.9**3 * (1 + 1e-12))
    assert bounds.max() > 0.5  # the weights did grow against the normalization


def test_power_iteration_under_estimates_until_converged():
    layer = block(3, 6, hidden=(16,), spectral_norm="power", n_power_iterations=1)
    W = layer.params["weights"][0]
    exact = top_singular(W)[0]
    estimates = []
    for _ in range(30):
        estimates.append(top_singular(W, layer.power_vectors[0])[0])
        layer.inverse_vjp(np.zeros((1, 3)))  # a training call advances the vectors
    assert all(e <= exact * (1 + 1e-12) for e in estimates)
    assert estimates[0] < exact and estimates[-1] == pytest.approx(exact, rel=1e-8)


def test_power_iteration_gradient_at_fixed_vectors():
    layer = block(3, 7, hidden=(8,), spectral_norm="power", n_power_iterations=0)
    x = np.random.default_rng(1).standard_normal((4, 3))
    check_vjp(layer.inverse_vjp, x, layer.params)


def test_bad_arguments_are_refused():
    for kwargs in (
        {"lipschitz": 1.0},
        {"logdet": "taylor"},
        {"activation": "relu"},
        {"n_terms": 0},
        {"count": "uniform"},
        {"count_param": 1.5},
        {"spectral_norm": "approx"},
        {"hidden": (0,)},
        {"hidden": (True,)},
        {"max_iter": 2.5},
        {"tol": float("nan")},
        {"power_vectors": [[1.0]] * 3},
        {"spectral_norm": "power", "hidden": (2,), "power_vectors": [[0.0, 0.0], [1.0, 0.0]]},
        {"spectral_norm": "power", "hidden": (2,), "power_vectors": [[1.0, 0.0]]},
    ):
        with pytest.raises(ValueError):
            nf.ResidualBlock(2, **kwargs)
    for cls in (nf.Planar, nf.Radial, nf.ResidualBlock):
        for dim in (True, 0, 2.5, "3"):
            with pytest.raises(ValueError, match="dim must be a positive integer"):
                cls(dim)
    with pytest.raises(TypeError):
        lipschitz_bound(nf.Planar(2))


def test_stacks_sample_and_score():
    rng = np.random.default_rng(0)
    for flow in (
        nf.flows.PlanarFlow(2, n_layers=4, rng=0),
        nf.flows.RadialFlow(2, n_layers=4, rng=0),
        nf.flows.ResidualFlow(2, n_layers=2, hidden=(8,), rng=0),
    ):
        for leaf in leaves(flow.params):
            leaf += 0.3 * rng.standard_normal(leaf.shape)
        x, log_prob = flow.sample_and_log_prob(50, rng=1)
        np.testing.assert_allclose(flow.log_prob(x), log_prob, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize(
    "make",
    [lambda: nf.Planar(3, rng=0), lambda: nf.Radial(3, rng=0), lambda: block(3, 0)],
    ids=["planar", "radial", "residual"],
)
def test_huge_inputs_give_finite_results_or_a_clear_error(make):
    layer = make()
    h = np.array([[1e150, -1e150, 3.0], [1e-300, 5e-324, 0.0]])
    for method in (layer.forward, layer.inverse):
        out, log_det = method(h)
        assert np.all(np.isfinite(out)) and np.all(np.isfinite(log_det))
        with pytest.raises(ValueError, match=r"\|entries\| ≤ 1e\+150, but .*\[0, 0\] = 1e\+200"):
            method(np.array([[1e200, 0.0, 0.0]]))


@pytest.mark.parametrize(
    "args",
    [
        ["fit", "--data", "moons", "--flow", "resflow", "--layers", "2", "--hidden", "8"],
        ["fit-density", "--target", "ring", "--flow", "planar", "--layers", "4"],
        ["fit-density", "--target", "ring", "--flow", "radial", "--layers", "4"],
        ["fit-density", "--target", "ring", "--flow", "resflow", "--layers", "2", "--hidden", "8"],
    ],
    ids=["fit-resflow", "fit-density-planar", "fit-density-radial", "fit-density-resflow"],
)
def test_the_command_line_trains_and_saves_residual_flows(args, tmp_path, capsys):
    from npflows import cli

    budget = ["--epochs", "1", "--n-train", "500"] if args[0] == "fit" else ["--steps", "20"]
    out = tmp_path / "run"
    assert cli.main([*args, *budget, "--no-progress", "--out", str(out)]) == 0
    flow = nf.load(out / "model.npz")
    kinds = {type(layer).__name__ for layer in flow.layers}
    assert kinds & {"Planar", "Radial", "ResidualBlock"}
    x = flow.sample(20, rng=0)
    assert np.all(np.isfinite(flow.log_prob(x)))
