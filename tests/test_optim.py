import signal

import numpy as np
import pytest

from npflows import optim
from npflows.optim import Adam
from npflows.tree import flatten, tree_map


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


def mixed_params():
    """float64 and float32 leaves: Adam keeps one flat group per dtype."""
    return {"a": np.array([1.0, -2.0]), "b": [np.array([[0.5, 3.0]], dtype=np.float32)]}


def reference_step(params, g):
    """The parameters and state after one step from a fresh Adam, on copies."""
    copy = tree_map(np.copy, params)
    opt = Adam(copy, lr=0.1)
    opt.step(g)
    return flatten(copy), opt.state_dict()


def test_an_interrupt_while_computing_a_step_changes_nothing(monkeypatch):
    params = mixed_params()
    opt = Adam(params, lr=0.1)
    before = flatten(params)
    calls = []

    class InterruptingNumpy:
        """numpy, except that the second sqrt (the float32 group's) raises KeyboardInterrupt."""

        def __getattr__(self, name):
            return getattr(np, name)

        def sqrt(self, *args, **kwargs):
            calls.append(1)
            if len(calls) == 2:
                raise KeyboardInterrupt
            return np.sqrt(*args, **kwargs)

    monkeypatch.setattr(optim, "np", InterruptingNumpy())
    with pytest.raises(KeyboardInterrupt):
        opt.step(G1)
    monkeypatch.undo()
    assert len(calls) == 2 and opt.t == 0
    np.testing.assert_array_equal(flatten(params), before)
    assert not flatten(opt.m).any() and not flatten(opt.v).any()
    opt.step(G1)  # and the next step is the first step
    np.testing.assert_array_equal(flatten(params), reference_step(mixed_params(), G1)[0])


def test_ctrl_c_while_writing_a_step_is_delivered_after_the_whole_step():
    class SignalsOnWrite(np.ndarray):
        """A parameter array that sends this process SIGINT when the step writes into it."""

        def __isub__(self, other):
            signal.raise_signal(signal.SIGINT)
            return super().__isub__(other)

    params = mixed_params()
    params["a"] = params["a"].view(SignalsOnWrite)  # the first leaf written
    opt = Adam(params, lr=0.1)
    with pytest.raises(KeyboardInterrupt):
        opt.step(G1)
    expected, state = reference_step(mixed_params(), G1)
    np.testing.assert_array_equal(flatten(params), expected)  # every leaf moved, not only "a"
    assert opt.t == 1
    np.testing.assert_array_equal(flatten(opt.v), flatten(state["v"]))
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_grads_are_matched_by_key_not_by_position():
    params = {"a": np.zeros(2), "b": np.zeros(2)}
    opt_ab, opt_ba = Adam(params, lr=0.1), Adam({k: v.copy() for k, v in params.items()}, lr=0.1)
    opt_ab.step({"a": np.array([1.0, 1.0]), "b": np.array([-1.0, -1.0])})
    opt_ba.step({"b": np.array([-1.0, -1.0]), "a": np.array([1.0, 1.0])})
    np.testing.assert_array_equal(flatten(opt_ab.params), flatten(opt_ba.params))
    assert opt_ab.params["a"][0] < 0 < opt_ab.params["b"][0]


def test_decoupled_weight_decay_is_adamw():
    params = {"a": np.array([2.0, -4.0])}
    opt = Adam(params, lr=0.1, weight_decay=0.5)
    opt.step({"a": np.zeros(2)})  # m̂ = 0: only the decay acts, θ ← θ − α λ θ
    np.testing.assert_array_equal(params["a"], np.array([2.0, -4.0]) * (1 - 0.1 * 0.5))
    opt.step({"a": np.array([1.0, -1.0])})
    m_hat = 0.1 * np.array([1.0, -1.0]) / (1 - 0.9**2)
    v_hat = 0.001 * np.ones(2) / (1 - 0.999**2)
    theta = np.array([1.9, -3.8])
    expected = theta - 0.1 * m_hat / (np.sqrt(v_hat) + 1e-8) - 0.1 * 0.5 * theta
    np.testing.assert_allclose(params["a"], expected, rtol=1e-15)


def test_save_and_load_resume_identically(tmp_path):
    params_a = mixed_params()
    opt_a = Adam(params_a, lr=0.05, betas=(0.8, 0.99), weight_decay=0.01)
    for g in (G1, G2):
        opt_a.step(g)
    opt_a.save(tmp_path / "adam.npz")
    with np.load(tmp_path / "adam.npz", allow_pickle=False) as file:
        assert {"t", "lr", "m/a", "v/b/0"} <= set(file.files)
    params_b = tree_map(np.copy, params_a)
    opt_b = Adam(params_b)
    opt_b.load(tmp_path / "adam.npz")
    assert (opt_b.t, opt_b.lr, opt_b.betas, opt_b.weight_decay) == (2, 0.05, (0.8, 0.99), 0.01)
    for g in (G1, G2):
        opt_a.step(g)
        opt_b.step(g)
    np.testing.assert_array_equal(flatten(params_a), flatten(params_b))


def test_a_state_file_for_other_parameters_is_refused_without_change(tmp_path):
    opt = Adam(make_params())
    opt.step(G1)
    opt.save(tmp_path / "adam.npz")
    other = Adam({"a": np.zeros(2), "c": [np.zeros((1, 2))]})
    with pytest.raises(ValueError, match="no m entry"):
        other.load(tmp_path / "adam.npz")
    assert other.t == 0
    np.save(tmp_path / "x.npy", np.zeros(2))
    np.savez(tmp_path / "y.npz", x=np.zeros(2))
    with pytest.raises(ValueError, match="not an Adam state file"):
        other.load(tmp_path / "y.npz")


@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"lr": "0.1"}, TypeError),
        ({"betas": (0.9, "x")}, TypeError),
        ({"eps": True}, TypeError),
        ({"betas": 0.9}, ValueError),
        ({"weight_decay": -0.1}, ValueError),
    ],
)
def test_hyperparameters_of_the_wrong_type_are_named(kwargs, error):
    with pytest.raises(error, match=next(iter(kwargs))):
        Adam(make_params(), **kwargs)
