"""The properties of tests/test_properties.py for the image layers of tests/registry.py.

Image layers take z of shape (N, *latent_shape) and give x of shape (N, *event_shape). The checks of
npflows.testing work on (N, D) rows, so they run on the flattened maps h (N, D) ↦ flatten(f(unflatten
h)): the log-det is then compared with slogdet of the (D, D) finite-difference Jacobian of the
flattened map, which is the Jacobian of the image map with its coordinates listed in C order.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from registry import IMAGE_CASES
from test_properties import KINK_MARGIN

from npflows.testing import check_bijection, check_vjp
from npflows.tree import leaves

names = pytest.mark.parametrize("name", sorted(IMAGE_CASES))


class Flat:
    """A registered image layer's four maps on flattened rows (N, D)."""

    def __init__(self, name, seed):
        self.case = IMAGE_CASES[name]
        self.layer = self.case.build(np.random.default_rng(seed))
        self.dim = self.layer.dim

    def _map(self, method, in_shape):
        def run(h):
            out, log_det = method(h.reshape(len(h), *in_shape))
            return out.reshape(len(h), self.dim), log_det

        return run

    def _vjp(self, method, in_shape):
        def run(h):
            out, log_det, pullback = method(h.reshape(len(h), *in_shape))

            def flat_pullback(grad_out, grad_log_det):
                grad_in, grads = pullback(grad_out.reshape(out.shape), grad_log_det)
                assert grad_in.shape == (len(h), *in_shape)
                return grad_in.reshape(len(h), self.dim), grads

            return out.reshape(len(h), self.dim), log_det, flat_pullback

        return run

    @property
    def forward(self):
        return self._map(self.layer.forward, self.layer.latent_shape)

    @property
    def inverse(self):
        return self._map(self.layer.inverse, self.layer.event_shape)

    @property
    def forward_vjp(self):
        return self._vjp(self.layer.forward_vjp, self.layer.latent_shape)

    @property
    def inverse_vjp(self):
        return self._vjp(self.layer.inverse_vjp, self.layer.event_shape)


def away_from_kinks(z, case):
    z = np.clip(z, case.low, case.high)
    for kink in case.kinks:
        near = np.abs(z - kink) < KINK_MARGIN
        z[near] = kink + np.where(z[near] >= kink, 2, -2) * KINK_MARGIN
    return z


def latent_rows(flat, seed, n):
    z = np.random.default_rng(seed).normal(scale=1.2, size=(n, flat.dim))
    return away_from_kinks(z, flat.case)


@names
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 3))
def test_bijection_and_log_det(name, seed, n):
    flat = Flat(name, seed)
    errors = check_bijection(flat.forward, flat.inverse, latent_rows(flat, seed, n))
    assert errors["round_trip"] <= 1e-9 and errors["consistency"] <= 1e-10


@names
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 3))
def test_vjps_match_central_differences(name, seed, n):
    flat = Flat(name, seed)
    z = latent_rows(flat, seed, n)
    check_vjp(flat.forward_vjp, z, flat.layer.params, rng=seed)
    check_vjp(flat.inverse_vjp, flat.forward(z)[0], flat.layer.params, rng=seed)


@names
def test_shapes_and_grads_mirror_params(name):
    layer = IMAGE_CASES[name].build(np.random.default_rng(0))
    z = np.random.default_rng(1).normal(size=(2, *layer.latent_shape))
    x, log_det = layer.forward(z)
    assert x.shape == (2, *layer.event_shape) and log_det.shape == (2,)
    assert layer.dim == int(np.prod(layer.event_shape)) == int(np.prod(layer.latent_shape))
    for vjp, h, out_shape in ((layer.forward_vjp, z, x.shape), (layer.inverse_vjp, x, z.shape)):
        out, _, pullback = vjp(h)
        assert out.shape == out_shape
        grad_in, grads = pullback(np.ones(out_shape), np.ones(2))
        assert grad_in.shape == h.shape
        assert [g.shape for g in leaves(grads)] == [p.shape for p in leaves(layer.params)]
        assert all(np.isfinite(g).all() for g in leaves(grads))
        with pytest.raises(ValueError, match="shape"):
            pullback(np.ones((2, layer.dim + 1)), np.ones(2))


@names
@pytest.mark.parametrize("n", [0, 1])
def test_empty_and_single_image(name, n):
    layer = IMAGE_CASES[name].build(np.random.default_rng(1))
    z = np.random.default_rng(2).normal(size=(n, *layer.latent_shape))
    x, log_det = layer.forward(z)
    assert x.shape == (n, *layer.event_shape) and log_det.shape == (n,)
    z_back, log_det_inv = layer.inverse(x)
    np.testing.assert_allclose(z_back, z, atol=1e-9)
    assert log_det_inv.shape == (n,)


@names
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_kept_and_outputs_finite(name, dtype):
    layer = IMAGE_CASES[name].build(np.random.default_rng(2))
    z = np.random.default_rng(3).normal(size=(3, *layer.latent_shape)).astype(dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        x, log_det = layer.forward(z)
        z_back, log_det_inv = layer.inverse(x)
    for a in (x, log_det, z_back, log_det_inv):
        assert a.dtype == dtype and np.all(np.isfinite(a))


@names
def test_bad_inputs_are_refused_without_changing_params(name):
    layer = IMAGE_CASES[name].build(np.random.default_rng(4))
    before = [p.copy() for p in leaves(layer.params)]
    for method, shape in (
        (layer.forward, layer.latent_shape),
        (layer.inverse, layer.event_shape),
        (layer.forward_vjp, layer.latent_shape),
        (layer.inverse_vjp, layer.event_shape),
    ):
        good = np.full((2, *shape), 0.3)
        nan, inf = good.copy(), good.copy()
        nan.flat[1], inf.flat[-1] = np.nan, -np.inf
        bad_inputs = {
            "flattened": good.reshape(2, -1) if len(shape) > 1 else good[:, None],
            "one image without the batch axis": good[0],
            "a shape off by one": np.full((2, *shape[:-1], shape[-1] + 1), 0.3),
            "NaN": nan,
            "inf": inf,
            "integers": good.astype(np.int64),
        }
        for what, bad in bad_inputs.items():
            with pytest.raises(ValueError, match="must") as info:
                method(bad)
            assert str(info.value), what
    for p, p0 in zip(leaves(layer.params), before, strict=True):
        np.testing.assert_array_equal(p, p0)
