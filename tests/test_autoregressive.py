"""MAF and IAF: triangular Jacobians, which direction is one pass, and the sequential direction."""

import numpy as np
import pytest

import npflows as nf
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


class CountingNet:
    """Wraps a MADE and counts its forward passes."""

    def __init__(self, net):
        self.net, self.calls = net, 0

    def __call__(self, h):
        self.calls += 1
        return self.net(h)

    def __getattr__(self, name):
        return getattr(self.net, name)


@pytest.mark.parametrize("cls, one_pass", [(nf.MAF, "inverse"), (nf.IAF, "forward")])
def test_the_fast_direction_is_one_pass_and_the_other_takes_dim(cls, one_pass):
    ar = layer(cls, AffineTransformer())
    ar.net = CountingNet(ar.net)
    x = np.random.default_rng(3).normal(size=(5, DIM))
    getattr(ar, one_pass)(x)
    assert ar.net.calls == 1
    getattr(ar, "forward" if one_pass == "inverse" else "inverse")(x)
    assert ar.net.calls == 1 + DIM
    assert getattr(ar, f"has_{one_pass}_vjp")
    assert not getattr(ar, f"has_{'forward' if one_pass == 'inverse' else 'inverse'}_vjp")


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
