"""Linear flows (npflows/layers/{dense,diagonal,orthogonal,triangular,lu,permutation}.py)."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

import npflows as nf
from npflows.testing import check_layer

D = 4


def perturbed(layer, rng, scale=0.5):
    for p in layer.params.values():
        p += scale * rng.standard_normal(p.shape)
    return layer


BUILDERS = {
    "Linear": lambda rng: perturbed(nf.Linear(D), rng, 0.3),
    "Diagonal": lambda rng: perturbed(nf.Diagonal(D), rng),
    "Orthogonal": lambda rng: perturbed(nf.Orthogonal(D, rng=rng), rng),
    "Orthogonal-K2": lambda rng: perturbed(nf.Orthogonal(D, n_reflections=2, rng=rng), rng),
    "Orthogonal-K9": lambda rng: perturbed(nf.Orthogonal(D, n_reflections=9, rng=rng), rng),
    "Triangular": lambda rng: perturbed(nf.Triangular(D), rng),
    "LULinear": lambda rng: perturbed(nf.LULinear(D, sign=[1, -1, -1, 1], rng=rng), rng),
    "Permutation": lambda rng: nf.Permutation(D, "random", rng=rng),
}
builders = pytest.mark.parametrize("name", sorted(BUILDERS))


def Omega_of(layer):
    """Ω read off the layer: forward(I) − β = I Ωᵀ."""
    beta = layer.params.get("beta", np.zeros(layer.dim))
    return (layer.forward(np.eye(layer.dim))[0] - beta).T


def householder(v):
    return np.eye(len(v)) - 2.0 * np.outer(v, v) / (v @ v)


def permutation_matrix(perm):
    P = np.zeros((len(perm), len(perm)))
    P[np.arange(len(perm)), perm] = 1.0  # (P h)_i = h[perm[i]]
    return P


def expected_Omega(layer):
    """Ω by the formula in each docstring, built from the raw parameters."""
    p = layer.params
    if isinstance(layer, nf.Linear):
        return p["Omega"]
    if isinstance(layer, nf.Diagonal):
        return np.diag(np.exp(p["log_scale"]))
    if isinstance(layer, nf.Orthogonal):
        Omega = np.eye(layer.dim)
        for v in p["v"]:
            Omega = Omega @ householder(v)  # H_{v_1} H_{v_2} ⋯ H_{v_K}
        return Omega
    if isinstance(layer, nf.Triangular):
        return np.tril(p["lower"], -1) + np.diag(np.exp(p["log_scale"]))
    if isinstance(layer, nf.LULinear):
        L = np.tril(p["lower"], -1) + np.eye(layer.dim)
        U = np.triu(p["upper"], 1)
        return (
            permutation_matrix(layer.perm) @ L @ (U + np.diag(layer.sign * np.exp(p["log_scale"])))
        )
    return permutation_matrix(layer.perm)


@builders
def test_Omega_matches_the_documented_formula(name):
    layer = BUILDERS[name](np.random.default_rng(1))
    Omega = expected_Omega(layer)
    np.testing.assert_allclose(Omega_of(layer), Omega, atol=1e-12)
    z = np.random.default_rng(2).standard_normal((5, D))
    x, log_det = layer.forward(z)
    np.testing.assert_allclose(log_det, np.full(5, np.linalg.slogdet(Omega)[1]), atol=1e-12)
    z_back, log_det_inv = layer.inverse(x)
    np.testing.assert_allclose(z_back, z, atol=1e-12)
    np.testing.assert_allclose(log_det_inv, -log_det, atol=1e-12)


@builders
def test_check_layer(name):
    rng = np.random.default_rng(3)
    for _ in range(5):
        check_layer(BUILDERS[name](rng), rng.uniform(-3, 3, (4, D)))


@builders
def test_every_gradient_entry_matches_central_differences(name):
    """Entrywise, not only along one random direction: no entry can hide behind another."""
    rng = np.random.default_rng(4)
    layer = BUILDERS[name](rng)
    z = rng.standard_normal((3, D))
    for vjp, h in ((layer.forward_vjp, z), (layer.inverse_vjp, layer.forward(z)[0])):
        out, log_det, pullback = vjp(h)
        grad_out, grad_log_det = rng.standard_normal(out.shape), rng.standard_normal(3)
        grad_h, grads = pullback(grad_out, grad_log_det)

        def loss(h=h, vjp=vjp, grad_out=grad_out, grad_log_det=grad_log_det):
            out, log_det = vjp(h)[:2]
            return np.sum(grad_out * out) + np.sum(grad_log_det * log_det)

        for array, grad in [(h, grad_h)] + [(layer.params[k], grads[k]) for k in layer.params]:
            numeric = np.zeros(array.shape)
            for i in np.ndindex(array.shape):
                saved = array[i]
                array[i] = saved + 1e-6
                up = loss()
                array[i] = saved - 1e-6
                numeric[i] = (up - loss()) / 2e-6
                array[i] = saved
            np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-8)


@builders
def test_empty_batch_and_float32(name):
    layer = BUILDERS[name](np.random.default_rng(5))
    for h in (np.zeros((0, D)), np.ones((2, D), np.float32)):
        for vjp in (layer.forward_vjp, layer.inverse_vjp):
            out, log_det, pullback = vjp(h)
            assert out.shape == h.shape and log_det.shape == (len(h),) and out.dtype == h.dtype
            grad_h, grads = pullback(np.ones(out.shape), np.ones(len(h)))
            assert grad_h.shape == h.shape and grads.keys() == layer.params.keys()
            for k, g in grads.items():
                assert g.shape == layer.params[k].shape and np.all(np.isfinite(g))
                assert len(h) > 0 or np.all(g == 0)


@builders
def test_get_config_round_trip(name):
    layer = BUILDERS[name](np.random.default_rng(6))
    config = json.loads(json.dumps(layer.get_config()))
    rebuilt = type(layer)(**config)
    assert rebuilt.get_config() == config
    assert {k: p.shape for k, p in rebuilt.params.items()} == {
        k: p.shape for k, p in layer.params.items()
    }
    for k, p in rebuilt.params.items():
        p[...] = layer.params[k]
    z = np.random.default_rng(7).standard_normal((3, D))
    np.testing.assert_array_equal(rebuilt.forward(z)[0], layer.forward(z)[0])


def test_identity_at_initialization():
    z = np.random.default_rng(8).standard_normal((3, D))
    for layer in (nf.Linear(D), nf.Diagonal(D), nf.Triangular(D), nf.LULinear(D, perm=range(D))):
        x, log_det = layer.forward(z)
        np.testing.assert_array_equal(x, z)
        np.testing.assert_array_equal(log_det, 0.0)


def test_householder_product_is_orthogonal():
    layer = perturbed(nf.Orthogonal(6, rng=0), np.random.default_rng(9))
    Omega = Omega_of(layer)
    np.testing.assert_allclose(Omega.T @ Omega, np.eye(6), atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(Omega), 1.0, atol=1e-12)  # (−1)^K with K = 6


def test_householder_first_applied_is_the_last_reflection():
    v = np.array([[1.0, 0.0], [1.0, 1.0]])
    layer = nf.Orthogonal(2, n_reflections=2, rng=0)
    layer.params["v"][...] = v
    z = np.array([[1.0, 2.0]])
    np.testing.assert_allclose(
        layer.forward(z)[0], (householder(v[0]) @ householder(v[1]) @ z[0])[None]
    )


def test_orthogonal_zero_vector_is_the_identity_not_nan():
    layer = nf.Orthogonal(3, n_reflections=1, rng=0)
    layer.params["v"][...] = 0.0
    z = np.random.default_rng(10).standard_normal((2, 3))
    x, log_det, pullback = layer.forward_vjp(z)
    np.testing.assert_array_equal(x, z)
    grad_z, grads = pullback(np.ones((2, 3)), np.ones(2))
    np.testing.assert_array_equal(grad_z, 1.0)
    np.testing.assert_array_equal(grads["v"], 0.0)


def test_orthogonal_is_reproducible_from_rng():
    a, b = nf.Orthogonal(5, rng=11), nf.Orthogonal(5, rng=np.random.default_rng(11))
    np.testing.assert_array_equal(a.params["v"], b.params["v"])
    assert a.params["v"].shape == (5, 5) and a.get_config() == {"dim": 5, "n_reflections": 5}


def test_lu_log_det_equals_slogdet_of_assembled_Omega():
    rng = np.random.default_rng(12)
    layer = perturbed(nf.LULinear(5, sign=[-1, 1, -1, 1, 1], rng=rng), rng, 1.0)
    Omega = Omega_of(layer)
    sign, log_abs_det = np.linalg.slogdet(Omega)
    assert sign == np.linalg.det(permutation_matrix(layer.perm))  # times (−1)² from the signs
    np.testing.assert_allclose(layer.forward(np.zeros((1, 5)))[1], [log_abs_det], atol=1e-12)
    np.testing.assert_allclose(log_abs_det, layer.params["log_scale"].sum(), atol=1e-12)
    np.testing.assert_allclose(Omega, expected_Omega(layer), atol=1e-12)


def test_lu_perm_and_sign():
    layer = nf.LULinear(3, perm=[2, 0, 1], sign=[1, -1, 1])
    assert layer.get_config() == {"dim": 3, "perm": [2, 0, 1], "sign": [1, -1, 1]}
    x = nf.LULinear(3, perm=[2, 0, 1]).forward(np.array([[10.0, 20.0, 30.0]]))[0]
    np.testing.assert_array_equal(x, [[30.0, 10.0, 20.0]])  # (P h)_i = h[perm[i]]
    assert nf.LULinear(6, rng=13).perm.tolist() == nf.LULinear(6, rng=13).perm.tolist()
    with pytest.raises(ValueError, match="sign"):
        nf.LULinear(3, perm=[0, 1, 2], sign=[1, 0, 1])
    with pytest.raises(ValueError, match="sign"):
        nf.LULinear(3, perm=[0, 1, 2], sign=[1, 1])
    with pytest.raises(ValueError, match="perm"):
        nf.LULinear(3, perm=[0, 0, 1])


def test_permutation():
    z = np.arange(12.0).reshape(3, 4)
    np.testing.assert_array_equal(nf.Permutation(4).forward(z)[0], z[:, ::-1])
    layer = nf.Permutation(4, [1, 3, 0, 2])
    np.testing.assert_array_equal(layer.forward(z)[0], z[:, [1, 3, 0, 2]])
    assert layer.params == {} and layer.get_config() == {"dim": 4, "perm": [1, 3, 0, 2]}
    a, b = nf.Permutation(9, "random", rng=14), nf.Permutation(9, "random", rng=14)
    assert a.get_config() == b.get_config()


@pytest.mark.parametrize(
    "perm", [[0, 1, 2], [0, 1, 2, 2], [0, 1, 2, 4], [0.0, 1.0, 2.0, 3.0], [[0, 1, 2, 3]], "shuffle"]
)
def test_permutation_rejects(perm):
    with pytest.raises(ValueError, match="perm"):
        nf.Permutation(4, perm)


@pytest.mark.parametrize("cls", [nf.Linear, nf.Diagonal, nf.Orthogonal, nf.Triangular, nf.LULinear])
@pytest.mark.parametrize("dim", [0, -1, 2.5])
def test_bad_dim(cls, dim):
    with pytest.raises(ValueError, match="dim"):
        cls(dim)


@pytest.mark.parametrize("k", [0, 1.5])
def test_orthogonal_bad_n_reflections(k):
    with pytest.raises(ValueError, match="n_reflections"):
        nf.Orthogonal(3, n_reflections=k)


@pytest.mark.parametrize(
    "Omega",
    [
        np.zeros((3, 3)),
        [[1.0, 2, 0], [2, 4, 0], [0, 0, 1]],
        [[1.0, 2, 3], [4, 5, 6], [7, 8, 9 + 1e-15]],
    ],
    ids=["zero", "rank-2", "numerically-singular"],
)
def test_singular_linear_raises(Omega):
    layer = nf.Linear(3)
    layer.params["Omega"][...] = Omega
    x = np.ones((2, 3))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for method in (layer.inverse, layer.inverse_vjp, layer.forward_vjp):
            with pytest.raises(ValueError, match="Omega"):
                method(x)
        if np.linalg.slogdet(Omega)[0] == 0:
            with pytest.raises(ValueError, match="Omega"):
                layer.forward(x)


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda: nf.Orthogonal(3, n_reflections=True), "n_reflections"),
        (lambda: nf.Orthogonal(3, n_reflections=np.inf), "n_reflections"),
        (lambda: nf.LULinear(3, sign=[1, 2, 1]), "sign"),
        (lambda: nf.LULinear(3, sign=[True, True, True]), "sign"),
        (lambda: nf.LULinear(3, perm=[0, 1, 1]), "perm"),
        (lambda: nf.Permutation(3, perm=[True, False, True]), "perm"),
        (lambda: nf.Permutation(3, perm=None), "perm"),
    ],
)
def test_bad_linear_arguments_are_named(build, match):
    with pytest.raises((TypeError, ValueError), match=match):
        build()


def test_linear_pullbacks_use_the_inverse_of_the_same_factors():
    # ∂ log|det Ω| / ∂Ω = Ω⁻ᵀ, now solved from the LU factors the pass computed: still Ω⁻ᵀ.
    layer = nf.Linear(3)
    layer.params["Omega"] += 0.4 * np.random.default_rng(0).standard_normal((3, 3))
    expected = np.linalg.inv(layer.params["Omega"]).T
    z = np.zeros((1, 3))
    for vjp, sign in ((layer.forward_vjp, 1.0), (layer.inverse_vjp, -1.0)):
        _, _, pullback = vjp(z - layer.params["beta"] if sign < 0 else z)
        _, grads = pullback(np.zeros((1, 3)), np.ones(1))
        np.testing.assert_allclose(grads["Omega"], sign * expected, rtol=1e-13, atol=1e-15)
