"""npflows.testing must catch broken layers, not only pass good ones."""

import numpy as np
import pytest

from npflows.testing import check_bijection, check_layer, check_vjp, jacobian_fd, relative_error

A = np.array([[2.0, 0.5], [0.0, 1.5]])
LOG_DET = float(np.log(3.0))


def forward(x):
    return x @ A.T, np.full(len(x), LOG_DET)


def inverse(y):
    return np.linalg.solve(A, y.T).T, np.full(len(y), -LOG_DET)


X = np.random.default_rng(0).normal(size=(4, 2))


def test_jacobian_fd_of_a_linear_map_is_the_matrix():
    np.testing.assert_allclose(jacobian_fd(forward, X), np.broadcast_to(A, (4, 2, 2)), atol=1e-9)


def test_a_correct_bijection_passes():
    errors = check_bijection(forward, inverse, X)
    assert max(errors.values()) < 1e-8


def test_a_wrong_log_det_fails():
    def bad_forward(x):
        y, ld = forward(x)
        return y, ld + 1e-3

    with pytest.raises(AssertionError, match="log_det_forward"):
        check_bijection(bad_forward, inverse, X)


def test_a_wrong_inverse_fails():
    def bad_inverse(y):
        x, ld = inverse(y)
        return x * (1 + 1e-6), ld

    with pytest.raises(AssertionError, match="round_trip"):
        check_bijection(forward, bad_inverse, X)


def test_vjp_check_catches_a_wrong_parameter_gradient():
    params = {"w": np.array([0.7, -0.2])}

    def scale_vjp(x, wrong=False):
        w = params["w"]
        y = x * np.exp(w)

        def pullback(grad_y, grad_ld):
            grad_w = (grad_y * y).sum(0) + grad_ld.sum() * (2.0 if wrong else 1.0)
            return grad_y * np.exp(w), {"w": grad_w}

        return y, np.full(len(x), w.sum()), pullback

    errors = check_vjp(scale_vjp, X, params)
    assert errors["input"] < 1e-8 and errors["params"] < 1e-8
    with pytest.raises(AssertionError, match="params"):
        check_vjp(lambda x: scale_vjp(x, wrong=True), X, params)
    np.testing.assert_array_equal(params["w"], [0.7, -0.2])  # restored after perturbing


def test_check_layer_takes_every_tolerance_by_name():
    import npflows as nf

    layer = nf.Diagonal(2)
    layer.params["log_scale"][...] = [0.3, -0.2]
    errors = check_layer(layer, X, rtol=1e-5, atol=1e-8, eps=1e-6, round_trip_tol=1e-9, rng=1)
    assert set(errors) >= {"bijection/round_trip", "forward_vjp/params", "inverse_vjp/params"}
    with pytest.raises(TypeError):
        check_layer(layer, X, tolerance=1e-3)  # a misspelt option is an error, not ignored
    with pytest.raises(ValueError, match="rtol"):
        check_layer(layer, X, rtol=0.0)  # rtol 0 would make every error 0 / inf


def test_one_relative_error():
    # |a − b| / (floor + |a| + |b|): symmetric, absolute below the floor, relative above it.
    assert relative_error([1.0], [1.0]) == 0.0
    assert relative_error([1e6 + 1.0], [1e6]) == relative_error([1e6], [1e6 + 1.0])
    np.testing.assert_allclose(relative_error([1e6 + 2.0], [1e6]), 1e-6, rtol=1e-5)
    np.testing.assert_allclose(relative_error([1e-9], [0.0]), 1e-9, rtol=1e-8)
    np.testing.assert_allclose(relative_error([3.0], [1.0], floor=0.0), 0.5)
    assert relative_error(np.zeros(0), np.zeros(0)) == 0.0
