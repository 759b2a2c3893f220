"""The radial flow of Rezende & Mohamed (2015, arXiv:1505.05770): contraction or expansion around a
point z₀, and its inverse in closed form.

x = f(z) = z + β h(r)(z − z₀), h(r) = 1/(α + r), r = ‖z − z₀‖. Every ray from z₀ is mapped onto
itself, so the inverse only has to find the radius, a quadratic. See docs/residual.md.
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit

from ..layer import Layer, RNGLike, as_rng
from .implicit import implicit_pullback

_TINY = np.finfo(np.float64).tiny


class Radial(Layer):
    """x = z + β h(r)(z − z₀), h = 1/(α + r), r = ‖z − z₀‖ (Rezende & Mohamed 2015, appendix A).

    Book: ch. 16, "Residual flows".

    ``params == {"z0": z₀ (D,), "alpha_raw": (1,), "beta_raw": (1,)}``, raw, with
        α = softplus(α_raw) > 0,   β = −α + softplus(β_raw)   (so β > −α, which makes f invertible).
    Written with σ_β = α + β = softplus(β_raw), the map is x − z₀ = k(r)(z − z₀) with the radial scale
    k(r) = 1 + β h(r) = (σ_β + r)/(α + r) > 0, and every formula below avoids the cancellation in
    1 + β h when β ≈ −α. Initial values: z₀ ~ N(0, I) from ``rng``, α_raw = β_raw = 0 (α = log 2,
    β = 0: the identity).

    Forward log-det (shape (N,)):
        (D − 1) log(1 + β h) + log(1 + β h + β h′(r) r)
        = (D − 1) log((σ_β + r)/(α + r)) + log((r(2α + r) + α σ_β)/(α + r)²).
    Inverse in closed form: with ρ = ‖x − z₀‖, ρ = r (σ_β + r)/(α + r) is the quadratic
    r² + (σ_β − ρ) r − αρ = 0, whose one root r ≥ 0 is taken without cancellation,
        r = 2αρ / (B + √(B² + 4αρ)) if B = σ_β − ρ ≥ 0,   r = (−B + √(B² + 4αρ))/2 otherwise;
    then z = z₀ + (x − z₀)/k(r). Its log-det is minus the forward one at z.
    Both directions offer a pullback; the inverse's by the implicit function theorem with the
    Jacobian k I + k′(r) r ê êᵀ (ê = (z − z₀)/r) inverted in closed form. Cost: O(D) per row.
    The map is not differentiable at z = z₀ itself (r has a kink there), where the pullback uses
    the subgradient 0 for r.
    """

    max_abs_input = 1e150  # squares and products with the weights stay finite beyond it

    def __init__(self, dim: int, rng: RNGLike = None):
        if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim < 1:
            raise ValueError(f"dim must be a positive integer, got {dim!r}")
        self.dim = int(dim)
        rng = as_rng(rng)
        self.params = {
            "z0": rng.standard_normal(self.dim),
            "alpha_raw": np.zeros(1),
            "beta_raw": np.zeros(1),
        }

    def get_config(self) -> dict:
        return {"dim": self.dim}

    def _alpha_sigma(self):
        """α = softplus(α_raw) and σ_β = α + β = softplus(β_raw)."""
        alpha = float(np.logaddexp(0.0, self.params["alpha_raw"][0]))
        sigma = float(np.logaddexp(0.0, self.params["beta_raw"][0]))
        return alpha, sigma

    def _log_det(self, r, alpha, sigma):
        """Forward log-det at radius r (N,), and Q = r(2α + r) + ασ_β."""
        quad = r * (2.0 * alpha + r) + alpha * sigma
        log_det = (self.dim - 1) * (np.log(sigma + r) - np.log(alpha + r)) + (
            np.log(quad) - 2.0 * np.log(alpha + r)
        )
        return log_det, quad

    def _forward_vjp(self, z, context):
        z0 = self.params["z0"]
        alpha, sigma = self._alpha_sigma()
        e = z - z0  # (N, D)
        r = np.sqrt(np.einsum("nd,nd->n", e, e))
        k = (sigma + r) / (alpha + r)
        x = z0 + k[:, None] * e
        log_det, quad = self._log_det(r, alpha, sigma)

        def pullback(grad_x, grad_log_det):
            d = self.dim
            # x = z₀ + k e: ∂L/∂k_n = grad_x_n · e_n.
            grad_k = np.einsum("nd,nd->n", grad_x, e)
            # k = (σ + r)/(α + r): ∂k/∂r = (α − σ)/(α + r)², ∂k/∂σ = 1/(α + r), ∂k/∂α = −k/(α + r).
            # log_det = (D−1)[log(σ + r) − log(α + r)] + log Q − 2 log(α + r), Q = r(2α + r) + ασ.
            dld_dr = (d - 1) * (1 / (sigma + r) - 1 / (alpha + r)) + (
                2 * (alpha + r) / quad - 2 / (alpha + r)
            )
            dld_dsigma = (d - 1) / (sigma + r) + alpha / quad
            dld_dalpha = -(d - 1) / (alpha + r) + (2 * r + sigma) / quad - 2 / (alpha + r)
            grad_r = grad_k * (alpha - sigma) / (alpha + r) ** 2 + grad_log_det * dld_dr
            grad_sigma = grad_k @ (1 / (alpha + r)) + grad_log_det @ dld_dsigma
            grad_alpha = grad_k @ (-k / (alpha + r)) + grad_log_det @ dld_dalpha
            # r = ‖e‖: ∂r/∂e = e/r (0 at r = 0); e = z − z₀.
            grad_e = k[:, None] * grad_x + (grad_r / np.maximum(r, _TINY))[:, None] * e
            grads = {
                "z0": grad_x.sum(axis=0) - grad_e.sum(axis=0),
                "alpha_raw": np.array([grad_alpha * expit(self.params["alpha_raw"][0])]),
                "beta_raw": np.array([grad_sigma * expit(self.params["beta_raw"][0])]),
            }
            return grad_e, grads

        return x, log_det, pullback

    def _inverse(self, x, context):
        z0 = self.params["z0"]
        alpha, sigma = self._alpha_sigma()
        e_x = x - z0
        rho = np.sqrt(np.einsum("nd,nd->n", e_x, e_x))
        b = sigma - rho
        root = np.hypot(b, 2.0 * np.sqrt(alpha * rho))  # √(B² + 4αρ) without overflow in B²
        positive = b >= 0
        denominator = np.where(positive, b + root, 1.0)  # there b + root ≥ b + 2√(αρ) > 0
        r = np.where(positive, 2.0 * alpha * rho / denominator, 0.5 * (root - b))
        z = z0 + e_x * ((alpha + r) / (sigma + r))[:, None]
        return z, -self._log_det(r, alpha, sigma)[0]

    def _inverse_vjp(self, x, context):
        z, log_det = self._inverse(x, context)
        _, _, forward_pullback = self._forward_vjp(z, context)
        alpha, sigma = self._alpha_sigma()
        e = z - self.params["z0"]
        r = np.sqrt(np.einsum("nd,nd->n", e, e))
        k = (sigma + r) / (alpha + r)
        unit = e / np.maximum(r, _TINY)[:, None]
        # k + k′ r = Q/(α + r)², so J = k I + k′r ê êᵀ has (J⁻¹ b) = b/k − ê (êᵀb) k′r/(k Q/(α+r)²).
        k_prime_r = r * (alpha - sigma) / (alpha + r) ** 2
        k_total = self._log_det(r, alpha, sigma)[1] / (alpha + r) ** 2

        def solve_jacobian_transpose(rhs):  # J is symmetric
            radial = np.einsum("nd,nd->n", unit, rhs)
            return rhs / k[:, None] - unit * (radial * k_prime_r / (k * k_total))[:, None]

        return z, log_det, implicit_pullback(forward_pullback, solve_jacobian_transpose)
