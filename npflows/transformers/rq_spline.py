"""Monotone rational-quadratic spline transformer with linear tails (Durkan et al. 2019, "Neural
spline flows", arXiv:1906.04032), in the convention of nflows'
``unconstrained_rational_quadratic_spline(..., tails="linear", tail_bound=B)``.

Book: ch. 16, "Elementwise flows". MATH.md ("Elementwise flows") is the contract.
"""

from __future__ import annotations

import numpy as np

from ._math import log_softmax, softmax_vjp, take
from .base import Transformer
from .sigmoid import log_sigmoid


def _knots(raw, bound, minimum):
    """Knots (…, K + 1) from raw (…, K), and φ = softmax(raw) for the backward.

    w = m + (1 − m K) φ;  x_0 = −B,  x_k = −B + 2B Σ_{j<k} w_j (k = 1 … K−1),  x_K = B (set, not summed).
    """
    K = raw.shape[-1]
    phi = np.exp(log_softmax(raw))
    cum = np.cumsum(minimum + (1.0 - minimum * K) * phi, axis=-1)[..., :-1]
    edge = np.full(raw.shape[:-1] + (1,), bound, dtype=raw.dtype)
    return np.concatenate([-edge, 2.0 * bound * cum - bound, edge], axis=-1), phi


def _knots_vjp(grad_knots, phi, bound, minimum):
    """∂L/∂raw from ∂L/∂knots (…, K + 1). The end knots are constants: their gradients are dropped."""
    K = phi.shape[-1]
    # x_k = −B + 2B Σ_{j<k} w_j for k = 1 … K−1, so ∂L/∂w_j = 2B Σ_{k=j+1}^{K−1} ∂L/∂x_k: a reversed
    # cumulative sum of the interior gradients, shifted by one, with ∂L/∂w_{K−1} = 0.
    inner = grad_knots[..., 1:-1]
    reversed_cumsum = np.cumsum(inner[..., ::-1], axis=-1)[..., ::-1]
    grad_w = np.concatenate(
        [reversed_cumsum, np.zeros(inner.shape[:-1] + (1,), dtype=inner.dtype)], axis=-1
    )
    return softmax_vjp(phi, 2.0 * bound * (1.0 - minimum * K) * grad_w)


def _one_hot(k, n):
    """(…, n) indicator of index k (…, 1)."""
    return np.arange(n) == k


class RQSplineTransformer(Transformer):
    """Monotone rational-quadratic spline on [−B, B] with K bins, the identity outside.

    Raw θ = [θ_w (K), θ_h (K), θ_d (K − 1)], P = 3K − 1, constrained as
        widths  w = m_w + (1 − m_w K) softmax(θ_w),   x_0 = −B, x_k = −B + 2B Σ_{j<k} w_j, x_K = B;
        heights the same from θ_h with m_h, giving y_0 = −B < … < y_K = B;
        slopes  δ_k = m_d + softplus(θ_d,k) for k = 1 … K−1, δ_0 = δ_K = 1.
    In bin k (x_k ≤ u < x_{k+1}; u = B is in bin K − 1), with ξ = (u − x_k)/(x_{k+1} − x_k) and
    s_k = (y_{k+1} − y_k)/(x_{k+1} − x_k):
        y = y_k + (y_{k+1} − y_k)[s_k ξ² + δ_k ξ(1 − ξ)] / [s_k + (δ_{k+1} + δ_k − 2 s_k) ξ(1 − ξ)],
        dy/du = s_k² [δ_{k+1} ξ² + 2 s_k ξ(1 − ξ) + δ_k (1 − ξ)²] / [s_k + (δ_{k+1} + δ_k − 2 s_k) ξ(1 − ξ)]².
    Outside [−B, B], y = u with log-derivative 0; since δ_0 = δ_K = 1 the derivative is continuous.
    ``forward`` equals nflows' function with inverse=False on the same raw numbers (tails="linear",
    tail_bound=B, same minima), ``inverse`` with inverse=True; torch's softplus returns θ itself for
    θ > 20, which differs from log(1 + e^θ) by less than e⁻²⁰.

    Identity: θ_w = θ_h = 0 (uniform bins) and θ_d = log(exp(1 − m_d) − 1) (δ = 1).

    Args:
        bins: K ≥ 1.
        bound: B > 0, the tail bound.
        min_width, min_height: m_w, m_h > 0 with m K < 1. min_derivative: m_d in (0, 1).
    """

    def __init__(
        self,
        bins: int = 8,
        bound: float = 3.0,
        min_width: float = 1e-3,
        min_height: float = 1e-3,
        min_derivative: float = 1e-3,
    ):
        if int(bins) != bins or bins < 1:
            raise ValueError(f"bins must be a positive integer, got {bins!r}")
        if not (np.isfinite(bound) and bound > 0):
            raise ValueError(f"bound must be a positive finite number, got {bound!r}")
        for name, m in (("min_width", min_width), ("min_height", min_height)):
            if not (0 < m and m * bins < 1):
                raise ValueError(f"{name} must lie in (0, 1/bins) = (0, {1 / bins:g}), got {m!r}")
        if not (0 < min_derivative < 1):
            raise ValueError(f"min_derivative must lie in (0, 1), got {min_derivative!r}")
        self.bins, self.bound = int(bins), float(bound)
        self.min_width, self.min_height = float(min_width), float(min_height)
        self.min_derivative = float(min_derivative)
        self.n_params = 3 * self.bins - 1

    def get_config(self) -> dict:
        return {
            "bins": self.bins,
            "bound": self.bound,
            "min_width": self.min_width,
            "min_height": self.min_height,
            "min_derivative": self.min_derivative,
        }

    def identity_params(self) -> np.ndarray:
        slope = np.log(np.expm1(1.0 - self.min_derivative))  # softplus⁻¹(1 − m_d), so δ = 1
        return np.concatenate([np.zeros(2 * self.bins), np.full(self.bins - 1, slope)])

    def _spline(self, theta):
        """x-knots, y-knots and slopes δ, each (…, K + 1), and what the backward needs."""
        K, B = self.bins, self.bound
        x_knots, phi_w = _knots(theta[..., :K], B, self.min_width)
        y_knots, phi_h = _knots(theta[..., K : 2 * K], B, self.min_height)
        raw_d = theta[..., 2 * K :]
        ones = np.ones(raw_d.shape[:-1] + (1,), dtype=raw_d.dtype)
        inner = self.min_derivative + np.logaddexp(0.0, raw_d)  # m_d + softplus, stable
        delta = np.concatenate([ones, inner, ones], axis=-1)
        return x_knots, y_knots, delta, (phi_w, phi_h, raw_d)

    def _bin(self, v, knots):
        """Clipped v, and its bin k (…, 1): the number of interior knots ≤ v, so ±B are inside."""
        vc = np.clip(v, -self.bound, self.bound)
        return vc, (vc[..., None] >= knots[..., 1 : self.bins]).sum(axis=-1)[..., None]

    def forward_vjp(self, u, theta):
        K, B = self.bins, self.bound
        x_knots, y_knots, delta, (phi_w, phi_h, raw_d) = self._spline(theta)
        inside = np.abs(u) <= B
        uc, k = self._bin(u, x_knots)  # tails are evaluated at ±B, then discarded
        # 1. the bin's ends and slopes
        x_lo, x_hi = take(x_knots, k), take(x_knots, k + 1)
        y_lo, y_hi = take(y_knots, k), take(y_knots, k + 1)
        d_lo, d_hi = take(delta, k), take(delta, k + 1)
        # 2. bin width and height
        w = x_hi - x_lo
        h = y_hi - y_lo
        # 3. secant slope
        s = h / w
        # 4. position in the bin, in [0, 1] (rounding is monotone, so it cannot leave [0, 1])
        xi = (uc - x_lo) / w
        # 5.
        t = xi * (1.0 - xi)
        # 6. numerator and 7. denominator of the rational quadratic
        Nm = s * xi**2 + d_lo * t
        Dn = s + (d_hi + d_lo - 2.0 * s) * t
        # 8. output
        y_in = y_lo + h * Nm / Dn
        # 9. derivative numerator: dy/du = s² E / Dn², all three positive
        E = d_hi * xi**2 + 2.0 * s * t + d_lo * (1.0 - xi) ** 2
        # 10. log-derivative
        ell = 2.0 * np.log(s) + np.log(E) - 2.0 * np.log(Dn)
        y = np.where(inside, y_in, u)
        log_deriv = np.where(inside, ell, 0.0)

        def pullback(grad_y, grad_log_deriv):
            g_y = np.where(inside, grad_y, 0.0)
            g_ell = np.where(inside, grad_log_deriv, 0.0)
            # 10. ell = 2 log s + log E − 2 log Dn
            g_s = 2.0 * g_ell / s
            g_E = g_ell / E
            g_Dn = -2.0 * g_ell / Dn
            # 9. E = d_hi ξ² + 2 s t + d_lo (1 − ξ)²
            g_dhi = g_E * xi**2
            g_dlo = g_E * (1.0 - xi) ** 2
            g_xi = g_E * 2.0 * (d_hi * xi - d_lo * (1.0 - xi))
            g_s += g_E * 2.0 * t
            g_t = g_E * 2.0 * s
            # 8. y = y_lo + h Nm / Dn
            g_ylo = g_y.copy()
            g_h = g_y * Nm / Dn
            g_Nm = g_y * h / Dn
            g_Dn -= g_y * h * Nm / Dn**2
            # 7. Dn = s + (d_hi + d_lo − 2 s) t
            g_s += g_Dn * (1.0 - 2.0 * t)
            g_dhi += g_Dn * t
            g_dlo += g_Dn * t
            g_t += g_Dn * (d_hi + d_lo - 2.0 * s)
            # 6. Nm = s ξ² + d_lo t
            g_s += g_Nm * xi**2
            g_xi += g_Nm * 2.0 * s * xi
            g_dlo += g_Nm * t
            g_t += g_Nm * d_lo
            # 5. t = ξ (1 − ξ)
            g_xi += g_t * (1.0 - 2.0 * xi)
            # 4. ξ = (u − x_lo) / w
            g_u = g_xi / w
            g_xlo = -g_u
            g_w = -g_u * xi
            # 3. s = h / w
            g_h += g_s / w
            g_w -= g_s * s / w
            # 2. w = x_hi − x_lo, h = y_hi − y_lo
            g_xhi = g_w
            g_xlo -= g_w
            g_yhi = g_h
            g_ylo -= g_h
            # 1. scatter into the knot arrays; the fixed ends (x_0, x_K, δ_0, δ_K) drop theirs
            lo, hi = _one_hot(k, K + 1), _one_hot(k + 1, K + 1)
            grad_x_knots = g_xlo[..., None] * lo + g_xhi[..., None] * hi
            grad_y_knots = g_ylo[..., None] * lo + g_yhi[..., None] * hi
            grad_delta = g_dlo[..., None] * lo + g_dhi[..., None] * hi
            # δ_k = m_d + softplus(θ_d,k), softplus′ = σ
            grad_raw_d = grad_delta[..., 1:K] * np.exp(log_sigmoid(raw_d))
            grad_theta = np.concatenate(
                [
                    _knots_vjp(grad_x_knots, phi_w, B, self.min_width),
                    _knots_vjp(grad_y_knots, phi_h, B, self.min_height),
                    grad_raw_d,
                ],
                axis=-1,
            )
            return np.where(inside, g_u, grad_y), grad_theta

        return y, log_deriv, pullback

    def _solve(self, y, theta):
        x_knots, y_knots, delta, _ = self._spline(theta)
        inside = np.abs(y) <= self.bound
        yc, k = self._bin(y, y_knots)
        x_lo, w = take(x_knots, k), take(x_knots, k + 1) - take(x_knots, k)
        y_lo, h = take(y_knots, k), take(y_knots, k + 1) - take(y_knots, k)
        d_lo, d_hi = take(delta, k), take(delta, k + 1)
        s = h / w
        # r Dn = h Nm with r = y − y_lo is a quadratic a ξ² + b ξ + c = 0 in ξ:
        #   a = h (s − d_lo) + r Δ,  b = h d_lo − r Δ,  c = −s r,  Δ = d_hi + d_lo − 2s.
        # Its root in [0, 1] is 2c / (−b − √(b² − 4ac)); c ≤ 0 < a + b = h s keeps the denominator
        # negative. The discriminant is clamped at 0 and ξ clipped to [0, 1], so rounding gives no NaN.
        r = yc - y_lo
        Delta = d_hi + d_lo - 2.0 * s
        a = h * (s - d_lo) + r * Delta
        b = h * d_lo - r * Delta
        c = -s * r
        disc = np.maximum(b * b - 4.0 * a * c, 0.0)
        xi = np.clip(2.0 * c / (-b - np.sqrt(disc)), 0.0, 1.0)
        return np.where(inside, x_lo + xi * w, y)
