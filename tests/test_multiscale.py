"""Multi-scale image flows: the squeeze order, ActNorm's initialization, factor-out, the ConvNet,
dequantization and bits/dim, and the digits."""

from __future__ import annotations

import copy
import sys
import threading

import numpy as np
import pytest

import npflows as nf
from npflows.conv import ConvNet, conv2d
from npflows.dequantization import categorical_bits_per_dim, fit_pixels, uniform_bits_per_dim
from npflows.distributions import StandardNormal
from npflows.testing import check_vjp
from npflows.tree import leaves


def perturb(layer, rng, scale=0.3):
    for leaf in leaves(layer.params):
        leaf += scale * rng.standard_normal(leaf.shape)
    return layer


# -- squeeze ---------------------------------------------------------------------------------------
def test_squeeze_channel_order_is_4c_plus_2i_plus_j():
    x = np.arange(2 * 2 * 4 * 6, dtype=float).reshape(2, 2, 4, 6)
    z, log_det = nf.Squeeze((2, 4, 6)).inverse(x)
    assert z.shape == (2, 8, 2, 3)
    np.testing.assert_array_equal(log_det, 0.0)
    for n, c, h, w, i, j in np.ndindex(2, 2, 2, 3, 2, 2):
        assert z[n, 4 * c + 2 * i + j, h, w] == x[n, c, 2 * h + i, 2 * w + j]
    np.testing.assert_array_equal(nf.Squeeze((2, 4, 6)).forward(z)[0], x)


def test_squeeze_refuses_odd_sizes():
    with pytest.raises(ValueError, match="even"):
        nf.Squeeze((1, 3, 4))


# -- ActNorm -----------------------------------------------------------------------------------------
def images(rng, n=50, shape=(3, 4, 4)):
    return rng.normal(
        loc=[[[2.0]], [[-1.0]], [[0.5]]], scale=[[[3.0]], [[0.2]], [[1.0]]], size=(n, *shape)
    )


def test_actnorm_first_normalizing_use_gives_zero_mean_unit_variance():
    rng = np.random.default_rng(0)
    x = images(rng)
    layer = nf.ActNorm((3, 4, 4))
    layer.forward(rng.normal(size=(2, 3, 4, 4)))  # the generative direction does not initialize
    assert not layer.initialized
    np.testing.assert_array_equal(layer.params["log_scale"], 0.0)
    z, log_det = layer.inverse(x)
    assert layer.initialized
    np.testing.assert_allclose(z.mean(axis=(0, 2, 3)), 0.0, atol=1e-12)
    np.testing.assert_allclose(z.var(axis=(0, 2, 3)), 1.0, rtol=1e-12)
    np.testing.assert_allclose(log_det, -16 * np.log(x.std(axis=(0, 2, 3))).sum(), rtol=1e-12)
    before = [p.copy() for p in leaves(layer.params)]
    layer.inverse(5.0 + images(rng))  # later calls use the parameters, never re-initialize
    for p, p0 in zip(leaves(layer.params), before, strict=True):
        np.testing.assert_array_equal(p, p0)


def test_actnorm_initialize_explicitly_and_bad_input_leaves_it_new():
    rng = np.random.default_rng(1)
    layer = nf.ActNorm((3, 4, 4))
    bad = images(rng)
    bad[0, 1, 2, 3] = np.nan
    with pytest.raises(ValueError, match="finite"):
        layer.inverse(bad)
    assert not layer.initialized
    np.testing.assert_array_equal(layer.params["bias"], 0.0)
    with pytest.raises(ValueError, match="at least one image"):
        layer.initialize(np.zeros((0, 3, 4, 4)))
    x = images(rng)
    layer.initialize(x)
    np.testing.assert_allclose(layer.params["bias"], x.mean(axis=(0, 2, 3)), rtol=1e-12)
    constant = np.ones((4, 3, 4, 4))
    layer.initialize(constant)  # a constant channel: the scale is floored, nothing is infinite
    assert np.all(np.isfinite(layer.inverse(constant)[0]))


def test_actnorm_initializes_once_under_threads():
    rng = np.random.default_rng(2)
    batches = [images(rng) for _ in range(8)]
    layer = nf.ActNorm((3, 4, 4))
    threads = [threading.Thread(target=layer.inverse, args=(b,)) for b in batches]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # The parameters are those of exactly one batch, not a mixture of two.
    matches = [
        np.allclose(layer.params["bias"], b.mean(axis=(0, 2, 3)), rtol=1e-12) for b in batches
    ]
    assert sum(matches) == 1


def test_actnorm_survives_save_and_load_bit_exactly_without_reinitializing(tmp_path):
    rng = np.random.default_rng(3)
    flow = nf.flows.Glow((1, 8, 8), 2, steps=2, hidden=8, rng=0)
    x = rng.uniform(0.0, 1.0, size=(30, 1, 8, 8))
    log_p = flow.log_prob(x)  # initializes every ActNorm on x
    path = tmp_path / "glow.npz"
    nf.save(flow, path)
    loaded = nf.load(path)
    actnorms = [layer for layer in _layers(loaded) if isinstance(layer, nf.ActNorm)]
    assert actnorms and all(layer.initialized for layer in actnorms)
    other = rng.uniform(0.3, 0.6, size=(30, 1, 8, 8))  # data that would initialize differently
    np.testing.assert_array_equal(loaded.log_prob(other), flow.log_prob(other))
    np.testing.assert_array_equal(loaded.log_prob(x), log_p)


def _layers(layer):
    """Every layer inside ``layer`` (Flows and FactorOuts opened), depth first."""
    yield layer
    for inner in getattr(layer, "layers", []):
        yield from _layers(inner)
    if isinstance(layer, nf.FactorOut):
        yield from _layers(layer.inner)


def test_a_new_actnorm_is_saved_new(tmp_path):
    nf.save(nf.Flow([nf.ActNorm((2, 2, 2))]), tmp_path / "new.npz")
    assert not nf.load(tmp_path / "new.npz").layers[0].initialized


# -- factor-out ----------------------------------------------------------------------------------------
def small_inner(rng):
    inner = nf.Flow(
        [
            nf.ImageCoupling((2, 2, 2), mask="checkerboard", hidden=4, rng=rng),
            nf.ActNorm((2, 2, 2), initialized=True),
        ]
    )
    return perturb(inner, rng)


def test_total_log_p_is_the_sum_over_exits():
    rng = np.random.default_rng(4)
    inner = small_inner(rng)
    flow = nf.Flow([nf.FactorOut((4, 2, 2), inner)])
    x = rng.normal(size=(5, 4, 2, 2))
    exits = x[:, 2:].reshape(5, -1)
    expected = StandardNormal(8).log_prob(exits) + inner.log_prob(x[:, :2])
    np.testing.assert_allclose(flow.log_prob(x), expected, rtol=1e-13)


def test_the_conditional_prior_is_a_gaussian_of_the_remaining_channels():
    rng = np.random.default_rng(5)
    inner = small_inner(rng)
    prior = perturb(nf.ImageCoupling((4, 2, 2), mask="channel", hidden=4, rng=rng), rng)
    flow = nf.Flow([nf.FactorOut((4, 2, 2), inner), prior])
    x = rng.normal(size=(5, 4, 2, 2))
    raw = prior.net(x[:, :2]).reshape(5, 2, 2, 2, 2)  # (N, exit channel, P, H, W)
    mean, log_sigma = raw[:, :, 0], 2.0 * np.tanh(raw[:, :, 1] / 2.0)
    log_normal = -0.5 * ((x[:, 2:] - mean) / np.exp(log_sigma)) ** 2 - log_sigma
    expected = log_normal.reshape(5, -1).sum(1) - 4 * np.log(2 * np.pi) + inner.log_prob(x[:, :2])
    np.testing.assert_allclose(flow.log_prob(x), expected, rtol=1e-12)


@pytest.mark.parametrize("build", [nf.flows.Glow, nf.flows.MultiScaleRealNVP])
def test_sampling_then_scoring_agrees_with_sample_and_log_prob(build):
    rng = np.random.default_rng(6)
    flow = build((1, 8, 8), 2, hidden=8, rng=0)
    flow.log_prob(rng.uniform(0.0, 1.0, size=(20, 1, 8, 8)))  # initialize the ActNorms
    perturb(flow, rng, 0.02)
    x, log_p = flow.sample_and_log_prob(10, rng=7)
    assert x.shape == (10, 1, 8, 8)
    np.testing.assert_allclose(flow.log_prob(x), log_p, rtol=1e-9, atol=1e-9)
    np.testing.assert_array_equal(flow.sample(10, rng=7), x)


def test_glow_latents_list_the_first_scale_first():
    flow = nf.flows.Glow((1, 8, 8), 2, steps=1, hidden=4, prior="base", logit=None, rng=0)
    x = np.random.default_rng(8).normal(size=(3, 1, 8, 8))
    z = flow.inverse(x)[0]
    assert z.shape == (3, 64)
    # With the base prior, the first 32 coordinates are the exits of level 1: the channels 2, 3
    # of the squeezed, normalized image, copied unchanged by FactorOut.
    level_one = nf.Flow(flow.layers[1:])  # everything on the data side of the FactorOut
    h = level_one.inverse(x)[0]
    np.testing.assert_array_equal(z[:, :32], h[:, 2:].reshape(3, 32))


def test_flow_refuses_layers_whose_shapes_do_not_chain():
    with pytest.raises(ValueError, match="shape"):
        nf.Flow([nf.ActNorm((1, 4, 4)), nf.Squeeze((1, 4, 4))])
    with pytest.raises(ValueError, match="inner must take"):
        nf.FactorOut((4, 2, 2), nf.Flow([nf.ActNorm((4, 2, 2))]))


def test_builders_check_their_arguments():
    with pytest.raises(ValueError, match="multiples of 8"):
        nf.flows.Glow((1, 4, 4), 3)
    with pytest.raises(ValueError, match="levels"):
        nf.flows.Glow((1, 8, 8), 0)
    with pytest.raises(ValueError, match="prior"):
        nf.flows.Glow((1, 8, 8), prior="learned")
    with pytest.raises(ValueError, match=r"\(C, H, W\)"):
        nf.flows.MultiScaleRealNVP((8, 8))


# -- ConvNet ---------------------------------------------------------------------------------------------
def test_conv2d_matches_a_direct_sum():
    rng = np.random.default_rng(9)
    h = rng.normal(size=(2, 4, 5, 3))
    kernel, bias = rng.normal(size=(3, 3, 3, 2)), rng.normal(size=2)
    out = conv2d(h, kernel, bias)
    padded = np.pad(h, ((0, 0), (1, 1), (1, 1), (0, 0)))
    for n, y, x, o in np.ndindex(2, 4, 5, 2):
        expected = bias[o] + np.sum(padded[n, y : y + 3, x : x + 3, :] * kernel[:, :, :, o])
        assert abs(out[n, y, x, o] - expected) < 1e-12


def test_convnet_starts_constant_and_its_pullback_matches_differences():
    rng = np.random.default_rng(10)
    net = ConvNet(2, 3, hidden=5, out_bias=[1.0, 2.0, 3.0], rng=0)
    h = rng.normal(size=(2, 2, 3, 4))
    np.testing.assert_array_equal(
        net(h), np.broadcast_to([1.0, 2.0, 3.0], (2, 3, 4, 3)).transpose(0, 3, 1, 2)
    )
    perturb(net, rng)

    def fn(h):
        out, pullback = net.forward_vjp(h)
        return out, np.zeros(len(h)), lambda g, _: pullback(g)

    check_vjp(fn, h, net.params, rng=0)


# -- dequantization and bits/dim --------------------------------------------------------------------------
def test_bits_per_dim_of_a_standard_normal_has_its_closed_form():
    # Under the identity flow p(x) = N(x; 0, I), and with x = (k + u)/L,
    # E_u[−log p(x)] = Σ_d ½ E[x_d²] + (D/2) log 2π,  E[x_d²] = ((k_d + ½)² + 1/12) / L².
    levels, rng = 5, np.random.default_rng(11)
    pixels = rng.integers(0, levels, size=(40, 1, 2, 2))
    flow = nf.Flow([nf.ActNorm((1, 2, 2), initialized=True)])
    d = 4
    expected_nll = 0.5 * (((pixels + 0.5) ** 2 + 1 / 12) / levels**2).reshape(40, d).sum(1)
    expected_nll += 0.5 * d * np.log(2 * np.pi)
    expected = (expected_nll + d * np.log(levels)) / (d * np.log(2))
    got = nf.bits_per_dim(flow, pixels, levels, rng=0, n_samples=4000, per_image=True)
    np.testing.assert_allclose(got, expected, atol=2e-3)
    assert nf.bits_per_dim(flow, pixels, levels, rng=0, n_samples=3) == pytest.approx(
        nf.bits_per_dim(flow, pixels, levels, rng=0, n_samples=3, per_image=True).mean()
    )


def test_simple_baselines():
    assert uniform_bits_per_dim(17) == pytest.approx(np.log2(17))
    train = np.zeros((3, 1, 1, 2), dtype=int)  # every training pixel is 0
    test = np.array([[[[0, 1]]]])
    # P(0) = (3 + 1) / (3 + 4), P(1) = 1 / 7 with Laplace smoothing over 4 levels.
    expected = -(np.log2(4 / 7) + np.log2(1 / 7)) / 2
    assert categorical_bits_per_dim(train, test, 4) == pytest.approx(expected)


def test_pixels_and_bits_per_dim_refuse_bad_arguments():
    with pytest.raises(ValueError, match="integer"):
        nf.Pixels(np.zeros((2, 1, 2, 2)), 17)
    with pytest.raises(ValueError, match="0 … 16"):
        nf.Pixels(np.full((2, 1, 2, 2), 17), 17)
    with pytest.raises(ValueError, match="levels"):
        nf.Pixels(np.zeros((2, 1, 2, 2), dtype=int), 1)
    flow = nf.Flow([nf.ActNorm((1, 2, 2), initialized=True)])
    with pytest.raises(ValueError, match="shape"):
        nf.bits_per_dim(flow, np.zeros((2, 1, 4, 4), dtype=int), 17)
    with pytest.raises(ValueError, match="n_samples"):
        nf.bits_per_dim(flow, np.zeros((2, 1, 2, 2), dtype=int), 17, n_samples=0)


def test_fit_dequantizes_pixels_afresh_each_epoch(monkeypatch):
    draws = []
    original = nf.Pixels.dequantize

    def spy(self, rng=None):
        x = original(self, rng)
        draws.append(x)
        return x

    monkeypatch.setattr(nf.Pixels, "dequantize", spy)
    pixels = np.random.default_rng(12).integers(0, 17, size=(40, 1, 4, 4))
    flow = nf.flows.Glow((1, 4, 4), 2, steps=1, hidden=4, rng=0)
    history = nf.fit(
        flow, nf.Pixels(pixels, 17), epochs=3, batch_size=20, lr=1e-2, rng=0, progress=False
    )
    assert len(draws) == 3 and not np.array_equal(draws[0], draws[1])
    for x in draws:
        np.testing.assert_array_equal(np.floor(x * 17).astype(int), pixels)
    assert history.train_nll[-1] < history.train_nll[0]
    with pytest.raises(ValueError, match="npflows.Pixels"):
        nf.fit(flow, pixels, epochs=1, progress=False)


def test_fit_scores_the_start_of_pixels_on_a_dequantized_draw(monkeypatch):
    # The start must be scored like every epoch, on dequantized data: on the cell centres it
    # looks better than any noisy draw and, kept as the best, would undo all training.
    draws = []
    original = nf.Pixels.dequantize

    def spy(self, rng=None):
        draws.append(original(self, rng))
        return draws[-1]

    monkeypatch.setattr(nf.Pixels, "dequantize", spy)
    pixels = np.random.default_rng(14).integers(0, 17, size=(40, 1, 4, 4))
    layer = nf.ImageCoupling((1, 4, 4), mask="checkerboard", hidden=2, rng=0)
    for leaf in nf.tree.leaves(layer.params):
        leaf += 0.3 * np.random.default_rng(15).standard_normal(leaf.shape)
    flow = nf.Flow([layer, nf.PixelLogit((1, 4, 4), 0.05)])
    start = copy.deepcopy(flow)
    history = nf.fit(
        flow,
        nf.Pixels(pixels, 17),
        epochs=1,
        batch_size=20,
        validation_fraction=0.0,
        rng=0,
        progress=False,
    )
    assert len(draws) == 1  # the first epoch trains on the draw the start was scored on
    assert history.initial_nll == pytest.approx(-start.log_prob(draws[0]).mean(), rel=1e-12)
    assert history.initial_nll != pytest.approx(
        -start.log_prob(nf.Pixels(pixels, 17).centres()).mean(), rel=1e-6
    )


# -- digits ------------------------------------------------------------------------------------------------
def test_load_digits_and_its_fixed_split():
    pytest.importorskip("sklearn")
    images = nf.datasets.load_digits()
    assert images.shape == (1797, 1, 8, 8) and images.dtype == np.int64
    assert images.min() == 0 and images.max() == 16
    parts = [nf.datasets.load_digits(s) for s in ("train", "validation", "test")]
    assert [len(p) for p in parts] == [1000, 350, 447]
    np.testing.assert_array_equal(np.concatenate(parts), images)
    with pytest.raises(ValueError, match="split"):
        nf.datasets.load_digits("valid")


def test_load_digits_without_scikit_learn_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(ImportError, match=r"pip install 'npflows\[images\]'"):
        nf.datasets.load_digits()


def test_import_npflows_does_not_load_scikit_learn():
    import subprocess

    code = "import sys, npflows; print('sklearn' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_fit_pixels_initializes_on_the_training_set_and_keeps_the_best_validation_epoch():
    rng = np.random.default_rng(13)
    train = rng.integers(0, 17, size=(60, 1, 4, 4))
    validation = rng.integers(0, 17, size=(20, 1, 4, 4))
    flow = nf.flows.Glow((1, 4, 4), 2, steps=1, hidden=4, rng=0)
    history = fit_pixels(flow, train, validation, 17, epochs=4, batch_size=20, lr=1e-2, rng=0)
    assert all(layer.initialized for layer in _layers(flow) if isinstance(layer, nf.ActNorm))
    assert history.best_epoch == int(np.argmin(history.val_bits_per_dim))
    assert len(history.train_nll) == len(history.val_bits_per_dim) == 4
    # Each epoch continues from the last (a start kept as "best" every epoch would not).
    assert history.train_nll[-1] < history.train_nll[0] - 0.5
    with pytest.raises(ValueError, match="patience"):
        fit_pixels(flow, train, validation, 17, epochs=1, patience=0)


def test_invert_swaps_the_event_and_latent_shapes_of_an_image_layer():
    squeeze = nf.Squeeze((1, 4, 4))
    inverted = nf.Invert(squeeze)
    assert (inverted.event_shape, inverted.latent_shape) == ((4, 2, 2), (1, 4, 4))
    x = np.random.default_rng(0).normal(size=(2, 4, 2, 2))
    z, log_det = inverted.inverse(x)  # Squeeze's forward: unsqueeze to (1, 4, 4)
    assert z.shape == (2, 1, 4, 4) and np.array_equal(log_det, np.zeros(2))
    assert np.array_equal(inverted.forward(z)[0], x)
