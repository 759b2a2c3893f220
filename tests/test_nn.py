"""Conditioner networks: pullbacks, initialization, and MADE's autoregressive masks."""

import numpy as np
import pytest

from npflows.nn import MADE, MLP
from npflows.testing import check_vjp
from npflows.tree import leaves


def as_vjp(net):
    """A net as a vjp function of the npflows form (no log-det), for npflows.testing.check_vjp."""

    def fn(h):
        out, pullback = net.forward_vjp(h)
        return out, np.zeros(len(h)), lambda grad_out, _: pullback(grad_out)

    return fn


def randomized(net, seed):
    rng = np.random.default_rng(seed)
    for p in leaves(net.params):
        p += 0.5 * rng.standard_normal(p.shape)
    return net


@pytest.mark.parametrize("activation", ["relu", "tanh", "elu", "silu"])
def test_mlp_pullback_matches_central_differences(activation):
    net = randomized(MLP(3, 4, (6, 5), activation, rng=0), 1)
    h = np.random.default_rng(2).normal(size=(7, 3))
    check_vjp(as_vjp(net), h, net.params)
    np.testing.assert_array_equal(net(h), net.forward_vjp(h)[0])


def test_mlp_initialization():
    net = MLP(200, 3, (400,), "relu", out_bias=[1.0, 2.0, 3.0], rng=0)
    w_hidden, w_out = net.params["weights"]
    assert np.std(w_hidden) == pytest.approx(np.sqrt(2 / 200), rel=0.02)  # Kaiming, gain √2
    assert not w_out.any()  # the output layer starts at zero ...
    out = net(np.random.default_rng(1).normal(size=(5, 200)))
    np.testing.assert_array_equal(out, np.tile([1.0, 2.0, 3.0], (5, 1)))  # ... so out = bias
    assert np.std(MLP(200, 1, (400,), "tanh", rng=0).params["weights"][0]) == pytest.approx(
        np.sqrt(1 / 200), rel=0.02
    )


def test_mlp_refusals():
    with pytest.raises(ValueError, match="activation"):
        MLP(2, 2, (3,), "sigmoid")
    with pytest.raises(ValueError, match="widths"):
        MLP(2, 2, (0,))


def moved_outputs(net, h, j, dim, P):
    """Which coordinates' output blocks change when input j is perturbed."""
    base = net(h).reshape(len(h), dim, P)
    h2 = h.copy()
    h2[:, j] += 0.7
    return np.abs(net(h2).reshape(len(h), dim, P) - base).max(axis=(0, 2)) > 0


@pytest.mark.parametrize("order", ["natural", "reversed", "random", [2, 0, 4, 1, 3]])
@pytest.mark.parametrize("context_dim", [0, 2])
def test_made_output_i_depends_only_on_earlier_inputs(order, context_dim):
    dim, P = 5, 3
    net = randomized(MADE(dim, P, (9, 11), "tanh", order, context_dim, rng=0), 1)
    rank = np.empty(dim, dtype=int)
    rank[net.order] = np.arange(dim)
    h = np.random.default_rng(2).normal(size=(4, dim + context_dim))
    for j in range(dim):
        np.testing.assert_array_equal(moved_outputs(net, h, j, dim, P), rank[j] < rank)
    for j in range(dim, dim + context_dim):  # every output block may see the context
        assert moved_outputs(net, h, j, dim, P).all()
    check_vjp(as_vjp(net), h, net.params)


def test_made_masked_weights_get_no_gradient_and_cannot_leak():
    net = randomized(MADE(3, 2, (4,), rng=0), 1)
    _, pullback = net.forward_vjp(np.ones((2, 3)))
    _, grads = pullback(np.ones((2, 6)))
    for g, m in zip(grads["weights"], net.masks, strict=True):
        assert not g[m == 0].any()
    net.params["weights"][0][...] = 1e3  # even set by hand, masked entries have no effect:
    h = np.random.default_rng(2).normal(size=(3, 3))  # the last input (natural order) moves nothing
    assert not moved_outputs(net, h, 2, 3, 2).any()


def test_made_refusals():
    with pytest.raises(ValueError, match="permutation"):
        MADE(3, 1, order=[0, 0, 1])
    with pytest.raises(ValueError, match="order"):
        MADE(3, 1, order="sorted")
    with pytest.raises(ValueError, match="params_per_dim"):
        MADE(3, 0)


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda: MLP(2, 2, (3.5,)), r"hidden\[0\]"),
        (lambda: MLP(2, 2, (True,)), r"hidden\[0\]"),
        (lambda: MLP(2, 2, "64"), "hidden must be a sequence"),
        (lambda: MLP(2, 2, 64), "hidden must be a sequence"),
        (lambda: MLP(2, 0), "out_dim"),
        (lambda: MLP(np.inf, 2), "in_dim"),
        (lambda: MLP(2, 2, activation=None), "activation"),
        (lambda: MADE(3, 1, context_dim=-1), "context_dim"),
        (lambda: MADE(3, 1, context_dim=True), "context_dim"),
        (lambda: MADE(True, 1), "dim"),
        (lambda: MADE(3, 1, order=None), "order"),
        (lambda: MADE(3, 1, order=[True, False, True]), "order"),
    ],
)
def test_bad_network_arguments_are_named(build, match):
    with pytest.raises((TypeError, ValueError), match=match):
        build()


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_made_masks_its_weights_in_their_dtype_with_the_boolean_masks_numbers(dtype):
    net = MADE(4, 2, hidden=(6,), rng=0)
    rng = np.random.default_rng(1)
    for w in net.params["weights"]:
        w[...] = rng.standard_normal(w.shape)
    net.params["weights"] = [w.astype(dtype) for w in net.params["weights"]]
    for w, masked, m in zip(net.params["weights"], net._weights(), net.masks, strict=True):
        assert masked.dtype == dtype
        np.testing.assert_array_equal(masked, w * m)
        np.testing.assert_array_equal(np.signbit(masked), np.signbit(w * m))
