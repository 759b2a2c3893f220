"""Every layer configuration the property tests run over (tests/test_properties.py).

A case builds its layer from an ``rng`` with parameters moved away from their initial values, so a
layer that is the identity at initialization cannot pass by accident. ``low``/``high`` bound the
inputs of ``forward``; ``kinks`` are input values where the map is not smooth, which
finite-difference checks must keep away from. Register a new layer here and it is tested.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

import npflows as nf
from npflows.layer import Layer
from npflows.layers.coupling import Coupling
from npflows.transformers import (
    AdditiveTransformer,
    AffineTransformer,
    LeakyReLUTransformer,
    PiecewiseLinearTransformer,
    RQSplineTransformer,
    SigmoidTransformer,
)
from npflows.tree import leaves

DIM = 3


@dataclass(frozen=True)
class Case:
    build: Callable[[np.random.Generator], Layer]
    low: float = -3.0
    high: float = 3.0
    kinks: tuple[float, ...] = ()


def perturbed(layer: Layer, rng: np.random.Generator, scale: float = 0.5) -> Layer:
    """Add scale · N(0, 1) noise to every parameter of ``layer``, in place; return it."""
    for leaf in leaves(layer.params):
        leaf += scale * rng.standard_normal(leaf.shape)
    return layer


def composite(rng: np.random.Generator) -> Layer:
    """A small Flow used as a layer: composition and its pullbacks are tested like any layer."""
    layers = [
        nf.Elementwise(DIM, AffineTransformer()),
        nf.Elementwise(DIM, AffineTransformer(clamp=None)),
    ]
    return perturbed(nf.Flow(layers), rng)


def coupling(transformer, context_dim=0, mask=None, activation="tanh", orientation="generative"):
    """A builder of a small coupling layer whose net (output layer included) is randomized."""

    def build(rng):
        layer = Coupling(
            DIM,
            transformer,
            mask,
            (8, 8),
            activation,
            context_dim=context_dim,
            rng=rng,
            orientation=orientation,
        )
        return perturbed(layer, rng, scale=0.3)

    return build


def linear(rng: np.random.Generator) -> Layer:
    """A dense linear layer kept well conditioned: Ω = I + 0.3 · N(0, 1)."""
    layer = nf.Linear(DIM)
    layer.params["Omega"] += 0.3 * rng.standard_normal((DIM, DIM))
    layer.params["beta"] += 0.5 * rng.standard_normal(DIM)
    return layer


def autoregressive(cls, transformer, context_dim=0, order="random", orientation="generative"):
    """A builder of a small MAF or IAF whose MADE (output layer included) is randomized."""

    def build(rng):
        layer = cls(
            DIM,
            transformer,
            (8, 8),
            "tanh",
            order,
            context_dim=context_dim,
            rng=rng,
            orientation=orientation,
        )
        return perturbed(layer, rng, scale=0.3)

    return build


def residual_block(rng, activation, hidden=(8, 8)):
    """A small contractive residual block, every parameter randomized, exact log-det.

    The stochastic log-dets ("series", "roulette") are tested in tests/test_residual.py: their value
    is an estimate, which a finite-difference log-det cannot be compared with.
    """
    block = nf.ResidualBlock(DIM, hidden, activation=activation, lipschitz=0.9, rng=rng)
    return perturbed(block, rng, scale=0.5)


CASES: dict[str, Case] = {
    "Linear": Case(linear),
    "Diagonal": Case(lambda rng: perturbed(nf.Diagonal(DIM), rng)),
    "Orthogonal": Case(lambda rng: perturbed(nf.Orthogonal(DIM, rng=rng), rng)),
    "Orthogonal-one-reflection": Case(
        lambda rng: perturbed(nf.Orthogonal(DIM, n_reflections=1, rng=rng), rng)
    ),
    "Triangular": Case(lambda rng: perturbed(nf.Triangular(DIM), rng)),
    "LULinear": Case(lambda rng: perturbed(nf.LULinear(DIM, sign=[1, -1, 1], rng=rng), rng)),
    "Permutation-random": Case(lambda rng: nf.Permutation(DIM, "random", rng=rng)),
    "Permutation-reverse": Case(lambda rng: nf.Permutation(DIM, "reverse")),
    "LeakyReLU": Case(lambda rng: nf.LeakyReLU(DIM, alpha=0.3), kinks=(0.0,)),
    "PiecewiseLinear-unit": Case(
        lambda rng: perturbed(nf.PiecewiseLinear(DIM, bins=5), rng),
        low=0.01,
        high=0.99,
        kinks=(0.2, 0.4, 0.6, 0.8),
    ),
    "PiecewiseLinear-bounded": Case(
        lambda rng: perturbed(nf.PiecewiseLinear(DIM, bins=4, bound=2.0), rng),
        kinks=(-2.0, -1.0, 0.0, 1.0, 2.0),
    ),
    "RQSpline": Case(
        lambda rng: perturbed(nf.RQSpline(DIM, bins=5, bound=2.5), rng), kinks=(-2.5, 2.5)
    ),
    "Sigmoid": Case(lambda rng: nf.Sigmoid(DIM, low=-2.0, high=5.0), low=-8.0, high=8.0),
    "Logit": Case(lambda rng: nf.Logit(DIM, low=-2.0, high=5.0), low=-1.9, high=4.9),
    "Elementwise-affine": Case(
        lambda rng: perturbed(nf.Elementwise(DIM, AffineTransformer()), rng)
    ),
    "Elementwise-affine-unclamped": Case(
        lambda rng: perturbed(nf.Elementwise(DIM, AffineTransformer(clamp=None)), rng)
    ),
    "Elementwise-leaky-relu-transformer": Case(
        lambda rng: nf.Elementwise(DIM, LeakyReLUTransformer(alpha=2.5)), kinks=(0.0,)
    ),
    "Elementwise-sigmoid-transformer": Case(
        lambda rng: nf.Elementwise(DIM, SigmoidTransformer(low=1.0, high=1.5)), low=-4.0, high=4.0
    ),
    "Elementwise-additive": Case(
        lambda rng: perturbed(nf.Elementwise(DIM, AdditiveTransformer()), rng)
    ),
    "Invert-affine": Case(
        lambda rng: nf.Invert(perturbed(nf.Elementwise(DIM, AffineTransformer()), rng))
    ),
    "Flow": Case(composite),
    "Coupling-affine": Case(coupling(AffineTransformer())),
    "Coupling-spline": Case(coupling(RQSplineTransformer(4, 2.5)), kinks=(-2.5, 2.5)),
    "Coupling-spline-context": Case(
        coupling(RQSplineTransformer(4, 2.5), context_dim=2), kinks=(-2.5, 2.5)
    ),
    "Coupling-piecewise-linear": Case(
        coupling(PiecewiseLinearTransformer(4, 2.0)), kinks=(-2.0, -1.0, 0.0, 1.0, 2.0)
    ),
    "MAF-spline": Case(autoregressive(nf.MAF, RQSplineTransformer(4, 2.5)), kinks=(-2.5, 2.5)),
    "IAF-spline-context": Case(
        autoregressive(nf.IAF, RQSplineTransformer(4, 2.5), context_dim=2), kinks=(-2.5, 2.5)
    ),
    "MAF-affine": Case(autoregressive(nf.MAF, AffineTransformer())),
    "MAF-affine-context": Case(autoregressive(nf.MAF, AffineTransformer(), context_dim=2)),
    "IAF-affine": Case(autoregressive(nf.IAF, AffineTransformer(), order="reversed")),
    "IAF-affine-context": Case(autoregressive(nf.IAF, AffineTransformer(), context_dim=2)),
    "Coupling-affine-context": Case(coupling(AffineTransformer(), context_dim=2)),
    "Coupling-additive-mask": Case(coupling(AdditiveTransformer(), mask=[True, False, True])),
    "Coupling-affine-clamp2-silu": Case(coupling(AffineTransformer(clamp=2.0), activation="silu")),
    "Coupling-affine-elu": Case(coupling(AffineTransformer(), activation="elu")),
    "Standardize": Case(
        lambda rng: nf.Standardize(3 * rng.normal(size=DIM), np.exp(rng.normal(size=DIM)))
    ),
    "Planar": Case(lambda rng: perturbed(nf.Planar(DIM, rng=rng), rng)),
    "Radial": Case(lambda rng: perturbed(nf.Radial(DIM, rng=rng), rng)),
    "ResidualBlock-exact-lipswish": Case(lambda rng: residual_block(rng, "lipswish")),
    "ResidualBlock-exact-elu": Case(lambda rng: residual_block(rng, "elu", hidden=(8,))),
    "ResidualBlock-exact-linear": Case(lambda rng: residual_block(rng, "elu", hidden=())),
}


# -- the transformer × conditioner product ---------------------------------------------------------
# Every transformer with parameters inside every conditioner: free parameters (Elementwise), a
# network of the other half (Coupling), a masked network of the preceding coordinates (MAF, IAF).
# The parameter-free transformers (leaky ReLU, sigmoid) have nothing for a conditioner to compute;
# they are registered above in Elementwise. Cases registered above under the same name are kept.
PRODUCT_TRANSFORMERS = {
    "additive": (AdditiveTransformer(), ()),
    "affine": (AffineTransformer(), ()),
    "piecewise-linear": (PiecewiseLinearTransformer(4, 2.0), (-2.0, -1.0, 0.0, 1.0, 2.0)),
    "spline": (RQSplineTransformer(4, 2.5), (-2.5, 2.5)),
}


def elementwise(transformer):
    """A builder of an elementwise layer whose free θ is moved away from the identity."""
    return lambda rng: perturbed(nf.Elementwise(DIM, transformer), rng)


PRODUCT_CONDITIONERS = {
    "Elementwise": elementwise,
    "Coupling": coupling,
    "MAF": lambda transformer: autoregressive(nf.MAF, transformer),
    "IAF": lambda transformer: autoregressive(nf.IAF, transformer),
}
for _t_name, (_transformer, _kinks) in PRODUCT_TRANSFORMERS.items():
    for _c_name, _builder in PRODUCT_CONDITIONERS.items():
        CASES.setdefault(f"{_c_name}-{_t_name}", Case(_builder(_transformer), kinks=_kinks))

# The normalizing orientation (g applied from x to z) of every network-conditioned layer, with the
# transformers whose two maps differ in kind (the spline's inverse is a quadratic solve).
NORMALIZING_CONDITIONERS = {
    "Coupling": lambda t: coupling(t, orientation="normalizing"),
    "Coupling-context": lambda t: coupling(t, context_dim=2, orientation="normalizing"),
    "MAF": lambda t: autoregressive(nf.MAF, t, orientation="normalizing"),
    "IAF": lambda t: autoregressive(nf.IAF, t, context_dim=2, orientation="normalizing"),
}
for _t_name in ("affine", "spline", "piecewise-linear"):
    _transformer, _kinks = PRODUCT_TRANSFORMERS[_t_name]
    for _c_name, _builder in NORMALIZING_CONDITIONERS.items():
        CASES[f"{_c_name}-{_t_name}-normalizing"] = Case(_builder(_transformer), kinks=_kinks)
# -- image layers: x of shape (N, C, H, W) ------------------------------------------------------------
# Run by tests/test_image_properties.py, which shapes the inputs from each layer's latent_shape and
# checks the flattened maps with the same npflows.testing checks. low/high bound the inputs as above.


def initialized(flow: Layer, rng: np.random.Generator) -> Layer:
    """Run the normalizing direction once on random images, so that every ActNorm inside is
    initialized (data-dependent) before the parameters are moved; return the flow."""
    flow.inverse(rng.normal(size=(8, *flow.event_shape)))
    return flow


def image_coupling(shape, transformer=None, scale=0.3, **kwargs):
    def build(rng):
        layer = nf.ImageCoupling(shape, transformer, hidden=4, rng=rng, **kwargs)
        return perturbed(layer, rng, scale=scale)

    return build


def factor_out(rng):
    inner = nf.Flow(
        [
            nf.ImageCoupling((2, 2, 2), mask="checkerboard", parity=1, hidden=4, rng=rng),
            nf.ActNorm((2, 2, 2), initialized=True),
        ]
    )
    return perturbed(nf.FactorOut((4, 2, 2), inner), rng, scale=0.3)


IMAGE_CASES: dict[str, Case] = {
    "Squeeze-2x4x4": Case(lambda rng: nf.Squeeze((2, 4, 4))),
    "ActNorm-2x4x4": Case(lambda rng: perturbed(nf.ActNorm((2, 4, 4), initialized=True), rng)),
    "InvConv1x1-4x2x2": Case(
        lambda rng: perturbed(nf.InvConv1x1((4, 2, 2), sign=[1, -1, 1, 1], rng=rng), rng)
    ),
    "ImageCoupling-checkerboard-2x4x4": Case(image_coupling((2, 4, 4))),
    "ImageCoupling-checkerboard-odd-1x3x3": Case(image_coupling((1, 3, 3), parity=1)),
    "ImageCoupling-channel-4x2x2": Case(image_coupling((4, 2, 2), mask="channel")),
    "ImageCoupling-channel-parity1-3x2x2": Case(
        image_coupling((3, 2, 2), AdditiveTransformer(), mask="channel", parity=1)
    ),
    "ImageCoupling-channel-spline-4x2x2": Case(
        image_coupling((4, 2, 2), RQSplineTransformer(4, 3.0), 0.1, mask="channel"),
        kinks=(-3.0, 3.0),
    ),
    "FactorOut-4x2x2": Case(factor_out),
    "PixelLogit-2x2x3": Case(lambda rng: nf.PixelLogit((2, 2, 3), alpha=0.1), low=-6.0, high=6.0),
    "Glow-1x4x4": Case(
        lambda rng: perturbed(
            initialized(nf.flows.Glow((1, 4, 4), 2, steps=1, hidden=4, logit=None, rng=rng), rng),
            rng,
            0.2,
        )
    ),
    "MultiScaleRealNVP-1x4x4": Case(
        lambda rng: perturbed(
            initialized(
                nf.flows.MultiScaleRealNVP(
                    (1, 4, 4), 2, steps=1, hidden=4, prior="conditional", logit=None, rng=rng
                ),
                rng,
            ),
            rng,
            0.2,
        )
    ),
}
