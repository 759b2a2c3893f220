"""Flow.log_prob, sample, sample_and_log_prob and nll_and_grad in chunks of rows (issue 15) give
the one-pass numbers, and the one-pass errors."""

import numpy as np
import pytest

import npflows as nf
from npflows.flow import CHUNK_SIZE, _in_chunks
from npflows.tree import leaves, tree_map

CHUNK = 7


def perturbed(flow, seed=0, scale=0.3):
    """``flow`` with every parameter moved off its identity start, so every product counts."""
    rng = np.random.default_rng(seed)
    for leaf in leaves(flow.params):
        leaf += scale * rng.standard_normal(leaf.shape).astype(leaf.dtype)
    return flow


FLOWS = {
    "realnvp": lambda: nf.flows.RealNVP(2, n_layers=4, hidden=(16, 16), rng=0),
    "nsf": lambda: nf.flows.NSF(2, n_layers=2, hidden=(16, 16), rng=0),
    "maf": lambda: nf.flows.MAF(5, n_layers=2, hidden=(16, 16), rng=0),
    "maf-spline": lambda: nf.flows.MAF(3, n_layers=2, hidden=(16,), transformer="spline", rng=0),
    "conditional": lambda: nf.flows.RealNVP(3, n_layers=2, hidden=(16,), context_dim=2, rng=0),
    "glow": lambda: nf.flows.Glow((1, 4, 4), 2, steps=1, hidden=4, logit=None, rng=0),
}


def inputs(flow, n, seed=1):
    rng = np.random.default_rng(seed)
    x = 0.8 * rng.standard_normal((n, *flow.event_shape))
    if flow.event_shape != (flow.dim,):  # images in (0, 1)
        x = rng.uniform(0.05, 0.95, (n, *flow.event_shape))
    context = rng.standard_normal((n, flow.context_dim)) if flow.context_dim else None
    return x, context


def tolerance(dtype):
    # Every row is computed by the same operations in any chunk, but OpenBLAS's products on a few
    # rows can round otherwise than on many: by an ulp, which a spline's steep bins amplify to
    # some tens of ulp (measured up to 2.9e-14 relative in float64 on the 16-bin NSF).
    return 1e-13 if dtype == np.float64 else 3e-5


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", sorted(FLOWS))
@pytest.mark.parametrize("n", [1, CHUNK + 1, 3 * CHUNK + 2])
def test_chunks_give_the_one_pass_numbers(name, n, dtype):
    flow = perturbed(FLOWS[name]()).astype(dtype)
    x, context = inputs(flow, n)
    x = x.astype(dtype)
    context = None if context is None else context.astype(dtype)
    rtol = tolerance(dtype)

    one_pass = flow.log_prob(x, context, chunk_size=None)
    chunked = flow.log_prob(x, context, chunk_size=CHUNK)
    assert chunked.dtype == one_pass.dtype == dtype
    np.testing.assert_allclose(chunked, one_pass, rtol=rtol, atol=rtol)

    nll, grads = flow.nll_and_grad(x, context, chunk_size=None)
    nll_chunked, grads_chunked = flow.nll_and_grad(x, context, chunk_size=CHUNK)
    assert nll_chunked == pytest.approx(nll, rel=rtol, abs=0)
    assert nll == pytest.approx(-np.mean(one_pass, dtype=np.float64), rel=rtol)
    for g, g_chunked in zip(leaves(grads), leaves(grads_chunked), strict=True):
        assert g_chunked.dtype == g.dtype == dtype
        # the chunks add their sums over rows in another order: relative to the leaf's size
        np.testing.assert_allclose(g_chunked, g, rtol=0, atol=100 * rtol * np.abs(g).max())

    if flow.has_forward_vjp or name.startswith("maf"):
        one = {} if context is None else {"context": context}
        x_one, log_p_one = flow.sample_and_log_prob(n, rng=5, chunk_size=None, **one)
        x_chunked, log_p_chunked = flow.sample_and_log_prob(n, rng=5, chunk_size=CHUNK, **one)
        np.testing.assert_allclose(x_chunked, x_one, rtol=rtol, atol=rtol)
        np.testing.assert_allclose(log_p_chunked, log_p_one, rtol=rtol, atol=rtol)
        np.testing.assert_array_equal(flow.sample(n, rng=5, chunk_size=CHUNK, **one), x_chunked)


def test_the_gradient_is_the_mean_over_the_whole_batch_not_over_a_chunk():
    # Chunks of unequal sizes (10 rows in chunks of 4, 3, 3): each row weighs 1/N, so the gradient
    # is the average of the one-row gradients, whatever the chunks.
    flow = perturbed(FLOWS["realnvp"]())
    x, _ = inputs(flow, 10)
    _, grads = flow.nll_and_grad(x, chunk_size=4)
    rows = [flow.nll_and_grad(x[i : i + 1], chunk_size=None)[1] for i in range(10)]
    mean = tree_map(lambda *g: np.mean(g, axis=0), *rows)
    for g, expected in zip(leaves(grads), leaves(mean), strict=True):
        np.testing.assert_allclose(g, expected, rtol=0, atol=1e-13 * np.abs(expected).max())


def test_empty_batches_with_chunks():
    flow = perturbed(FLOWS["realnvp"]())
    assert flow.log_prob(np.zeros((0, 2)), chunk_size=CHUNK).shape == (0,)
    x, log_p = flow.sample_and_log_prob(0, rng=0, chunk_size=CHUNK)
    assert x.shape == (0, 2) and log_p.shape == (0,)
    with pytest.raises(ValueError, match="no rows"):
        flow.nll_and_grad(np.zeros((0, 2)), chunk_size=CHUNK)


def test_chunks_are_nearly_equal_and_cover_every_row_once():
    def rows(n, chunk_size):
        return [(s.start, s.stop) for s in _in_chunks(lambda s: s, n, chunk_size)]

    assert rows(0, 4) == [(0, 0)]
    assert rows(5, None) == [(0, 5)]
    assert rows(4, 4) == [(0, 4)]
    assert rows(5, 4) == [(0, 2), (2, 5)]  # not 4 and 1
    assert rows(10, 4) == [(0, 3), (3, 6), (6, 10)]
    for n in (1, 4095, 4096, 4097, 20_000):
        pieces = rows(n, CHUNK_SIZE)
        sizes = [b - a for a, b in pieces]
        assert pieces[0][0] == 0 and pieces[-1][1] == n
        assert all(p[1] == q[0] for p, q in zip(pieces[:-1], pieces[1:], strict=True))
        assert max(sizes) <= CHUNK_SIZE and max(sizes) - min(sizes) <= 1


@pytest.mark.parametrize("bad", [0, -3, 2.5, np.nan, "4096", "Auto"])
def test_a_bad_chunk_size_is_refused_naming_it(bad):
    flow = FLOWS["realnvp"]()
    x = np.zeros((3, 2))
    error = TypeError if isinstance(bad, str) else ValueError
    expected = (
        'chunk_size must be "auto", None or a positive'
        if isinstance(bad, str)
        else ("chunk_size must be a positive integer")
    )
    for call in (
        lambda: flow.log_prob(x, chunk_size=bad),
        lambda: flow.nll_and_grad(x, chunk_size=bad),
        lambda: flow.sample(3, rng=0, chunk_size=bad),
        lambda: flow.sample_and_log_prob(3, rng=0, chunk_size=bad),
    ):
        with pytest.raises(error, match=expected):
            call()
    with pytest.raises(TypeError, match="chunk_size"):
        flow.log_prob(x, chunk_size=True)


def test_a_nan_is_reported_in_the_batchs_row_numbers():
    flow = FLOWS["realnvp"]()
    x = np.zeros((6000, 2))
    x[5000, 1] = np.nan
    for call in (flow.log_prob, flow.nll_and_grad):
        with pytest.raises(ValueError, match="1 NaN or inf value.s., the first in row 5000"):
            call(x, chunk_size=1000)


def errors(call):
    with pytest.raises(ValueError) as info:
        call()
    return str(info.value)


def test_a_layers_error_is_the_one_pass_error():
    # A Standardize names the row whose image overflows, and a piecewise-linear map on [0, 1]
    # counts the values outside it: both over the whole batch, not within the failing chunk.
    wide = nf.Flow([nf.Standardize([0.0, 0.0], [1e-300, 1.0])])
    x = np.zeros((6000, 2))
    x[[5000, 5500], 0] = 1e10
    for call in (wide.log_prob, wide.nll_and_grad):
        message = errors(lambda call=call: call(x, chunk_size=1000))
        assert "row 5000, column 1" in message
        assert message == errors(lambda call=call: call(x, chunk_size=None))

    unit = nf.Flow([nf.PiecewiseLinear(2, bins=4)])
    u = np.full((6000, 2), 0.5)
    u[[10, 5000, 5999], 1] = 1.5
    message = errors(lambda: unit.log_prob(u, chunk_size=1000))
    assert "3 value(s) do not" in message
    assert message == errors(lambda: unit.log_prob(u, chunk_size=None))


def passes(flow, direction, call):
    """How many times ``call()`` runs the first layer's ``direction`` ("_forward", "_inverse")."""
    layer, count = flow.layers[0], []
    original = getattr(layer, direction)

    def counted(h, context):
        count.append(len(h))
        return original(h, context)

    setattr(layer, direction, counted)
    try:
        call()
    finally:
        delattr(layer, direction)
    return len(count)


def test_auto_chunks_except_a_direction_solved_coordinate_by_coordinate():
    n = 2 * CHUNK_SIZE + 1
    coupling = FLOWS["realnvp"]()
    x, _ = inputs(coupling, n)
    assert passes(coupling, "_inverse", lambda: coupling.log_prob(x)) == 3
    assert passes(coupling, "_forward", lambda: coupling.sample(n, rng=0)) == 3
    maf = nf.flows.MAF(2, n_layers=1, hidden=(4,), rng=0)  # sequential sampling
    assert passes(maf, "_forward", lambda: maf.sample(n, rng=0)) == 1
    assert passes(maf, "_forward", lambda: maf.sample(n, rng=0, chunk_size=CHUNK_SIZE)) == 3
    assert passes(maf, "_inverse", lambda: maf.log_prob(x)) == 3
    iaf = nf.flows.IAF(2, n_layers=1, hidden=(4,), rng=0)  # sequential density
    assert passes(iaf, "_inverse", lambda: iaf.log_prob(x)) == 1
    assert passes(iaf, "_forward", lambda: iaf.sample(n, rng=0)) == 3
