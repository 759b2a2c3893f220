import numpy as np
import pytest

from npflows.optim import Adam
from npflows.tree import flatten


def make_params():
    return {"a": np.array([1.0, -2.0]), "b": [np.array([[0.5, 3.0]])]}


def grads(a, b):
    return {"a": np.array(a), "b": [np.array([b])]}


G1 = grads([0.3, -1.0], [2.0, 0.0])
G2 = grads([-0.1, 4.0], [1.0, -5.0])


def test_first_two_steps_match_algorithm_1_by_hand():
    lr, beta1, beta2, eps = 0.01, 0.8, 0.99, 1e-8
    params = make_params()
    a, b = params["a"], params["b"][0]
    theta0 = flatten(params)
    opt = Adam(params, lr=lr, betas=(beta1, beta2), eps=eps)

    g1, g2 = flatten(G1), flatten(G2)
    m1 = (1 - beta1) * g1
    v1 = (1 - beta2) * g1**2
    theta1 = theta0 - lr * (m1 / (1 - beta1)) / (np.sqrt(v1 / (1 - beta2)) + eps)
    m2 = beta1 * m1 + (1 - beta1) * g2
    v2 = beta2 * v1 + (1 - beta2) * g2**2
    theta2 = theta1 - lr * (m2 / (1 - beta1**2)) / (np.sqrt(v2 / (1 - beta2**2)) + eps)

    opt.step(G1)
    np.testing.assert_allclose(flatten(params), theta1, rtol=1e-15, atol=0)
    # A zero gradient keeps its coordinate still at step 1 (m̂ = 0).
    assert params["b"][0][0, 1] == 3.0
    opt.step(G2)
    np.testing.assert_allclose(flatten(params), theta2, rtol=1e-15, atol=0)
    np.testing.assert_allclose(flatten(opt.m), m2, rtol=1e-15)
    np.testing.assert_allclose(flatten(opt.v), v2, rtol=1e-15)
    assert opt.t == 2
    # Updated in place: the live arrays are the ones the caller holds.
    assert params["a"] is a and params["b"][0] is b


def test_state_dict_round_trip_continues_identically():
    params_a = make_params()
    opt_a = Adam(params_a, lr=0.1)
    for g in (G1, G2, G1):
        opt_a.step(g)
    state = opt_a.state_dict()

    params_b = {"a": params_a["a"].copy(), "b": [params_a["b"][0].copy()]}
    opt_b = Adam(params_b, lr=0.1)
    opt_b.load_state_dict(state)
    state["m"]["a"][:] = 99.0  # the state holds copies, and load copied them again
    assert opt_a.m["a"][0] != 99.0 and opt_b.m["a"][0] != 99.0
    for g in (G2, G1):
        opt_a.step(g)
        opt_b.step(g)
    assert opt_b.t == opt_a.t == 5
    np.testing.assert_array_equal(flatten(params_a), flatten(params_b))


@pytest.mark.parametrize(
    "bad, match",
    [
        ({"a": np.zeros(2)}, "missing"),
        ({"a": np.zeros(2), "b": [np.zeros((1, 2))], "c": np.zeros(1)}, "unexpected"),
        ({"a": np.zeros(3), "b": [np.zeros((1, 2))]}, "shape"),
        (grads([np.nan, 0.0], [0.0, 0.0]), "NaN or inf"),
        (grads([0.0, 0.0], [np.inf, 0.0]), "NaN or inf"),
    ],
)
def test_bad_grads_are_refused_without_change(bad, match):
    params = make_params()
    opt = Adam(params)
    opt.step(G1)
    before, state = flatten(params), opt.state_dict()
    with pytest.raises(ValueError, match=match):
        opt.step(bad)
    np.testing.assert_array_equal(flatten(params), before)
    assert opt.t == state["t"] == 1
    np.testing.assert_array_equal(flatten(opt.m), flatten(state["m"]))
    np.testing.assert_array_equal(flatten(opt.v), flatten(state["v"]))


def test_bad_state_is_refused():
    opt = Adam(make_params())
    good = opt.state_dict()
    with pytest.raises(ValueError, match="non-negative integer"):
        opt.load_state_dict({**good, "t": -1})
    with pytest.raises(ValueError, match="keys"):
        opt.load_state_dict({"m": good["m"], "v": good["v"]})
    with pytest.raises(ValueError, match="shape"):
        opt.load_state_dict({**good, "v": {"a": np.zeros(2), "b": [np.zeros(2)]}})
    with pytest.raises(ValueError, match="non-negative"):
        opt.load_state_dict({**good, "v": {"a": -np.ones(2), "b": [np.zeros((1, 2))]}})


@pytest.mark.parametrize(
    "kwargs, match",
    [({"lr": 0.0}, "lr"), ({"betas": (0.9, 1.0)}, "betas"), ({"eps": -1.0}, "eps")],
)
def test_bad_hyperparameters_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Adam(make_params(), **kwargs)


def test_params_must_be_writable_floats():
    with pytest.raises(ValueError, match="float32 or float64"):
        Adam({"a": np.zeros(2, dtype=np.int64)})
    Adam({"a": np.zeros(2, dtype=np.float32)})  # float32 is an option (Layer.astype)
