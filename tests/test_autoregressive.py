"""MAF and IAF: triangular Jacobians, which direction is one pass, and the sequential direction
(against the straightforward D-pass algorithm, kept here as the reference)."""

import numpy as np
import pytest

import npflows as nf
from npflows import nn
from npflows.testing import jacobian_fd
from npflows.transformers import AffineTransformer, RQSplineTransformer
from npflows.tree import leaves

DIM = 4


def layer(cls, transformer, seed=0):
    made = cls(DIM, transformer, (12, 12), "tanh", order=[2, 0, 3, 1], rng=seed)
    rng = np.random.default_rng(seed + 1)
    for p in leaves(made.params):
        p += 0.3 * rng.standard_normal(p.shape)
    return made


@pytest.mark.parametrize("cls", [nf.MAF, nf.IAF])
@pytest.mark.parametrize("transformer", [AffineTransformer(), RQSplineTransformer(5, 3.0)])
def test_jacobian_is_triangular_in_the_made_order(cls, transformer):
    ar = layer(cls, transformer)
    rank = np.empty(DIM, dtype=int)
    rank[ar.net.order] = np.arange(DIM)
    later = rank[None, :] > rank[:, None]  # [i, j]: j comes after i
    x = np.random.default_rng(2).normal(size=(6, DIM))
    for direction in (ar.inverse, ar.forward):
        jac = jacobian_fd(direction, x)
        assert np.abs(jac[:, later]).max() < 1e-9  # ∂out_i/∂in_j = 0 for j after i
        assert np.abs(jac[:, ~later & ~np.eye(DIM, dtype=bool)]).max() > 1e-3  # others are used
        # triangular, so log|det| is the sum of the log-diagonal
        diag = np.log(np.abs(np.einsum("nii->ni", jac))).sum(axis=1)
        np.testing.assert_allclose(direction(x)[1], diag, atol=1e-6)


def d_passes(ar, h, context, direction):
    """The reference for the sequential direction: D full MADE passes, starting from zeros.

    Pass k recomputes θ from the current estimate and applies g (or g⁻¹) to every coordinate, so
    after it the first k coordinates in the order are exact (their θ read only exact ones)."""
    transform = getattr(ar.transformer, direction)
    out = np.zeros_like(h)
    for _ in range(ar.dim):
        net_in = out if context is None else np.concatenate([out, context], axis=1)
        theta = ar.net(net_in).reshape(len(h), ar.dim, ar.transformer.n_params)
        out, log_deriv = transform(h, theta)
    return out, log_deriv.sum(axis=1)


SLOW = {nf.MAF: "forward", nf.IAF: "inverse"}


def randomized(cls, transformer, dim, hidden, order, context_dim, activation="relu", seed=0):
    ar = cls(dim, transformer, hidden, activation, order, context_dim=context_dim, rng=seed)
    rng = np.random.default_rng(seed + 1)
    for p in leaves(ar.params):
        p += 0.3 * rng.standard_normal(p.shape)
    return ar


@pytest.mark.parametrize("cls", [nf.MAF, nf.IAF])
@pytest.mark.parametrize("transformer", [AffineTransformer(), RQSplineTransformer(5, 3.0)])
@pytest.mark.parametrize("context_dim", [0, 3])
@pytest.mark.parametrize("order", ["natural", "reversed", "random", [3, 0, 4, 1, 2]])
def test_the_sequential_direction_equals_d_full_passes(cls, transformer, context_dim, order):
    ar = randomized(cls, transformer, 5, (11, 7), order, context_dim)
    rng = np.random.default_rng(4)
    h, c = rng.normal(size=(40, 5)), rng.normal(size=(40, context_dim)) if context_dim else None
    out, log_det = getattr(ar, SLOW[cls])(h, c)
    want, want_log_det = d_passes(ar, h, c, SLOW[cls])
    np.testing.assert_allclose(out, want, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(log_det, want_log_det, rtol=1e-12, atol=1e-12)
    # and it is the inverse of the one-pass direction
    fast = ar.inverse if cls is nf.MAF else ar.forward
    np.testing.assert_allclose(fast(out, c)[0], h, atol=1e-9)


@pytest.mark.parametrize("cls", [nf.MAF, nf.IAF])
@pytest.mark.parametrize(
    "dim, hidden, context_dim, activation",
    [
        (1, (4,), 0, "relu"),
        (1, (4,), 2, "elu"),
        (3, (), 0, "tanh"),
        (3, (), 2, "silu"),
        (2, (16, 5, 9), 1, "tanh"),
        (6, (3,), 0, "relu"),
    ],
)
@pytest.mark.parametrize("n", [0, 1, 9])
def test_sequential_direction_at_small_sizes_depths_and_batches(
    cls, dim, hidden, context_dim, activation, n
):
    ar = randomized(
        cls, RQSplineTransformer(4, 2.0), dim, hidden, "random", context_dim, activation
    )
    rng = np.random.default_rng(5)
    h, c = rng.normal(size=(n, dim)), rng.normal(size=(n, context_dim)) if context_dim else None
    out, log_det = getattr(ar, SLOW[cls])(h, c)
    assert out.shape == (n, dim) and log_det.shape == (n,)
    want, want_log_det = d_passes(ar, h, c, SLOW[cls])
    np.testing.assert_allclose(out, want, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(log_det, want_log_det, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("cls", [nf.MAF, nf.IAF])
def test_sequential_direction_in_float32(cls):
    ar = randomized(cls, AffineTransformer(), 4, (12, 12), "reversed", 2).astype(np.float32)
    rng = np.random.default_rng(6)
    h, c = rng.normal(size=(30, 4)).astype(np.float32), rng.normal(size=(30, 2)).astype(np.float32)
    out, log_det = getattr(ar, SLOW[cls])(h, c)
    assert out.dtype == log_det.dtype == np.float32
    want, want_log_det = d_passes(ar, h, c, SLOW[cls])
    assert want.dtype == np.float32
    np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(log_det, want_log_det, rtol=1e-5, atol=1e-5)


class CountingActivation:
    """Wraps an activation and counts the values it computes (the entries of its input)."""

    def __init__(self, activation):
        self.activation, self.values = activation, 0

    def __call__(self, a):
        self.values += a.size
        return self.activation(a)


@pytest.mark.parametrize("cls, one_pass", [(nf.MAF, "inverse"), (nf.IAF, "forward")])
@pytest.mark.parametrize("context_dim", [0, 2])
def test_the_sequential_direction_computes_each_hidden_unit_once(
    cls, one_pass, context_dim, monkeypatch
):
    ar = randomized(cls, AffineTransformer(), DIM, (12, 10), [2, 0, 3, 1], context_dim, "tanh")
    counting = CountingActivation(nn.ACTIVATIONS["tanh"])
    monkeypatch.setitem(nn.ACTIVATIONS, "tanh", counting)
    rng = np.random.default_rng(3)
    x, c = rng.normal(size=(5, DIM)), rng.normal(size=(5, context_dim)) if context_dim else None
    getattr(ar, one_pass)(x, c)
    assert counting.values == 5 * (12 + 10)  # one full pass over 5 points
    counting.values = 0
    getattr(ar, SLOW[cls])(x, c)
    # every unit is used (degrees < D), each once; the D-pass algorithm computes D times as many
    assert counting.values == 5 * (12 + 10)
    assert getattr(ar, f"has_{one_pass}_vjp")
    assert not getattr(ar, f"has_{SLOW[cls]}_vjp")


def test_one_dimensional_maf_is_an_elementwise_flow():
    maf = nf.MAF(1, AffineTransformer(), (4,), rng=0)
    maf.params["net"]["biases"][-1][...] = [0.5, 0.3]  # θ = (t, s̃) for the only coordinate
    x, log_det = maf.forward(np.array([[1.0], [-2.0]]))
    np.testing.assert_allclose(x[:, 0], np.array([1.0, -2.0]) * np.exp(5 * np.tanh(0.3 / 5)) + 0.5)
    np.testing.assert_allclose(log_det, 5 * np.tanh(0.3 / 5))


@pytest.mark.parametrize("cls", [nf.MAF, nf.IAF, nf.Coupling])
def test_bad_conditioned_layer_arguments_are_named(cls):
    affine = AffineTransformer()
    with pytest.raises(TypeError, match="transformer"):
        cls(DIM, "affine")
    with pytest.raises(ValueError, match="context_dim"):
        cls(DIM, affine, context_dim=-1)
    with pytest.raises(ValueError, match="activation"):
        cls(DIM, affine, activation="sigmoid")
    with pytest.raises(ValueError, match=r"hidden\[1\]"):
        cls(DIM, affine, hidden=(8, 0))
    with pytest.raises(ValueError, match="no parameters"):
        cls(DIM, nf.transformers.LeakyReLUTransformer())


def test_bad_coupling_mask_and_elementwise_transformer_are_named():
    with pytest.raises(ValueError, match="mask"):
        nf.Coupling(3, AffineTransformer(), mask=[1, 0, 1])
    with pytest.raises(ValueError, match="mask"):
        nf.Coupling(3, AffineTransformer(), mask=[True, True, True])
    with pytest.raises(TypeError, match="transformer"):
        nf.Elementwise(3, AffineTransformer)  # the class, not an instance
    with pytest.raises(TypeError, match="layer"):
        nf.Invert(AffineTransformer())
