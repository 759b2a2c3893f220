"""Piecewise-linear transformer (Müller et al. 2019, "Neural importance sampling", arXiv:1808.03856).

Book: ch. 16, "Elementwise flows" (the corrected form of the book's piecewise-linear equation).
"""

from __future__ import annotations

import numpy as np

from ._math import log_softmax, softmax_vjp, take
from .base import Transformer


class PiecewiseLinearTransformer(Transformer):
    """A monotone piecewise-linear map with K equal-width bins; bin masses φ = softmax(θ), θ ∈ ℝᴷ raw.

    ``bound=None``: the map of [0, 1] onto itself. With b = ⌊K h⌋ (0-based, clipped to K − 1),
        f(h) = Σ_{k<b} φ_k + (K h − b) φ_b,    f′(h) = K φ_b,    log f′ = log K + log φ_b.
    Inputs outside [0, 1] are refused (``check_domain`` / ``check_range`` raise ValueError).

    ``bound=B``: the same map rescaled to [−B, B] and the identity outside:
        h′ = (h + B)/(2B),  y = −B + 2B f(h′),  dy/dh = f′(h′) = K φ_b  for |h| ≤ B;  y = h outside.
    y is continuous, but the derivative jumps at ±B (from K φ_0 or K φ_{K−1} to 1), as it does at
    every knot −B + 2Bk/K inside.

    Identity at θ = 0 (φ_k = 1/K). P = K raw numbers per coordinate.

    Args:
        bins: K ≥ 1.
        bound: None for [0, 1], or B > 0 for the rescaled map on [−B, B].
    """

    def __init__(self, bins: int = 5, bound: float | None = None):
        if int(bins) != bins or bins < 1:
            raise ValueError(f"bins must be a positive integer, got {bins!r}")
        if bound is not None and not (np.isfinite(bound) and bound > 0):
            raise ValueError(f"bound must be None or a positive finite number, got {bound!r}")
        self.bins = int(bins)
        self.bound = None if bound is None else float(bound)
        self.n_params = self.bins
        # The spline lives on [lo, lo + width]; bound=None is [0, 1], where nothing lies outside.
        self._lo, self._width = (0.0, 1.0) if bound is None else (-self.bound, 2.0 * self.bound)

    def get_config(self) -> dict:
        return {"bins": self.bins, "bound": self.bound}

    def _check_unit(self, v, name):
        if self.bound is None:
            outside = (v < 0) | (v > 1)
            if outside.any():
                raise ValueError(
                    f"{name} must lie in [0, 1] for a piecewise-linear map with bound=None; "
                    f"{int(outside.sum())} value(s) do not, e.g. {v[outside][0]!r}"
                )

    def check_domain(self, u, name):
        self._check_unit(u, name)

    def check_range(self, y, name):
        self._check_unit(y, name)

    def _masses(self, theta):
        """log φ, φ and the cumulative sums C_0 = 0, C_k = Σ_{j<k} φ_j, C_K = 1 exactly: (…, K + 1)."""
        log_phi = log_softmax(theta)
        phi = np.exp(log_phi)
        cum = np.concatenate([np.zeros(phi.shape[:-1] + (1,)), np.cumsum(phi, axis=-1)], axis=-1)
        cum[..., -1] = 1.0  # so the map ends exactly at 1 whatever the rounding of the sum
        return log_phi, phi, cum

    def _inside(self, v):
        """Which entries lie on the spline's interval, and v clipped into it, scaled to [0, 1]."""
        lo, hi = self._lo, self._lo + self._width
        return (v >= lo) & (v <= hi), (np.clip(v, lo, hi) - lo) / self._width

    def forward_vjp(self, u, theta):
        K = self.bins
        log_phi, phi, cum = self._masses(theta)  # (N, D, K), (N, D, K), (N, D, K + 1)
        inside, h = self._inside(u)  # tails are evaluated at the clipped value, then discarded
        b = np.minimum(np.floor(K * h), K - 1).astype(np.intp)[..., None]  # bin, (N, D, 1)
        frac = K * h - b[..., 0]  # position in the bin, in [0, 1]
        phi_b = take(phi, b)
        # Rounding can leave f an ulp above 1 at h = 1, which the inverse would then refuse.
        f = np.minimum(take(cum, b) + frac * phi_b, 1.0)
        y = np.where(inside, self._lo + self._width * f, u)
        log_deriv = np.where(inside, np.log(K) + take(log_phi, b), 0.0)

        def pullback(grad_y, grad_log_deriv):
            g_y = np.where(inside, grad_y, 0.0)
            g_l = np.where(inside, grad_log_deriv, 0.0)
            grad_u = np.where(inside, grad_y * K * phi_b, grad_y)  # dy/du = K φ_b inside, 1 outside
            # y = lo + width Σ_k a_k φ_k with a_k = 1 (k < b), frac (k = b), 0 (k > b).
            k = np.arange(K)
            a = (k < b) + (k == b) * frac[..., None]
            grad_theta = softmax_vjp(phi, (self._width * g_y)[..., None] * a)
            # log-deriv = log K + log φ_b: ∂/∂θ_j = [j = b] − φ_j.
            grad_theta += g_l[..., None] * ((k == b) - phi)
            return grad_u, grad_theta

        return y, log_deriv, pullback

    def _solve(self, y, theta):
        K = self.bins
        _, phi, cum = self._masses(theta)
        inside, f = self._inside(y)
        # b = #{k = 1 … K−1 : C_k ≤ f}, i.e. C_b ≤ f < C_{b+1} (searchsorted, side="right").
        b = (f[..., None] >= cum[..., 1:K]).sum(axis=-1)[..., None]
        phi_b = take(phi, b)
        # A bin whose mass underflowed to 0 has no interior; send its (empty) range to its left edge.
        frac = np.divide(f - take(cum, b), phi_b, out=np.zeros_like(f), where=phi_b > 0)
        h = (b[..., 0] + np.clip(frac, 0.0, 1.0)) / K
        return np.where(inside, self._lo + self._width * h, y)
