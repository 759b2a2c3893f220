"""Prebuilt flows, with arguments in the style of zuko: each function returns a :class:`Flow`.

Every coupling flow alternates coupling layers with a mixing layer, so that each coordinate is
transformed conditioned on every other one over the stack (book: ch. 16, "Coupling flows": the
permutations "are initialized randomly and then frozen"). ``mixing`` chooses it:

- ``"reverse"``: reverse the coordinates between consecutive couplings (deterministic; with D = 2
  this alternates the halves). It is built without permutation layers: each coupling's mask is
  the previous one's reversed (counting from the data side, the couplings at an even distance
  transform the last ⌈D/2⌉ coordinates given the first ⌊D/2⌋, the others the first ⌈D/2⌉ given the
  last ⌊D/2⌋), which is the same model, the reversals folded into the masks (and into the net's
  input and output order, which a random initialization does not see; a reversal left over next to
  the base changes nothing, the base being symmetric), without copying every batch through them;
- ``"random"``: a random permutation per layer, drawn from ``rng``;
- ``"lu"``: a learned :class:`LULinear` map (Glow's invertible 1×1 convolution, Kingma & Dhariwal
  2018, arXiv:1807.03039), with its fixed permutation drawn from ``rng``;
- ``"orthogonal"``: a learned :class:`Orthogonal` (Householder) map.

Autoregressive flows (MAF, IAF) reverse the MADE's order from one layer to the next instead.

``orientation`` says in which direction each layer applies its transformer g (docs/coupling.md):
"normalizing" (z = g(x; θ): the density and its gradient run g itself, a spline's closed form, as
in zuko and nflows) is the default of the flows meant for density estimation (NICE, RealNVP, NSF,
PiecewiseLinearFlow, MAF), which benchmarks/quality_2d.py measured to train without the loss
spikes of the generative orientation, whose density runs the spline's inverse; "generative"
(x = g(z; θ)) is the IAF's default, whose reverse-KL training differentiates the sampling map.
Residual stacks (PlanarFlow, RadialFlow, ResidualFlow) need no mixing: every layer sees every
coordinate.
Layers are listed from the base (z) to the data (x), as in :class:`Flow`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .flow import Flow
from .layer import Layer, RNGLike, as_rng, check_int
from .layers import autoregressive
from .layers.actnorm import ActNorm
from .layers.coupling import Coupling
from .layers.diagonal import Diagonal
from .layers.factor_out import FactorOut
from .layers.image import check_image_shape
from .layers.image_coupling import ImageCoupling
from .layers.invconv import InvConv1x1
from .layers.lu import LULinear
from .layers.orthogonal import Orthogonal
from .layers.permutation import Permutation
from .layers.pixel_logit import PixelLogit
from .layers.planar import Planar
from .layers.radial import Radial
from .layers.residual import ResidualBlock
from .layers.squeeze import Squeeze
from .transformers.affine import AdditiveTransformer, AffineTransformer
from .transformers.base import Transformer
from .transformers.piecewise_linear import PiecewiseLinearTransformer
from .transformers.rq_spline import RQSplineTransformer

__all__ = [
    "IAF",
    "MAF",
    "NICE",
    "NSF",
    "coupling_flow",
    "Glow",
    "MultiScaleRealNVP",
    "PiecewiseLinearFlow",
    "PlanarFlow",
    "RadialFlow",
    "RealNVP",
    "ResidualFlow",
]

MIXINGS = ("reverse", "random", "lu", "orthogonal")


def _mixing_layer(kind: str, dim: int, rng) -> Layer:
    if kind == "random":
        return Permutation(dim, "random", rng=rng)
    if kind == "lu":
        return LULinear(dim, rng=rng)
    if kind == "orthogonal":
        return Orthogonal(dim, rng=rng)
    raise ValueError(f"mixing must be one of {MIXINGS}, got {kind!r}")


def coupling_flow(
    dim: int,
    transformer: Transformer,
    n_layers: int,
    hidden: Sequence[int] = (64, 64),
    activation: str = "relu",
    mixing: str = "reverse",
    context_dim: int = 0,
    rng: RNGLike = None,
    *,
    orientation: str = "normalizing",
) -> Flow:
    """``n_layers`` couplings with ``transformer``, a mixing layer between consecutive ones.

    The coupling next to the data transforms the last ⌈D/2⌉ coordinates conditioned on the first
    ⌊D/2⌋ (and the context); the mixing layers (with "reverse": the alternating masks) move every
    coordinate through both roles. ``orientation`` as the module docstring says.
    """
    if check_int(dim, "dim") < 2 and context_dim == 0:
        raise ValueError(f"a coupling flow needs dim ≥ 2 (or a context), got {dim!r}")
    n_layers = check_int(n_layers, "n_layers")
    if mixing not in MIXINGS:
        raise ValueError(f"mixing must be one of {MIXINGS}, got {mixing!r}")
    rng = as_rng(rng)
    last_half = np.arange(dim) >= dim // 2
    layers: list[Layer] = []
    for k in range(n_layers):
        if k > 0 and mixing != "reverse":
            layers.append(_mixing_layer(mixing, dim, rng))
        reversed_frame = mixing == "reverse" and (n_layers - 1 - k) % 2 == 1
        layers.append(
            Coupling(
                dim,
                transformer,
                last_half[::-1] if reversed_frame else last_half,
                hidden,
                activation,
                context_dim=context_dim,
                rng=rng,
                orientation=orientation,
            )
        )
    return Flow(layers)


def NICE(
    dim: int,
    n_layers: int = 4,
    hidden: Sequence[int] = (64, 64),
    activation: str = "relu",
    mixing: str = "reverse",
    context_dim: int = 0,
    rng: RNGLike = None,
    *,
    orientation: str = "normalizing",
) -> Flow:
    """NICE (Dinh et al. 2015, arXiv:1410.8516): additive couplings z_b = x_b + t(x_a) (with
    ``orientation="generative"``: x_b = z_b + t(z_a)), then a learned diagonal scaling next to the
    data (the only layer that changes volume)."""
    flow = coupling_flow(
        dim,
        AdditiveTransformer(),
        n_layers,
        hidden,
        activation,
        mixing,
        context_dim,
        rng,
        orientation=orientation,
    )
    return Flow([*flow.layers, Diagonal(dim)])


def RealNVP(
    dim: int,
    n_layers: int = 8,
    hidden: Sequence[int] = (64, 64),
    activation: str = "relu",
    clamp: float | None = 5.0,
    mixing: str = "reverse",
    context_dim: int = 0,
    rng: RNGLike = None,
    *,
    orientation: str = "normalizing",
) -> Flow:
    """RealNVP (Dinh et al. 2017, arXiv:1605.08803): affine couplings z_b = x_b · exp(s) + t (with
    ``orientation="generative"``: x_b = z_b · exp(s) + t), s and t computed from part a, the
    log-scale soft-clamped, s = c · tanh(s̃ / c) (``clamp`` = c; see AffineTransformer)."""
    return coupling_flow(
        dim,
        AffineTransformer(clamp),
        n_layers,
        hidden,
        activation,
        mixing,
        context_dim,
        rng,
        orientation=orientation,
    )


def NSF(
    dim: int,
    n_layers: int = 4,
    bins: int = 16,
    bound: float = 5.0,
    hidden: Sequence[int] = (64, 64),
    activation: str = "relu",
    mixing: str = "reverse",
    context_dim: int = 0,
    rng: RNGLike = None,
    *,
    orientation: str = "normalizing",
) -> Flow:
    """Neural spline flow (Durkan et al. 2019, arXiv:1906.04032): rational-quadratic spline
    couplings on [−bound, bound] with linear (identity) tails, nflows' convention (docs/elementwise.md).

    By default (``orientation="normalizing"``) each coupling computes z_b = g(x_b; θ(x_a)), so the
    density runs the spline's closed form and sampling its inverse, as in zuko and nflows;
    "generative" applies g from z to x instead (x_b = g(z_b; θ(z_a))).

    The defaults (4 layers of 16 bins on [−5, 5], hidden (64, 64), zero-initialized output layers,
    for standardized data: ``npflows.standardized``) were chosen by benchmarks/quality_2d.py, one
    change at a time from zuko's and nflows' 4 × 8 bins on [−5, 5] (benchmarks/README.md). The
    larger configuration measured there, for sharp densities (narrow modes, edges), is
    ``NSF(dim, n_layers=8, bins=32, bound=3.0)`` ("nsf-large" on the command line).
    """
    return coupling_flow(
        dim,
        RQSplineTransformer(bins, bound),
        n_layers,
        hidden,
        activation,
        mixing,
        context_dim,
        rng,
        orientation=orientation,
    )


def PiecewiseLinearFlow(
    dim: int,
    n_layers: int = 4,
    bins: int = 8,
    bound: float = 5.0,
    hidden: Sequence[int] = (64, 64),
    activation: str = "relu",
    mixing: str = "reverse",
    context_dim: int = 0,
    rng: RNGLike = None,
    *,
    orientation: str = "normalizing",
) -> Flow:
    """Piecewise-linear couplings (Müller et al. 2019, arXiv:1808.03856) on [−bound, bound] with
    identity tails; ``orientation`` as :func:`NSF`."""
    return coupling_flow(
        dim,
        PiecewiseLinearTransformer(bins, bound),
        n_layers,
        hidden,
        activation,
        mixing,
        context_dim,
        rng,
        orientation=orientation,
    )


TRANSFORMERS = ("affine", "spline")


def _autoregressive_flow(
    cls,
    dim,
    n_layers,
    hidden,
    activation,
    transformer,
    bins,
    bound,
    clamp,
    order,
    context_dim,
    rng,
    orientation,
):
    if transformer == "affine":
        g = AffineTransformer(clamp)
    elif transformer == "spline":
        g = RQSplineTransformer(bins, bound)
    else:
        raise ValueError(f"transformer must be one of {TRANSFORMERS}, got {transformer!r}")
    n_layers = check_int(n_layers, "n_layers")
    if order not in ("alternate", "random"):
        raise ValueError(f"order must be 'alternate' or 'random', got {order!r}")
    rng = as_rng(rng)
    layers = []
    for k in range(n_layers):
        made_order = "random" if order == "random" else ("natural", "reversed")[k % 2]
        layers.append(
            cls(dim, g, hidden, activation, made_order, context_dim, rng, orientation=orientation)
        )
    return Flow(layers)


def MAF(
    dim: int,
    n_layers: int = 5,
    hidden: Sequence[int] = (128, 128),
    activation: str = "relu",
    transformer: str = "affine",
    bins: int = 8,
    bound: float = 5.0,
    clamp: float | None = 5.0,
    order: str = "alternate",
    context_dim: int = 0,
    rng: RNGLike = None,
    *,
    orientation: str = "normalizing",
) -> Flow:
    """Masked autoregressive flow (Papamakarios et al. 2017, arXiv:1705.07057): ``n_layers``
    :class:`~npflows.layers.MAF` layers; fast density, sequential sampling (~one pass per layer).

    ``transformer`` is "affine" (log-scale soft clamp ``clamp``) or "spline" (rational-quadratic,
    ``bins`` on [−bound, bound], Durkan et al. 2019). ``order``: "alternate" (natural, reversed,
    natural, …) or "random" (a random order per layer from ``rng``). ``orientation``:
    "normalizing" (z_i = g(x_i; θ_i(x_{<i})), nflows' and zuko's MAF: the density runs g) by
    default, or "generative" (x_i = g(z_i; θ_i(x_{<i}))).
    """
    return _autoregressive_flow(
        autoregressive.MAF,
        dim,
        n_layers,
        hidden,
        activation,
        transformer,
        bins,
        bound,
        clamp,
        order,
        context_dim,
        rng,
        orientation,
    )


def IAF(
    dim: int,
    n_layers: int = 5,
    hidden: Sequence[int] = (128, 128),
    activation: str = "relu",
    transformer: str = "affine",
    bins: int = 8,
    bound: float = 5.0,
    clamp: float | None = 5.0,
    order: str = "alternate",
    context_dim: int = 0,
    rng: RNGLike = None,
    *,
    orientation: str = "generative",
) -> Flow:
    """Inverse autoregressive flow (Kingma et al. 2016, arXiv:1606.04934): ``n_layers``
    :class:`~npflows.layers.IAF` layers; fast sampling with its pullback (reverse-KL training),
    sequential density of new data (about one pass per layer). Arguments as :func:`MAF`, but
    ``orientation`` is "generative" by default (x_i = g(z_i; θ_i(z_{<i})): sampling and its
    pullback run g itself).
    """
    return _autoregressive_flow(
        autoregressive.IAF,
        dim,
        n_layers,
        hidden,
        activation,
        transformer,
        bins,
        bound,
        clamp,
        order,
        context_dim,
        rng,
        orientation,
    )


def PlanarFlow(dim: int, n_layers: int = 32, rng: RNGLike = None) -> Flow:
    """``n_layers`` :class:`~npflows.layers.Planar` layers x = z + û tanh(wᵀz + b) (Rezende &
    Mohamed 2015, arXiv:1505.05770), for reverse-KL fitting; both directions exact (docs/residual.md).
    """
    rng = as_rng(rng)
    return Flow([Planar(dim, rng=rng) for _ in range(check_int(n_layers, "n_layers"))])


def RadialFlow(dim: int, n_layers: int = 32, rng: RNGLike = None) -> Flow:
    """``n_layers`` :class:`~npflows.layers.Radial` layers x = z + β(z − z₀)/(α + ‖z − z₀‖)
    (Rezende & Mohamed 2015), for reverse-KL fitting; inverse in closed form (docs/residual.md)."""
    rng = as_rng(rng)
    return Flow([Radial(dim, rng=rng) for _ in range(check_int(n_layers, "n_layers"))])


def ResidualFlow(
    dim: int,
    n_layers: int = 6,
    hidden: Sequence[int] = (64, 64),
    *,
    activation: str = "lipswish",
    lipschitz: float = 0.9,
    logdet: str = "exact",
    rng: RNGLike = None,
    **block_options,
) -> Flow:
    """``n_layers`` contractive :class:`~npflows.layers.ResidualBlock` layers z = x + g(x) (Chen et
    al. 2019, arXiv:1906.02735), without ActNorm; ``block_options`` (n_terms, n_exact_terms, count,
    count_param, n_probes, spectral_norm, tol, max_iter, …) go to every block. Density in closed
    form; sampling by fixed-point iteration (docs/residual.md)."""
    rng = as_rng(rng)
    return Flow(
        [
            ResidualBlock(
                dim,
                hidden,
                activation=activation,
                lipschitz=lipschitz,
                logdet=logdet,
                rng=rng,
                **block_options,
            )
            for _ in range(check_int(n_layers, "n_layers"))
        ]
    )


# -- multi-scale flows on images -------------------------------------------------------------------
PRIORS = ("conditional", "base")


def _check_levels(shape, levels, squeezes):
    """Raise unless ``levels`` is a positive int and H, W survive ``squeezes(levels)`` halvings."""
    n, (_, h, w) = squeezes(check_int(levels, "levels")), shape
    if h % 2**n or w % 2**n:
        raise ValueError(
            f"{levels} levels squeeze {n} times, so H and W must be multiples of {2**n}; "
            f"got shape {shape}"
        )


def _split(shape, inner_layers, prior, clamp, hidden, rng) -> list[Layer]:
    """The factor-out of ``shape`` (z → x order): FactorOut over the coarser scales, preceded on the
    data side by the learned conditional prior (an affine channel coupling of the exits)."""
    layers: list[Layer] = [FactorOut(shape, Flow(inner_layers))]
    if prior == "conditional":
        layers.append(
            ImageCoupling(
                shape, AffineTransformer(clamp), mask="channel", parity=0, hidden=hidden, rng=rng
            )
        )
    return layers


def Glow(
    shape: Sequence[int] = (1, 8, 8),
    levels: int = 2,
    *,
    steps: int = 4,
    hidden: int = 32,
    clamp: float = 2.0,
    prior: str = "conditional",
    logit: float | None = 0.05,
    rng: RNGLike = None,
) -> Flow:
    """Glow (Kingma & Dhariwal 2018, arXiv:1807.03039): ``levels`` scales of ``steps`` flow steps.

    In the normalizing direction (data → latent) each level squeezes (C, H, W) → (4C, H/2, W/2),
    runs ``steps`` steps of ActNorm → InvConv1x1 → affine channel coupling (ConvNet conditioner
    with ``hidden`` channels, log-scale soft-clamped to ±``clamp``), and then, except at the last
    level, factors out half the channels (:class:`~npflows.FactorOut`); the last level's output is
    the rest of z. ``prior="conditional"`` scores the exits under a learned Gaussian conditioned on
    the channels that stay (Glow's split prior, an affine coupling before the split); "base" under
    the standard normal. z (N, C·H·W) lists the first level's exits first.

    The defaults (2 levels of 4 steps, 32 hidden channels) are sized for the 1×8×8 digits on two
    cores; benchmarks/digits.py measures what they reach. Input x in [0, 1] (dequantized pixels,
    :class:`~npflows.Pixels`); ``logit`` = α puts a :class:`~npflows.PixelLogit` on the data side
    (None: no logit), whose log-det keeps the density on the [0, 1] scale.
    """
    shape = check_image_shape(shape)
    _check_levels(shape, levels, lambda n: n)
    if prior not in PRIORS:
        raise ValueError(f"prior must be one of {PRIORS}, got {prior!r}")
    steps = check_int(steps, "steps")
    rng = as_rng(rng)

    def level(shape, left):  # the layers of this level and the coarser ones, z → x order
        squeeze = Squeeze(shape)
        s = squeeze.latent_shape
        normalizing: list[Layer] = [squeeze]
        for _ in range(int(steps)):
            normalizing += [
                ActNorm(s),
                InvConv1x1(s, rng=rng),
                ImageCoupling(
                    s, AffineTransformer(clamp), mask="channel", parity=0, hidden=hidden, rng=rng
                ),
            ]
        layers = normalizing[::-1]
        if left > 1:
            rest = (s[0] - s[0] // 2, s[1], s[2])
            layers = _split(s, level(rest, left - 1), prior, clamp, hidden, rng) + layers
        return layers

    return _with_logit(level(shape, int(levels)), shape, logit)


def _with_logit(layers, shape, logit) -> Flow:
    """The flow of ``layers`` with a :class:`PixelLogit` (α = ``logit``) on the data side, or none."""
    return Flow(layers if logit is None else [*layers, PixelLogit(shape, logit)])


def MultiScaleRealNVP(
    shape: Sequence[int] = (1, 8, 8),
    levels: int = 2,
    *,
    steps: int = 3,
    hidden: int = 32,
    clamp: float = 2.0,
    prior: str = "base",
    logit: float | None = 0.05,
    rng: RNGLike = None,
) -> Flow:
    """The multi-scale RealNVP (Dinh et al. 2017, arXiv:1605.08803, §3.6), ActNorm for batch norm.

    In the normalizing direction each level but the last runs ``steps`` checkerboard couplings
    (alternating parity), squeezes, runs ``steps`` channel couplings (alternating halves) and
    factors out half the channels; the last level runs ``steps + 1`` checkerboard couplings. Every
    coupling is affine (log-scale soft-clamped to ±``clamp``) with a ConvNet conditioner of
    ``hidden`` channels and is followed by an ActNorm. ``prior``: "base" (RealNVP: exits scored under
    the standard normal) or "conditional" (as :func:`Glow`); ``logit`` as :func:`Glow`.
    """
    shape = check_image_shape(shape)
    _check_levels(shape, levels, lambda n: n - 1)
    if prior not in PRIORS:
        raise ValueError(f"prior must be one of {PRIORS}, got {prior!r}")
    steps = check_int(steps, "steps")
    rng = as_rng(rng)

    def couplings(s, mask, count):  # normalizing order
        out: list[Layer] = []
        for k in range(count):
            out += [
                ImageCoupling(
                    s, AffineTransformer(clamp), mask=mask, parity=k % 2, hidden=hidden, rng=rng
                ),
                ActNorm(s),
            ]
        return out

    def level(shape, left):
        if left == 1:
            return couplings(shape, "checkerboard", int(steps) + 1)[::-1]
        squeeze = Squeeze(shape)
        s = squeeze.latent_shape
        normalizing = couplings(shape, "checkerboard", int(steps))
        normalizing += [squeeze, *couplings(s, "channel", int(steps))]
        rest = (s[0] - s[0] // 2, s[1], s[2])
        return _split(s, level(rest, left - 1), prior, clamp, hidden, rng) + normalizing[::-1]

    return _with_logit(level(shape, int(levels)), shape, logit)
