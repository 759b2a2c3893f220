"""float32 as an option: Layer.astype casts parameters, and the computation stays in float32."""

import copy

import numpy as np
import pytest

import npflows as nf
from npflows.flows import MAF, NSF, RealNVP
from npflows.tree import leaves

BUILDERS = {
    "RealNVP": lambda: RealNVP(3, n_layers=2, hidden=(16,), rng=0),
    "NSF": lambda: NSF(3, n_layers=2, hidden=(16,), rng=0),
    "MAF": lambda: MAF(3, n_layers=2, hidden=(16,), rng=0),
}


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_a_float32_flow_computes_in_float32_and_agrees_with_float64(name):
    flow64 = BUILDERS[name]()
    rng = np.random.default_rng(1)
    for p in leaves(flow64.params):
        p += 0.05 * rng.standard_normal(p.shape)
    flow32 = copy.deepcopy(flow64).astype(np.float32)
    assert flow32.dtype == np.float32 and flow64.dtype == np.float64
    x = rng.normal(size=(50, 3))
    log_p32 = flow32.log_prob(x.astype(np.float32))
    assert log_p32.dtype == np.float32
    np.testing.assert_allclose(log_p32, flow64.log_prob(x), rtol=1e-4, atol=1e-4)
    nll32, grads32 = flow32.nll_and_grad(x.astype(np.float32))
    nll64, grads64 = flow64.nll_and_grad(x)
    assert abs(nll32 - nll64) < 1e-5 * (1 + abs(nll64))
    for g32, g64 in zip(leaves(grads32), leaves(grads64), strict=True):
        assert g32.dtype == np.float32  # no silent promotion anywhere in the pullbacks
        np.testing.assert_allclose(g32, g64, rtol=1e-3, atol=1e-4)


def test_training_a_float32_flow():
    flow = BUILDERS["RealNVP"]().astype(np.float32)
    x = np.random.default_rng(2).normal(size=(500, 3)).astype(np.float32) * 2 + 1
    history = nf.fit(flow, x, epochs=5, rng=0, progress=False)
    assert history.train_nll[-1] < history.train_nll[0]
    assert all(p.dtype == np.float32 for p in leaves(flow.params))


def test_astype_refuses_other_dtypes():
    with pytest.raises(ValueError, match="float32 or float64"):
        BUILDERS["RealNVP"]().astype(np.int32)
