"""The fixed data-side standardization: its estimate from data at any scale, its refusals, its
save/load, and ``standardized`` (the bijection and pullback properties are in the registry)."""

from __future__ import annotations

import numpy as np
import pytest

import npflows as nf
from npflows.layers.standardize import MIN_ROWS, RELATIVE_SPREAD_MIN


@pytest.mark.parametrize("scale", [1e-300, 1e-200, 1e-4, 1.0, 1e4, 1e200, 1e300])
def test_from_data_gets_the_true_mean_and_spread_at_any_scale(scale):
    base = np.random.default_rng(0).normal([1.0, -3.0], [2.0, 0.5], size=(1000, 2))
    layer = nf.Standardize.from_data(scale * base)
    np.testing.assert_allclose(layer.mean, scale * base.mean(axis=0), rtol=1e-13)
    np.testing.assert_allclose(layer.scale, scale * base.std(axis=0), rtol=1e-13)
    u, log_det = layer.inverse(scale * base)
    np.testing.assert_allclose(u.mean(axis=0), 0, atol=1e-13)
    np.testing.assert_allclose(u.std(axis=0), 1, rtol=1e-13)
    np.testing.assert_allclose(log_det, -np.log(base.std(axis=0)).sum() - 2 * np.log(scale))


def test_a_power_of_two_rescaling_is_exact():
    x = np.random.default_rng(1).normal(size=(50, 3))
    a, b = nf.Standardize.from_data(x), nf.Standardize.from_data(x * 2.0**-700)
    np.testing.assert_array_equal(b.mean, a.mean * 2.0**-700)
    np.testing.assert_array_equal(b.scale, a.scale * 2.0**-700)


@pytest.mark.parametrize(
    ("column", "values"),
    [
        (2, np.full(300, 0.1)),  # identical rows: the computed spread is rounding noise
        (2, np.zeros(300)),
        (2, 1e6 + 1e-7 * (np.arange(300) % 2)),  # spread 5e-8 ≤ 1e-12 · 1e6
    ],
)
def test_a_nearly_constant_column_is_refused_by_number(column, values):
    x = np.column_stack([np.random.default_rng(2).normal(size=300), values])
    with pytest.raises(ValueError, match=f"column {column} of the data is \\(nearly\\) constant"):
        nf.Standardize.from_data(x)


def test_the_constant_threshold_is_relative_to_the_magnitude():
    ones = np.ones(300)
    wiggle = np.where(np.arange(300) % 2, 1.0, -1.0)  # std exactly 1
    base = np.random.default_rng(3).normal(size=300)
    above = 1e6 * ones + 1e6 * 3 * RELATIVE_SPREAD_MIN * wiggle
    assert nf.Standardize.from_data(np.column_stack([base, above])).scale[1] > 0
    below = 1e6 * ones + 1e6 * 0.3 * RELATIVE_SPREAD_MIN * wiggle
    with pytest.raises(ValueError, match="column 2"):
        nf.Standardize.from_data(np.column_stack([base, below]))


@pytest.mark.parametrize("n", range(MIN_ROWS))
def test_too_few_rows_are_refused_with_the_row_count(n):
    with pytest.raises(ValueError, match=f"at least {MIN_ROWS} rows .* got {n}$"):
        nf.Standardize.from_data(np.arange(2.0 * n).reshape(n, 2))


@pytest.mark.parametrize(
    ("x", "error", "message"),
    [
        (np.zeros(5), ValueError, r"shape \(N, D\)"),
        (np.array([[1.0, np.nan]] * 5), ValueError, "finite"),
        (np.ones((5, 2), dtype=int), ValueError, "float32 or float64"),
    ],
)
def test_bad_data_is_refused(x, error, message):
    with pytest.raises(error, match=message):
        nf.Standardize.from_data(x)


@pytest.mark.parametrize(
    ("mean", "scale", "error", "message"),
    [
        ([0.0], [0.0], ValueError, "scale must be at least"),
        ([0.0], [1e-320], ValueError, "scale must be at least"),
        ([0.0, 1.0], [1.0], ValueError, "same length"),
        ([np.inf], [1.0], ValueError, "mean must be finite"),
        ([], [], ValueError, "non-empty"),
        ("ab", [1.0, 1.0], TypeError, "mean must be a sequence"),
        ([True], [1.0], TypeError, "real numbers"),
    ],
)
def test_bad_arguments_are_refused(mean, scale, error, message):
    with pytest.raises(error, match=message):
        nf.Standardize(mean, scale)


def test_an_image_beyond_float64_is_a_value_error_not_inf():
    layer = nf.Standardize([0.0, 0.0], [1e-200, 1.0])
    with pytest.raises(ValueError, match="row 1, column 1 is too far from the mean"):
        layer.inverse(np.array([[0.0, 0.0], [1e150, 0.0]]))
    with pytest.raises(ValueError, match="overflows float32"):
        nf.Standardize([1e200], [1.0]).forward(np.zeros((1, 1), dtype=np.float32))


def test_save_and_load_restore_it_exactly(tmp_path):
    x = np.random.default_rng(4).normal(size=(100, 2)) * [1e-200, 3e200]
    flow = nf.standardized(nf.flows.RealNVP(2, n_layers=2, hidden=(8,), rng=0), x)
    nf.save(flow, tmp_path / "m.npz")
    loaded = nf.load(tmp_path / "m.npz")
    np.testing.assert_array_equal(loaded.layers[-1].mean, flow.layers[-1].mean)
    np.testing.assert_array_equal(loaded.layers[-1].scale, flow.layers[-1].scale)
    np.testing.assert_array_equal(loaded.log_prob(x), flow.log_prob(x))


def test_standardized_puts_the_map_on_the_data_side_and_counts_its_log_det():
    x = np.random.default_rng(5).normal(size=(200, 2)) * [1e-4, 1e4] + [3.0, -7.0]
    inner = nf.flows.RealNVP(2, n_layers=2, hidden=(8,), rng=0)
    flow = nf.standardized(inner, x)
    assert flow.layers[:-1] == inner.layers and flow.base is inner.base
    data_side = flow.layers[-1]
    u = (x - data_side.mean) / data_side.scale
    np.testing.assert_allclose(
        flow.log_prob(x), inner.log_prob(u) - np.log(data_side.scale).sum(), rtol=1e-12
    )
    single = nf.standardized(nf.Diagonal(2), x)
    assert isinstance(single, nf.Flow) and len(single.layers) == 2
    with pytest.raises(ValueError, match="x has 3 columns; the flow has dim 2"):
        nf.standardized(inner, np.ones((5, 3)) * np.arange(5)[:, None])
    with pytest.raises(TypeError, match="flow must be a Flow or a Layer"):
        nf.standardized("nsf", x)


def test_fitting_a_standardized_flow_is_scale_equivariant():
    x = nf.datasets.get("moons").sample(600, rng=0)
    nlls = []
    for a in (1.0, 1e-4, 1e4):
        flow = nf.standardized(nf.flows.RealNVP(2, n_layers=2, hidden=(8,), rng=0), a * x)
        nf.fit(flow, a * x, epochs=3, batch_size=100, rng=0, progress=False)
        nlls.append(-flow.log_prob(a * x).mean() - 2 * np.log(a))
    np.testing.assert_allclose(nlls, nlls[0], atol=1e-6)
