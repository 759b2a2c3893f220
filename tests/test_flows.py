"""Prebuilt flows: construction, identity at initialization, options, conditional use."""

import numpy as np
import pytest

import npflows as nf
from npflows.flows import IAF, MAF, NICE, NSF, PiecewiseLinearFlow, RealNVP, coupling_flow
from npflows.layers import LULinear, Orthogonal, Permutation
from npflows.layers.coupling import Coupling
from npflows.transformers import AffineTransformer

BUILDERS = {
    "NICE": NICE,
    "RealNVP": RealNVP,
    "NSF": NSF,
    "PiecewiseLinearFlow": PiecewiseLinearFlow,
    "MAF": MAF,
    "IAF": IAF,
}


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_a_new_flow_is_the_identity_so_its_density_is_the_base(name):
    flow = BUILDERS[name](3, hidden=(16,), rng=0)
    x = np.random.default_rng(1).normal(size=(10, 3))
    np.testing.assert_allclose(flow.log_prob(x), nf.StandardNormal(3).log_prob(x), atol=1e-12)


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_same_rng_same_flow_and_save_load(name, tmp_path):
    a, b = (BUILDERS[name](3, hidden=(8,), rng=5) for _ in range(2))
    for fa, fb in zip(nf.tree.leaves(a.params), nf.tree.leaves(b.params), strict=True):
        np.testing.assert_array_equal(fa, fb)
    for p in nf.tree.leaves(a.params):
        p += 0.1 * np.random.default_rng(2).standard_normal(p.shape)
    nf.save(a, tmp_path / "m.npz")
    x = np.random.default_rng(3).normal(size=(4, 3))
    np.testing.assert_array_equal(nf.load(tmp_path / "m.npz").log_prob(x), a.log_prob(x))


@pytest.mark.parametrize(
    "mixing, cls",
    [("random", Permutation), ("lu", LULinear), ("orthogonal", Orthogonal)],
)
def test_mixing_layers_sit_between_couplings(mixing, cls):
    flow = RealNVP(4, n_layers=3, hidden=(8,), mixing=mixing, rng=0)
    assert [type(layer).__name__ for layer in flow.layers] == [
        "Coupling",
        cls.__name__,
        "Coupling",
        cls.__name__,
        "Coupling",
    ]


def test_reverse_mixing_alternates_the_masks_from_the_data_side():
    flow = RealNVP(5, n_layers=3, hidden=(8,), rng=0)
    assert [type(layer).__name__ for layer in flow.layers] == ["Coupling"] * 3
    last = [False, False, True, True, True]
    assert [layer.mask.tolist() for layer in flow.layers] == [last, last[::-1], last]


def permuted_equivalent(flow):
    """The same model built the old way: default masks, Permutation(reverse) between couplings.

    A coupling in a reversed frame reads its conditioning columns and writes its θ blocks in the
    reverse order, so its net's first-layer rows and last-layer output blocks are reversed."""
    old = []
    n = len(flow.layers)
    for k, layer in enumerate(flow.layers):
        twin = Coupling(
            layer.dim,
            layer.transformer,
            None,
            layer.net.hidden,
            layer.net.activation,
            context_dim=layer.context_dim,
            orientation=layer.orientation,
        )
        for a, b in zip(nf.tree.leaves(twin.params), nf.tree.leaves(layer.params), strict=True):
            a[...] = b
        if (n - 1 - k) % 2:
            weights, biases = twin.params["net"]["weights"], twin.params["net"]["biases"]
            n_cond, P = layer._n_cond, layer.transformer.n_params
            weights[0][:n_cond] = weights[0][:n_cond][::-1].copy()
            hidden = weights[-1].shape[0]
            weights[-1][...] = weights[-1].reshape(hidden, -1, P)[:, ::-1].reshape(hidden, -1)
            biases[-1][...] = biases[-1].reshape(-1, P)[::-1].reshape(-1)
        if k > 0:
            old.append(Permutation(layer.dim, "reverse"))
        old.append(twin)
    return nf.Flow(old)


@pytest.mark.parametrize("dim", [2, 3, 5])
@pytest.mark.parametrize("n_layers", [1, 2, 3, 4])
@pytest.mark.parametrize("builder", [RealNVP, NSF])
def test_reverse_mixing_is_the_model_with_reverse_permutations(builder, dim, n_layers):
    rng = np.random.default_rng(dim * 10 + n_layers)
    flow = builder(dim, n_layers=n_layers, hidden=(8,), context_dim=1, rng=rng)
    for leaf in nf.tree.leaves(flow.params):
        leaf += 0.3 * rng.standard_normal(leaf.shape)
    old = permuted_equivalent(flow)
    x, c = rng.uniform(-3, 3, (40, dim)), rng.standard_normal((40, 1))
    np.testing.assert_allclose(flow.log_prob(x, c), old.log_prob(x, c), rtol=1e-13, atol=1e-12)
    # The sampling maps agree up to the reversal left over next to the (symmetric) base.
    z = rng.standard_normal((40, dim))
    z_old = z[:, ::-1] if (n_layers - 1) % 2 else z
    np.testing.assert_allclose(
        flow.forward(z, c)[0], old.forward(z_old, c)[0], rtol=1e-13, atol=1e-12
    )


def test_nice_ends_with_a_diagonal_scaling():
    assert type(NICE(2, n_layers=2, hidden=(4,), rng=0).layers[-1]).__name__ == "Diagonal"


def test_bad_arguments():
    with pytest.raises(ValueError, match="mixing"):
        RealNVP(2, mixing="shuffle")
    with pytest.raises(ValueError, match="dim ≥ 2"):
        RealNVP(1)
    with pytest.raises(ValueError, match="n_layers"):
        NSF(2, n_layers=0)
    with pytest.raises(ValueError, match="transformer"):
        MAF(2, transformer="cubic")
    with pytest.raises(ValueError, match="order"):
        IAF(2, order="sideways")


def test_one_dimensional_conditional_coupling_flow():
    flow = coupling_flow(1, AffineTransformer(), 2, hidden=(4,), context_dim=2, rng=0)
    c = np.ones((3, 2))
    assert flow.log_prob(np.zeros((3, 1)), context=c).shape == (3,)


def conditional_data(n, rng):
    """x | c ~ N((2c, −c), diag(0.3², 0.5²)), c ~ U(−1, 1): its exact log density too."""
    c = rng.uniform(-1, 1, (n, 1))
    mean, sd = np.hstack([2 * c, -c]), np.array([0.3, 0.5])
    x = mean + sd * rng.standard_normal((n, 2))
    log_p = (-0.5 * ((x - mean) / sd) ** 2 - np.log(sd) - 0.5 * np.log(2 * np.pi)).sum(axis=1)
    return x, c, log_p


@pytest.mark.parametrize("builder", [RealNVP, MAF])
def test_a_conditional_flow_learns_a_conditional_density(builder):
    rng = np.random.default_rng(0)
    x, c, _ = conditional_data(4000, rng)
    flow = builder(2, n_layers=3, hidden=(32, 32), context_dim=1, rng=1)
    nf.fit(flow, x, context=c, epochs=40, batch_size=256, lr=3e-3, rng=2, progress=False)
    x_test, c_test, log_p_test = conditional_data(2000, rng)
    nll_gap = -flow.log_prob(x_test, context=c_test).mean() + log_p_test.mean()
    assert nll_gap < 0.1  # KL(p ‖ q) estimate, in nats
    samples = flow.sample(5000, rng=3, context=np.full((5000, 1), 0.8))
    np.testing.assert_allclose(samples.mean(axis=0), [1.6, -0.8], atol=0.08)
    with pytest.raises(ValueError, match="conditional"):
        flow.log_prob(x_test)
