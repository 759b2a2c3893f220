"""Monotone rational-quadratic spline transformer with linear tails (Durkan et al. 2019, "Neural
spline flows", arXiv:1906.04032), in the convention of nflows'
``unconstrained_rational_quadratic_spline(..., tails="linear", tail_bound=B)``.

Book: ch. 16, "Elementwise flows". docs/elementwise.md is the contract.

Inside, the N·D coordinates are one flat axis of M entries, and the knots are stored bin-major,
(K + 1, M) rather than (M, K + 1): the sums and cumulative sums over bins then run over whole rows
of coordinates, which numpy does much faster than over many short rows of K entries.
"""

from __future__ import annotations

import numpy as np

from ._math import softmax_vjp
from .base import Transformer


def _cumsum_bins(a, out=None):
    """``np.cumsum(a, axis=1, out=out)``: the same sums, added a whole row of coordinates at a time.
    numpy scans each coordinate's few bins separately, several times slower for a few bins."""
    out = np.empty_like(a) if out is None else out
    running = 0.0
    for k in range(a.shape[1]):
        running = np.add(running, a[:, k], out=out[:, k])
    return out


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
        self._min_wh = np.array([min_width, min_height], dtype=float).reshape(2, 1, 1)

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
        """The knots (3, K + 1, M): x_k, y_k and δ_k for k = 0 … K, and their pullback.

        Widths and heights are built side by side, as rows 0 and 1 of (2, K, M) arrays:
            w = m + (1 − m K) φ, φ = softmax(θ) over the bins;  x_0 = −B,
            x_k = −B + 2B Σ_{j<k} w_j (k = 1 … K−1),  x_K = B (set, not summed);
        and δ_k = m_d + softplus(θ_d,k) (k = 1 … K−1), δ_0 = δ_K = 1.
        """
        K, B = self.bins, self.bound
        raw = np.ascontiguousarray(theta.reshape(-1, theta.shape[-1]).T)  # (P, M), bin-major
        raw_wh = raw[: 2 * K].reshape(2, K, -1)
        raw_d = raw[2 * K :]
        m = self._min_wh.astype(theta.dtype, copy=False)
        e = np.exp(raw_wh - raw_wh.max(axis=1, keepdims=True))
        phi = e / e.sum(axis=1, keepdims=True)
        knots = np.empty((3, K + 1, raw.shape[1]), dtype=theta.dtype)
        knots[:2, 0], knots[:2, K], knots[2, 0], knots[2, K] = -B, B, 1.0, 1.0
        inner = knots[:2, 1:K]  # a view: the cumulative sum and scaling are written in place
        _cumsum_bins(m + (1.0 - m * K) * phi[:, :-1], out=inner)
        inner *= 2.0 * B
        inner -= B
        # softplus(θ) = max(θ, 0) + log(1 + e^{−|θ|}) without overflow; its derivative σ(θ) is
        # 1 / (1 + e^{−|θ|}) for θ ≥ 0 and e^{−|θ|} / (1 + e^{−|θ|}) for θ < 0.
        e_d = np.exp(-np.abs(raw_d))
        knots[2, 1:K] = self.min_derivative + (np.maximum(raw_d, 0.0) + np.log1p(e_d))

        def pullback(grad_knots):
            """∂L/∂θ (N, D, P) from ∂L/∂knots (3, K + 1, M); the fixed end knots drop theirs."""
            # x_k = −B + 2B Σ_{j<k} w_j for k = 1 … K−1, so ∂L/∂w_j = 2B Σ_{k=j+1}^{K−1} ∂L/∂x_k: a
            # reversed cumulative sum of the interior gradients, shifted by one, ∂L/∂w_{K−1} = 0.
            grad_w = np.zeros_like(phi)
            grad_w[:, :-1] = _cumsum_bins(grad_knots[:2, K - 1 : 0 : -1])[:, ::-1]
            grad_raw = np.empty_like(raw)
            grad_raw[: 2 * K] = softmax_vjp(phi, 2.0 * B * (1.0 - m * K) * grad_w, axis=1).reshape(
                2 * K, -1
            )
            sigma = np.where(raw_d >= 0, 1.0, e_d) / (1.0 + e_d)
            grad_raw[2 * K :] = grad_knots[2, 1:K] * sigma
            return grad_raw.T.reshape(theta.shape)

        return knots, pullback

    def _bin(self, v, knots):
        """Clipped v (M,), and where each entry's bin k and k + 1 sit in a raveled (K + 1, M) array,
        (2, M); k is the number of interior knots ≤ v, so ±B are inside."""
        vc = v.clip(-self.bound, self.bound)
        k = (vc >= knots[1 : self.bins]).sum(axis=0)
        at = k * len(k) + np.arange(len(k))
        return vc, np.stack([at, at + len(k)])

    def _forward(self, u, knots, knots_pullback):
        """``forward_vjp`` on the knots of :meth:`_spline`, with ℓ_u for :meth:`_inverse_parts`."""
        shape, u = u.shape, u.reshape(-1)  # (M,)
        inside = np.abs(u) <= self.bound
        uc, ends = self._bin(u, knots[0])  # tails are evaluated at ±B, then discarded
        # 1. the bin's ends and slopes, gathered at once: (x, y, δ) × (lo, hi), each (M,)
        (x_lo, x_hi), (y_lo, y_hi), (d_lo, d_hi) = np.take(knots.reshape(3, -1), ends, axis=1)
        # 2. bin width and height
        w = x_hi - x_lo
        h = y_hi - y_lo
        # 3. secant slope
        s = h / w
        # 4. position in the bin, in [0, 1] (rounding is monotone, so it cannot leave [0, 1])
        xi = (uc - x_lo) / w
        # 5.
        one_m_xi = 1.0 - xi
        t = xi * one_m_xi
        xi2 = xi * xi
        # 6. numerator and 7. denominator of the rational quadratic
        Nm = s * xi2 + d_lo * t
        Delta = d_hi + d_lo - 2.0 * s
        Dn = s + Delta * t
        # 8. output
        q = Nm / Dn
        y_in = y_lo + h * q
        # 9. derivative numerator: dy/du = s² E / Dn², all three positive
        one_m_xi2 = one_m_xi * one_m_xi
        E = d_hi * xi2 + 2.0 * s * t + d_lo * one_m_xi2
        # 10. log-derivative ℓ = 2 log s + log E − 2 log Dn, taken as one log
        ell = np.log(s * s * E / (Dn * Dn))
        y = np.where(inside, y_in, u).reshape(shape)
        log_deriv = np.where(inside, ell, 0.0).reshape(shape)

        def pullback(grad_y, grad_log_deriv):
            grad_y = grad_y.reshape(-1)
            g_y = np.where(inside, grad_y, 0.0)
            g_ell = np.where(inside, grad_log_deriv.reshape(-1), 0.0)
            # 10. ell = 2 log s + log E − 2 log Dn
            g_s = 2.0 * g_ell / s
            g_E = g_ell / E
            g_Dn = -2.0 * g_ell / Dn
            # 9. E = d_hi ξ² + 2 s t + d_lo (1 − ξ)²
            g_dhi = g_E * xi2
            g_dlo = g_E * one_m_xi2
            g_xi = 2.0 * g_E * (d_hi * xi - d_lo * one_m_xi)
            g_s += 2.0 * g_E * t
            g_t = 2.0 * g_E * s
            # 8. y = y_lo + h q, q = Nm / Dn
            g_ylo = g_y
            g_h = g_y * q
            g_Nm = g_y * h / Dn
            g_Dn -= g_Nm * q
            # 7. Dn = s + Δ t, Δ = d_hi + d_lo − 2 s
            g_s += g_Dn * (1.0 - 2.0 * t)
            g_dhi += g_Dn * t
            g_t += g_Dn * Delta
            # 6. Nm = s ξ² + d_lo t (and 7.'s d_lo term)
            g_s += g_Nm * xi2
            g_xi += 2.0 * g_Nm * s * xi
            g_dlo += (g_Dn + g_Nm) * t
            g_t += g_Nm * d_lo
            # 5. t = ξ (1 − ξ)
            g_xi += g_t * (1.0 - 2.0 * xi)
            # 4. ξ = (u − x_lo) / w
            g_u = g_xi / w
            g_w = -g_u * xi
            # 3. s = h / w
            g_h += g_s / w
            g_w -= g_s * s / w
            # 2. w = x_hi − x_lo, h = y_hi − y_lo;  1. scattered back into the knot arrays
            grad_ends = np.stack([-g_u - g_w, g_w, g_ylo - g_h, g_h, g_dlo, g_dhi])
            grad_knots = np.zeros_like(knots)
            grad_knots.reshape(3, -1)[:, ends] = grad_ends.reshape(3, *ends.shape)
            return np.where(inside, g_u, grad_y).reshape(shape), knots_pullback(grad_knots)

        def dl_du():
            # ℓ_u = (E′/E − 2 Dn′/Dn) / w with E′ = dE/dξ = 2 (d_hi ξ − d_lo (1 − ξ) + s (1 − 2ξ)) and
            # Dn′ = Δ (1 − 2ξ); 0 in the tails.
            one_m_2xi = 1.0 - 2.0 * xi
            dE = 2.0 * (d_hi * xi - d_lo * one_m_xi + s * one_m_2xi)
            return np.where(inside, (dE / E - 2.0 * Delta * one_m_2xi / Dn) / w, 0.0).reshape(shape)

        return y, log_deriv, pullback, dl_du

    def forward_vjp(self, u, theta):
        return self._forward(u, *self._spline(theta))[:3]

    def _inverse_parts(self, y, theta):
        spline = self._spline(theta)  # computed once, for the solve and the forward pass at u
        u = self._solve_on_knots(y, spline[0])
        return (u, *self._forward(u, *spline)[1:])

    def _solve_on_knots(self, y, knots):
        """u with h(u) = y, on the knots (3, K + 1, M) of :meth:`_spline`."""
        shape, y = y.shape, y.reshape(-1)  # (M,)
        inside = np.abs(y) <= self.bound
        yc, ends = self._bin(y, knots[1])
        (x_lo, x_hi), (y_lo, y_hi), (d_lo, d_hi) = np.take(knots.reshape(3, -1), ends, axis=1)
        w, h = x_hi - x_lo, y_hi - y_lo
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
        return np.where(inside, x_lo + xi * w, y).reshape(shape)
