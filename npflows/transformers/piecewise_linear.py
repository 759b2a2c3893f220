"""Piecewise-linear transformer (Müller et al. 2019, "Neural importance sampling", arXiv:1808.03856).

Book: ch. 16, "Elementwise flows" (the corrected form of the book's piecewise-linear equation).
"""

from __future__ import annotations

import numpy as np

from ..layer import check_int
from ._checks import in_open_interval, positive_finite
from ._math import interval_mask, select, softmax, softmax_vjp, take
from .base import Transformer


class PiecewiseLinearTransformer(Transformer):
    """A monotone piecewise-linear map with K equal-width bins and bin masses φ ≥ m.

    Blocks: ``masses`` (K,) = θ, raw. The masses are
        φ = m + (1 − m K) softmax(θ),   so   m ≤ φ_k ≤ 1 − (K − 1) m  and  Σ_k φ_k = 1,
    with m = ``min_mass`` (default 1e-3, as the RQ spline's minimum width and height). The minimum
    keeps the map a bijection in floating point: without it a bin whose mass underflows below an
    ulp of 1 (θ_k 40 below the others) is flat, and forward then sends whole bins onto one value.

    ``bound=None``: the map of [0, 1] onto itself. With b = ⌊K h⌋ (0-based, clipped to K − 1),
        f(h) = Σ_{k<b} φ_k + (K h − b) φ_b,    f′(h) = K φ_b,    log f′ = log K + log φ_b,
    so K m ≤ f′ ≤ K (1 − (K − 1) m). Inputs outside [0, 1] are refused (``check_domain`` /
    ``check_range`` raise ValueError).

    ``bound=B``: the same map rescaled to [−B, B] and the identity outside:
        h′ = (h + B)/(2B),  y = −B + 2B f(h′),  dy/dh = f′(h′) = K φ_b  for |h| ≤ B;  y = h outside.
    y is continuous, but the derivative jumps at ±B (from K φ_0 or K φ_{K−1} to 1), as it does at
    every knot −B + 2Bk/K inside.

    Identity at θ = 0 (φ_k = 1/K). P = K raw numbers per coordinate.

    Args:
        bins: K ≥ 1.
        bound: None for [0, 1], or B > 0 for the rescaled map on [−B, B].
        min_mass: m in (0, 1/K).
    """

    def __init__(self, bins: int = 5, bound: float | None = None, *, min_mass: float = 1e-3):
        self.bins = check_int(bins, "bins")
        self.bound = positive_finite(bound, "bound", none_ok=True)
        self.min_mass = in_open_interval(min_mass, "min_mass", 0.0, 1.0 / self.bins)
        self.blocks = (("masses", (self.bins,)),)
        # The spline lives on [lo, lo + width]; bound=None is [0, 1], where nothing lies outside.
        self._lo, self._width = (0.0, 1.0) if bound is None else (-self.bound, 2.0 * self.bound)

    def get_config(self) -> dict:
        return {"bins": self.bins, "bound": self.bound, "min_mass": self.min_mass}

    def _check_unit(self, v, name):
        if self.bound is None:
            outside = (v < 0) | (v > 1)
            if outside.any():
                raise ValueError(
                    f"{name} must lie in [0, 1] for a piecewise-linear map with bound=None; "
                    f"{int(outside.sum())} value(s) do not, e.g. {float(v[outside][0])!r}"
                )

    def check_domain(self, u, name):
        self._check_unit(u, name)

    def check_range(self, y, name):
        self._check_unit(y, name)

    def _masses(self, theta):
        """p = softmax(θ), the masses φ = m + (1 − m K) p, and the cumulative sums C_0 = 0,
        C_k = Σ_{j<k} φ_j, C_K = 1 exactly, of shape (…, K + 1)."""
        raw = self.split_params(theta)["masses"]
        p = softmax(raw)
        phi = self.min_mass + (1.0 - self.min_mass * self.bins) * p
        cum = np.concatenate(
            [np.zeros(phi.shape[:-1] + (1,), phi.dtype), np.cumsum(phi, axis=-1)], axis=-1
        )
        cum[..., -1] = 1.0  # so the map ends exactly at 1 whatever the rounding of the sum
        return p, phi, cum

    def _inside(self, v):
        """Which entries lie on the spline's interval (None: all, :func:`interval_mask`), and v
        clipped into it, scaled to [0, 1]."""
        lo, hi = self._lo, self._lo + self._width
        inside = interval_mask(v, lo, hi)
        return inside, ((v if inside is None else np.clip(v, lo, hi)) - lo) / self._width

    def forward_vjp(self, u, theta):
        K = self.bins
        p, phi, cum = self._masses(theta)  # (N, D, K), (N, D, K), (N, D, K + 1)
        inside, h = self._inside(u)  # tails are evaluated at the clipped value, then discarded
        b = np.minimum(np.floor(K * h), K - 1).astype(np.intp)[..., None]  # bin, (N, D, 1)
        frac = K * h - b[..., 0].astype(h.dtype)  # position in the bin, in [0, 1]; h's dtype kept
        phi_b = take(phi, b)
        # Rounding can leave C_b + φ_b an ulp off 1 at h = 1 (the inverse would refuse one above 1):
        # the last knot is set to 1 exactly, as C_K is, and nothing else can exceed it.
        f = np.where(h == 1.0, 1.0, np.minimum(take(cum, b) + frac * phi_b, 1.0))
        y = select(inside, self._lo + self._width * f, u)
        log_deriv = select(inside, np.log(K * phi_b), 0.0)  # φ_b ≥ m > 0

        def pullback(grad_y, grad_log_deriv):
            g_y = select(inside, grad_y, 0.0)
            g_l = select(inside, grad_log_deriv, 0.0)
            grad_u = select(inside, grad_y * K * phi_b, grad_y)  # dy/du = K φ_b inside, 1 outside
            # y = lo + width Σ_k a_k φ_k with a_k = 1 (k < b), frac (k = b), 0 (k > b), and
            # log-deriv = log K + log φ_b: ∂L/∂φ_k = width g_y a_k + [k = b] g_ℓ / φ_b. Then
            # φ = m + (1 − m K) p gives ∂L/∂p = (1 − m K) ∂L/∂φ, and p = softmax(θ) its pullback.
            k = np.arange(K)
            on_b = k == b
            grad_phi = (self._width * g_y)[..., None] * ((k < b) + on_b * frac[..., None])
            grad_phi += on_b * (g_l / phi_b)[..., None]
            grad_theta = softmax_vjp(p, (1.0 - self.min_mass * K) * grad_phi)
            return grad_u, self.join_params({"masses": grad_theta})

        return y, log_deriv, pullback

    def _solve(self, y, theta):
        K = self.bins
        _, phi, cum = self._masses(theta)
        inside, f = self._inside(y)
        # b = #{k = 1 … K−1 : C_k ≤ f}, i.e. C_b ≤ f < C_{b+1} (searchsorted, side="right").
        b = (f[..., None] >= cum[..., 1:K]).sum(axis=-1)[..., None]
        frac = (f - take(cum, b)) / take(phi, b)  # φ_b ≥ m > 0
        h = (b[..., 0].astype(f.dtype) + np.clip(frac, 0.0, 1.0)) / K
        return select(inside, self._lo + self._width * h, y)
