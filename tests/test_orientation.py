"""The two orientations of a conditioned layer: g applied from z to x, or from x to z.

The property tests run both orientations through the whole layer contract (tests/registry.py);
these tests pin what "normalizing" means by identities with layers that exist independently of it.
"""

from __future__ import annotations

import numpy as np
import pytest

import npflows as nf
from npflows.io.classes import allowed_classes, build
from npflows.layers.coupling import Coupling
from npflows.transformers import AffineTransformer, RQSplineTransformer
from npflows.tree import leaves

DIM = 3
SPLINE = RQSplineTransformer(4, 2.5)


def moved(layer, rng, scale=0.3):
    for leaf in leaves(layer.params):
        leaf += scale * rng.standard_normal(leaf.shape)
    return layer


def same_params(target, source):
    for a, b in zip(leaves(target.params), leaves(source.params), strict=True):
        a[...] = b


def assert_same_maps(a, b, x, context=None):
    """Both directions and both log-dets of ``a`` and ``b`` agree at x (and z = a⁻¹(x))."""
    z, log_det = a.inverse(x, context)
    z_b, log_det_b = b.inverse(x, context)
    np.testing.assert_allclose(z_b, z, rtol=0, atol=1e-13)
    np.testing.assert_allclose(log_det_b, log_det, rtol=0, atol=1e-12)
    x_a, fwd_a = a.forward(z, context)
    x_b, fwd_b = b.forward(z, context)
    np.testing.assert_allclose(x_b, x_a, rtol=0, atol=1e-12)
    np.testing.assert_allclose(fwd_b, fwd_a, rtol=0, atol=1e-12)


@pytest.mark.parametrize("transformer", [SPLINE, AffineTransformer()])
def test_a_normalizing_coupling_is_the_inverted_generative_coupling(transformer):
    # x_a = z_a, so θ = net(x_a) = net(z_a) on either side: z_b = g(x_b; θ) is Invert of
    # x_b = g(z_b; θ) with the same net.
    rng = np.random.default_rng(0)
    normalizing = moved(
        Coupling(DIM, transformer, hidden=(8,), context_dim=2, rng=rng, orientation="normalizing"),
        rng,
    )
    generative = Coupling(DIM, transformer, hidden=(8,), context_dim=2, rng=rng)
    same_params(generative, normalizing)
    x, c = rng.uniform(-3, 3, (50, DIM)), rng.standard_normal((50, 2))
    assert_same_maps(normalizing, nf.Invert(generative), x, c)


@pytest.mark.parametrize("transformer", [SPLINE, AffineTransformer()])
def test_a_normalizing_maf_is_the_inverted_generative_iaf(transformer):
    # MAF normalizing: z_i = g(x_i; θ_i(x_<i)). Invert(IAF): the IAF's x_i = g(z_i; θ_i(z_<i)) read
    # with its z as our x. Same MADE, same order: the same map, one pass in the density direction.
    rng = np.random.default_rng(1)
    maf = moved(
        nf.MAF(DIM, transformer, (8,), "tanh", "random", rng=rng, orientation="normalizing"), rng
    )
    iaf = nf.IAF(DIM, transformer, (8,), "tanh", maf.net.order.tolist(), rng=rng)
    same_params(iaf, maf)
    assert_same_maps(maf, nf.Invert(iaf), rng.uniform(-3, 3, (50, DIM)))


def test_the_normalizing_density_runs_the_closed_form_map_and_sampling_the_solve():
    # Which transformer map each direction runs: count the spline's calls.
    calls = []

    class Counting(RQSplineTransformer):
        def forward(self, u, theta):
            calls.append("g")
            return super().forward(u, theta)

        def inverse(self, y, theta):
            calls.append("g⁻¹")
            return super().inverse(y, theta)

    rng = np.random.default_rng(2)
    layer = Coupling(2, Counting(4, 2.5), rng=rng, orientation="normalizing")
    layer.inverse(rng.standard_normal((5, 2)))
    assert calls == ["g"]
    layer.forward(rng.standard_normal((5, 2)))
    assert calls == ["g", "g⁻¹"]


@pytest.mark.parametrize("bad", ["Normalizing", "forward", None, 1])
def test_a_bad_orientation_is_refused_by_name(bad):
    with pytest.raises(ValueError, match="orientation must be one of"):
        Coupling(2, AffineTransformer(), orientation=bad)
    with pytest.raises(ValueError, match="orientation must be one of"):
        nf.MAF(2, AffineTransformer(), orientation=bad)


def test_the_orientation_is_saved_and_a_file_without_it_is_generative(tmp_path):
    rng = np.random.default_rng(3)
    layer = moved(Coupling(2, SPLINE, rng=rng, orientation="normalizing"), rng)
    assert layer.get_config()["orientation"] == "normalizing"
    nf.save(nf.Flow([layer]), tmp_path / "m.npz")
    loaded = nf.load(tmp_path / "m.npz").layers[0]
    assert loaded.orientation == "normalizing"
    x = rng.standard_normal((7, 2))
    np.testing.assert_array_equal(loaded.inverse(x)[0], layer.inverse(x)[0])
    description = {"class": "Coupling", "args": layer.get_config()}
    del description["args"]["orientation"]  # as in the files of earlier versions
    assert build("test", description, allowed_classes()).orientation == "generative"
