"""Elementwise flows: one monotone transformer per coordinate, its θ free parameters.

Book: ch. 16, "Elementwise flows": f[h] = [f[h_1, φ_1], …, f[h_D, φ_D]], so the Jacobian is diagonal
and log|det ∂f/∂h| = Σ_d log|f′[h_d, φ_d]|.
"""

from __future__ import annotations

import numpy as np

from ..transformers.base import Transformer
from ..transformers.leaky_relu import LeakyReLUTransformer
from ..transformers.piecewise_linear import PiecewiseLinearTransformer
from ..transformers.rq_spline import RQSplineTransformer
from ..transformers.sigmoid import SigmoidTransformer
from .conditioned import Conditioned


class Elementwise(Conditioned):
    """x_d = h(z_d; θ_d) for every coordinate d, with free raw parameters θ of shape (D, P).

    ``params == {"theta": θ}`` (absent when the transformer has no parameters). θ starts at the
    transformer's identity parameters, so a new layer is the identity map.
    Forward log-det: Σ_d log h′(z_d; θ_d), shape (N,); the inverse's is its negative at z = f⁻¹[x].
    """

    def __init__(self, dim: int, transformer: Transformer):
        super().__init__(dim, transformer)
        p = transformer.n_params
        self.params = {"theta": np.tile(transformer.identity_params(), (self.dim, 1))} if p else {}

    def _theta(self, h, context):
        if not self.params:
            return np.zeros((len(h), self.dim, 0))
        return np.broadcast_to(self.params["theta"], (len(h), *self.params["theta"].shape))

    def _theta_vjp(self, h, context):
        def pullback(grad_theta):
            # Every row uses the same θ, so its gradient sums over the rows; θ reads no input.
            return None, ({"theta": grad_theta.sum(axis=0)} if self.params else {})

        return self._theta(h, context), pullback


class LeakyReLU(Elementwise):
    """x = z for z ≥ 0, α z for z < 0, elementwise, with fixed α > 0 (default 0.1). No parameters.

    Forward log-det: (log α) · #{d : z_d < 0}.
    """

    def __init__(self, dim: int, alpha: float = 0.1):
        super().__init__(dim, LeakyReLUTransformer(alpha))

    def get_config(self) -> dict:
        return {"dim": self.dim, "alpha": self.transformer.alpha}


class Sigmoid(Elementwise):
    """x = a + (b − a) σ(z), elementwise, from ℝᴰ onto (a, b)ᴰ; for data with bounded support.

    Put it last in a flow (next to the data): the inverse (the logit) then maps data in (a, b) to ℝ.
    Data on or outside the bounds is refused with a ValueError. No parameters.
    Forward log-det: Σ_d [log(b − a) + log σ(z_d) + log σ(−z_d)].
    """

    def __init__(self, dim: int, low: float = 0.0, high: float = 1.0):
        super().__init__(dim, SigmoidTransformer(low, high))

    def get_config(self) -> dict:
        return {"dim": self.dim, "low": self.transformer.low, "high": self.transformer.high}


class PiecewiseLinear(Elementwise):
    """Piecewise-linear elementwise flow with K equal-width bins (Müller et al. 2019, arXiv:1808.03856).

    Book: ch. 16, "Elementwise flows". ``params["theta"]`` has shape (D, K); bin masses
    φ_d = m + (1 − m K) softmax(θ_d) ≥ m, m = 1e-3 (see PiecewiseLinearTransformer). With
    b = ⌊K z_d⌋ (0-based, clipped to K − 1),
        x_d = Σ_{k<b} φ_{d,k} + (K z_d − b) φ_{d,b},    ∂x_d/∂z_d = K φ_{d,b}.
    ``bound=None``: a map of [0, 1]ᴰ onto itself; z (forward) and x (inverse) outside [0, 1] are
    refused with a ValueError, so put it after a ``Sigmoid`` or on data in [0, 1].
    ``bound=B``: the same map rescaled to [−B, B] (z′ = (z + B)/(2B), x = −B + 2B f(z′), same
    derivative) and the identity outside; the derivative jumps at ±B.
    Forward log-det: Σ_d (log K + log φ_{d,b}) over the coordinates inside, shape (N,).
    Identity at θ = 0, the initial value.
    """

    def __init__(self, dim: int, bins: int = 5, bound: float | None = None):
        super().__init__(dim, PiecewiseLinearTransformer(bins, bound))

    def get_config(self) -> dict:
        return {"dim": self.dim, "bins": self.transformer.bins, "bound": self.transformer.bound}


class RQSpline(Elementwise):
    """Rational-quadratic spline elementwise flow on [−B, B], linear (identity) tails outside.

    Durkan et al. 2019, "Neural spline flows", arXiv:1906.04032; nflows' convention, so the same raw
    numbers give the same map as ``unconstrained_rational_quadratic_spline(..., tails="linear",
    tail_bound=B)`` with its default minima m_w = m_h = m_d = 1e-3. Book: ch. 16, "Elementwise flows".

    ``params["theta"]`` has shape (D, 3K − 1): per coordinate [θ_w (K), θ_h (K), θ_d (K − 1)], with
        w = m_w + (1 − m_w K) softmax(θ_w),  x_0 = −B,  x_k = −B + 2B Σ_{j<k} w_j,  x_K = B;
        heights and y-knots the same from θ_h and m_h;
        δ_k = m_d + softplus(θ_d,k) for k = 1 … K−1,  δ_0 = δ_K = 1.
    In bin k, ξ = (z − x_k)/(x_{k+1} − x_k), s_k = (y_{k+1} − y_k)/(x_{k+1} − x_k):
        x = y_k + (y_{k+1} − y_k)[s_k ξ² + δ_k ξ(1 − ξ)] / [s_k + (δ_{k+1} + δ_k − 2 s_k) ξ(1 − ξ)].
    Forward log-det: Σ_d log ∂x_d/∂z_d, shape (N,), with
        ∂x/∂z = s_k² [δ_{k+1} ξ² + 2 s_k ξ(1 − ξ) + δ_k (1 − ξ)²] / [s_k + (δ_{k+1} + δ_k − 2 s_k) ξ(1 − ξ)]²
    inside [−B, B] and 0 outside. The inverse solves a quadratic in closed form (no NaN from rounding).
    θ starts at the identity: θ_w = θ_h = 0, θ_d = log(exp(1 − m_d) − 1).
    Direction: our forward is generative, so this layer's ``inverse`` (normalizing) applies the
    inverse spline, where an nflows spline layer's normalizing ``forward`` applies the spline itself.
    """

    def __init__(self, dim: int, bins: int = 8, bound: float = 3.0):
        super().__init__(dim, RQSplineTransformer(bins, bound))

    def get_config(self) -> dict:
        return {"dim": self.dim, "bins": self.transformer.bins, "bound": self.transformer.bound}
