"""Properties every registered layer must have (docs/contract.md), over tests/registry.py."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from registry import CASES, DIM, IMAGE_CASES

import npflows as nf
from npflows.layer import Layer
from npflows.testing import check_bijection, check_layer, check_vjp
from npflows.transformers import Transformer
from npflows.tree import leaves, leaves_with_paths

KINK_MARGIN = 1e-4  # finite differences use ε = 1e-6; stay well clear of non-smooth points


def inputs(case, max_rows=4):
    """Hypothesis strategy: (N, DIM) float64 inputs of forward within the case's bounds."""
    elements = st.floats(case.low, case.high, allow_nan=False, allow_infinity=False)
    return st.integers(1, max_rows).flatmap(
        lambda n: arrays(np.float64, (n, DIM), elements=elements)
    )


def away_from_kinks(z, case):
    """Move entries within KINK_MARGIN of a kink to 2·KINK_MARGIN beyond it."""
    z = z.copy()
    for kink in case.kinks:
        near = np.abs(z - kink) < KINK_MARGIN
        z[near] = kink + np.where(z[near] >= kink, 2, -2) * KINK_MARGIN
    return np.clip(z, case.low, case.high)


names = pytest.mark.parametrize("name", sorted(CASES))


def offered_vjps(b, z, x):
    """(vjp, input) for each direction the layer offers a pullback in."""
    pairs = []
    if b.layer.has_forward_vjp:
        pairs.append((b.forward_vjp, z))
    if b.layer.has_inverse_vjp:
        pairs.append((b.inverse_vjp, x))
    return pairs


class Bound:
    """A registered layer with its context (if conditional) bound into the four maps."""

    def __init__(self, name, seed, n):
        self.case = CASES[name]
        rng = np.random.default_rng(seed)
        self.layer = layer = self.case.build(rng)
        c = rng.normal(size=(n, layer.context_dim)) if layer.context_dim else None
        self.forward = lambda h: layer.forward(h, c)
        self.inverse = lambda h: layer.inverse(h, c)
        self.forward_vjp = lambda h: layer.forward_vjp(h, c)
        self.inverse_vjp = lambda h: layer.inverse_vjp(h, c)


@names
@given(data=st.data(), seed=st.integers(0, 2**32 - 1))
def test_bijection_and_log_det(name, data, seed):
    case = CASES[name]
    z = away_from_kinks(data.draw(inputs(case)), case)
    b = Bound(name, seed, len(z))
    errors = check_bijection(b.forward, b.inverse, z)
    assert errors["round_trip"] <= 1e-9 and errors["consistency"] <= 1e-10


@names
@given(data=st.data(), seed=st.integers(0, 2**32 - 1))
def test_vjps_match_central_differences(name, data, seed):
    case = CASES[name]
    z = away_from_kinks(data.draw(inputs(case)), case)
    b = Bound(name, seed, len(z))
    if b.layer.has_forward_vjp:
        check_vjp(b.forward_vjp, z, b.layer.params, rng=seed)
    if b.layer.has_inverse_vjp:
        check_vjp(b.inverse_vjp, b.forward(z)[0], b.layer.params, rng=seed)


@names
def test_grads_mirror_params(name):
    b = Bound(name, 0, 2)
    z = np.full((2, DIM), 0.3 * (b.case.low + b.case.high) + 0.1)
    for vjp, h in offered_vjps(b, z, b.forward(z)[0]):
        _, _, pullback = vjp(h)
        grad_in, grads = pullback(np.ones((2, DIM)), np.ones(2))
        assert grad_in.shape == h.shape
        _assert_same_structure(grads, b.layer.params)


@names
def test_a_direction_without_pullback_says_so(name):
    b = Bound(name, 0, 2)
    z = np.full((2, DIM), 0.5 * (b.case.low + b.case.high))
    for offered, vjp in (
        (b.layer.has_forward_vjp, b.forward_vjp),
        (b.layer.has_inverse_vjp, b.inverse_vjp),
    ):
        if not offered:
            with pytest.raises(NotImplementedError, match="does not offer"):
                vjp(z)


def _assert_same_structure(grads, params):
    if isinstance(params, dict):
        assert isinstance(grads, dict) and grads.keys() == params.keys()
        for k in params:
            _assert_same_structure(grads[k], params[k])
    elif isinstance(params, list):
        assert isinstance(grads, list) and len(grads) == len(params)
        for g, p in zip(grads, params, strict=True):
            _assert_same_structure(g, p)
    else:
        assert grads.shape == params.shape and np.all(np.isfinite(grads))


@names
@pytest.mark.parametrize("n", [0, 1])
def test_empty_and_single_row(name, n):
    b = Bound(name, 1, n)
    z = np.linspace(b.case.low, b.case.high, n * DIM + 2)[1:-1].reshape(n, DIM)
    x, ld = b.forward(z)
    assert x.shape == (n, DIM) and ld.shape == (n,)
    z_back, ld_inv = b.inverse(x)
    assert z_back.shape == (n, DIM) and ld_inv.shape == (n,)
    np.testing.assert_allclose(z_back, z, atol=1e-9)
    for vjp, h in offered_vjps(b, z, x):
        out, _, pullback = vjp(h)
        grad_in, _ = pullback(np.ones_like(out), np.ones(n))
        assert grad_in.shape == (n, DIM)


@names
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_kept_and_outputs_finite(name, dtype):
    b = Bound(name, 2, 5)
    z = np.random.default_rng(3).uniform(b.case.low, b.case.high, (5, DIM)).astype(dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        x, ld = b.forward(z)
        z_back, ld_inv = b.inverse(x)
    for a in (x, ld, z_back, ld_inv):
        assert a.dtype == dtype and np.all(np.isfinite(a))


@names
def test_bad_inputs_are_refused_without_changing_params(name):
    b = Bound(name, 4, 2)
    before = [p.copy() for p in leaves(b.layer.params)]
    good = np.full((2, DIM), 0.5 * (b.case.low + b.case.high))
    bad_inputs = {
        "shape": good[:, :-1],
        "1-D": good[0],
        "NaN": np.where(np.eye(2, DIM, dtype=bool), np.nan, good),
        "inf": np.where(np.eye(2, DIM, dtype=bool), np.inf, good),
        "dtype": good.astype(np.int64),
    }
    for method in (b.forward, b.inverse, b.forward_vjp, b.inverse_vjp):
        for what, bad in bad_inputs.items():
            with pytest.raises(ValueError) as info:
                method(bad)
            assert str(info.value), what
    for p, p0 in zip(leaves(b.layer.params), before, strict=True):
        np.testing.assert_array_equal(p, p0)


# -- the registry covers everything by construction ------------------------------------------------
def _built_layers():
    """Every registered case's layer (the image cases' too, which tests/test_image_properties.py
    runs), with the layers it wraps (a Flow's, an Invert's)."""
    found = []
    for case in [*CASES.values(), *IMAGE_CASES.values()]:
        stack = [case.build(np.random.default_rng(0))]
        while stack:
            layer = stack.pop()
            found.append(layer)
            stack.extend(getattr(layer, "layers", []))
            if isinstance(getattr(layer, "layer", None), Layer):
                stack.append(layer.layer)
    return found


def _public_classes(base):
    """Non-abstract subclasses of ``base`` exported by npflows, npflows.layers, npflows.transformers."""
    exported = set()
    for module in (nf, nf.layers, nf.transformers):
        for export in module.__all__:
            obj = getattr(module, export)
            if isinstance(obj, type) and issubclass(obj, base) and obj not in (Layer, Transformer):
                exported.add(obj)
    return exported


def test_every_public_layer_and_transformer_has_a_case():
    layers = _built_layers()
    layer_classes = {type(layer) for layer in layers}
    transformer_classes = {type(la.transformer) for la in layers if hasattr(la, "transformer")}
    missing = sorted(
        cls.__name__
        for cls in (_public_classes(Layer) - layer_classes)
        | (_public_classes(Transformer) - transformer_classes)
    )
    assert not missing, f"no case in tests/registry.py for {missing}"


# The layer bases that are not layers of their own: each is tested through its subclasses.
ABSTRACT_BASES = {"Conditioned", "NetConditioned", "ImageLayer"}


def _all_subclasses(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from _all_subclasses(sub)


def test_every_layer_class_in_the_package_has_a_case_exported_or_not():
    """Beyond the exported names: every Layer subclass defined in npflows whose name is public,
    except the abstract bases, appears among the registered cases' layers."""
    import npflows.interop  # noqa: F401  (its layers are private; importing them is the check)

    built = {type(layer) for layer in _built_layers()}
    defined = {
        cls
        for cls in _all_subclasses(Layer)
        if cls.__module__.startswith("npflows.") and not cls.__name__.startswith("_")
    }
    assert {cls.__name__ for cls in defined} >= ABSTRACT_BASES
    missing = sorted(c.__name__ for c in defined - built if c.__name__ not in ABSTRACT_BASES)
    assert not missing, f"no case in tests/registry.py for {missing}"


def test_every_transformer_in_every_conditioner():
    conditioners = (nf.Elementwise, nf.Coupling, nf.MAF, nf.IAF)
    built = {
        (cond, type(layer.transformer))
        for layer in _built_layers()
        for cond in conditioners
        if isinstance(layer, cond)
    }
    for transformer_class in _public_classes(Transformer):
        has_params = transformer_class().n_params > 0
        for cond in conditioners if has_params else (nf.Elementwise,):
            assert (cond, transformer_class) in built, (cond.__name__, transformer_class.__name__)


# -- the dtype contract ------------------------------------------------------------------------------
@names
def test_grads_have_the_dtype_of_their_params(name):
    b = Bound(name, 5, 4)
    b.layer.astype(np.float32)
    z = np.random.default_rng(6).uniform(b.case.low, b.case.high, (4, DIM)).astype(np.float32)
    z = away_from_kinks(z, b.case).astype(np.float32)
    x = b.forward(z)[0]
    for vjp, h in offered_vjps(b, z, x):
        out, log_det, pullback = vjp(h)
        assert out.dtype == log_det.dtype == np.float32
        grad_in, grads = pullback(np.ones_like(out), np.ones_like(log_det))
        assert grad_in.dtype == np.float32
        _assert_dtypes_match(grads, b.layer.params)
    if b.layer.has_inverse_vjp:  # training's own path, which runs the layers' private pullbacks
        context = None
        if b.layer.context_dim:
            context = np.zeros((4, b.layer.context_dim), dtype=np.float32)
        _, grads = nf.Flow([b.layer]).nll_and_grad(x, context)
        _assert_dtypes_match(grads["layers"][0], b.layer.params)


def _assert_dtypes_match(grads, params):
    for (path, g), (_, p) in zip(leaves_with_paths(grads), leaves_with_paths(params), strict=True):
        assert g.dtype == p.dtype, (path, g.dtype, p.dtype)


# -- pullbacks check their cotangents like inputs ------------------------------------------------------
@names
def test_bad_cotangents_are_refused(name):
    b = Bound(name, 7, 2)
    z = away_from_kinks(np.full((2, DIM), 0.3 * (b.case.low + b.case.high) + 0.1), b.case)
    for vjp, h in offered_vjps(b, z, b.forward(z)[0]):
        out, log_det, pullback = vjp(h)
        good, good_ld = np.ones_like(out), np.ones_like(log_det)
        bad_cotangents = {
            "NaN": np.where(np.eye(2, DIM, dtype=bool), np.nan, good),
            "inf": np.where(np.eye(2, DIM, dtype=bool), -np.inf, good),
            "complex": good + 1j,
            "bool": good > 0,
            "object": good.astype(object),
            "shape": good[:, :-1],
        }
        for what, bad in bad_cotangents.items():
            with pytest.raises(ValueError, match="grad_"):
                pullback(bad, good_ld)
            if what != "shape":
                with pytest.raises(ValueError, match="grad_log_det"):
                    pullback(good, bad[:, 0])
        # Real integers are exact in float: the same gradients as the float cotangent.
        grad_int, grads_int = pullback(good.astype(np.int64), good_ld.astype(np.int32))
        grad_float, grads_float = pullback(good, good_ld)
        np.testing.assert_array_equal(grad_int, grad_float)
        for g_int, g_float in zip(leaves(grads_int), leaves(grads_float), strict=True):
            np.testing.assert_array_equal(g_int, g_float)


# -- constructor arguments -------------------------------------------------------------------------------
BAD_COUNTS = [True, False, 2.0, 2.5, np.inf, np.nan, 0, -1, "3", None]


@names
def test_a_bad_dim_is_refused_naming_it(name):
    layer = CASES[name].build(np.random.default_rng(0))
    config = layer.get_config()
    if "dim" not in config:
        pytest.skip("built without a dim argument")
    if "transformer" in config:
        config["transformer"] = layer.transformer
    if isinstance(layer, nf.Coupling):
        config["mask"] = None
    if isinstance(layer, (nf.MAF, nf.IAF)):
        config["order"] = "natural"
    cls = type(layer.layer) if isinstance(layer, nf.Logit) else type(layer)
    cls(**config)  # the configuration itself is valid
    for bad in BAD_COUNTS:
        with pytest.raises((ValueError, TypeError), match="dim"):
            cls(**(config | {"dim": bad}))


# -- a new transformer needs no per-layer code -----------------------------------------------------------
class SoftplusScale(Transformer):
    """h(u; θ) = softplus(θ_1) u + θ_0: a transformer the library does not have, written here only
    to the transformer contract (forward_vjp and _solve)."""

    n_params = 2

    def forward_vjp(self, u, theta):
        t, s = theta[..., 0], theta[..., 1]
        scale = np.logaddexp(0.0, s)  # softplus
        y = scale * u + t

        def pullback(grad_y, grad_log_deriv):
            # dy/du = scale, dy/dt = 1, dy/ds = σ(s) u; log h′ = log scale, ∂/∂s = σ(s) / scale.
            sigma = 1.0 / (1.0 + np.exp(-s))
            grad_s = grad_y * sigma * u + grad_log_deriv * sigma / scale
            return grad_y * scale, np.stack([grad_y, grad_s], axis=-1)

        return y, np.log(scale), pullback

    def _solve(self, y, theta):
        return (y - theta[..., 0]) / np.logaddexp(0.0, theta[..., 1])


@pytest.mark.parametrize(
    "build",
    [
        lambda t, rng: nf.Elementwise(DIM, t),
        lambda t, rng: nf.Coupling(DIM, t, hidden=(8,), activation="tanh", rng=rng),
        lambda t, rng: nf.MAF(DIM, t, hidden=(8,), activation="tanh", order="random", rng=rng),
        lambda t, rng: nf.IAF(DIM, t, hidden=(8,), activation="tanh", rng=rng),
    ],
    ids=["Elementwise", "Coupling", "MAF", "IAF"],
)
def test_a_new_transformer_works_in_every_conditioner(build):
    rng = np.random.default_rng(8)
    layer = build(SoftplusScale(), rng)
    for leaf in leaves(layer.params):
        leaf += 0.4 * rng.standard_normal(leaf.shape)
    errors = check_layer(layer, rng.normal(size=(5, DIM)))
    assert errors["bijection/round_trip"] <= 1e-9
    assert any(key.endswith("vjp/params") for key in errors)
