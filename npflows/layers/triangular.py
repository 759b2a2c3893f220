"""A lower-triangular linear flow, inverted by a triangular solve.

Book: ch. 16, "Linear flows", with Ω lower triangular: det Ω is the product of its diagonal, and
Ω⁻¹(x − β) is a forward substitution.
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import solve_triangular

from ..layer import Layer, check_int


def _raw_grads(grad_Omega, s, grad_s, grad_beta):
    """∂L/∂Ω (D, D) → the raw parameters: Ω_ij = L̃_ij below the diagonal, Ω_dd = exp(s_d)."""
    grad_s = grad_s + np.diag(grad_Omega) * np.exp(s)
    return {"lower": np.tril(grad_Omega, -1), "log_scale": grad_s, "beta": grad_beta}


class Triangular(Layer):
    """x = Ω z + β, Ω = tril(L̃, −1) + diag(exp(s)) lower triangular with a positive diagonal.

    Book: ch. 16, "Linear flows": f[h] = β + Ω h.

    ``params == {"lower": L̃ (D, D), "log_scale": s (D,), "beta": β (D,)}``, raw. Only the strictly
    lower triangle of L̃ is used (the rest gets zero gradient); the diagonal of Ω is exp(s). They
    start at zero, so Ω = I. Forward log-det: Σ_d s_d for every row, shape (N,); the inverse's is
    −Σ_d s_d. Cost: O(D²) per row, forward by a product and inverse by a triangular solve.
    """

    def __init__(self, dim: int):
        self.dim = check_int(dim, "dim")
        d = self.dim
        self.params = {"lower": np.zeros((d, d)), "log_scale": np.zeros(d), "beta": np.zeros(d)}

    def get_config(self) -> dict:
        return {"dim": self.dim}

    def _Omega(self):
        s = self.params["log_scale"]
        return np.tril(self.params["lower"], -1) + np.diag(np.exp(s)), s

    def _forward_vjp(self, z, context):
        Omega, s = self._Omega()
        x = z @ Omega.T + self.params["beta"]  # (N, D)

        def pullback(grad_x, grad_log_det):
            # x_n = Ω z_n + β: ∂L/∂z_n = Ωᵀ grad_x_n, ∂L/∂Ω = Σ_n grad_x_n z_nᵀ; log-det Σ s per row.
            grads = _raw_grads(grad_x.T @ z, s, grad_log_det.sum(), grad_x.sum(axis=0))
            return grad_x @ Omega, grads

        return x, np.full(len(z), s.sum()), pullback

    def _inverse_vjp(self, x, context):
        Omega, s = self._Omega()
        z = solve_triangular(
            Omega, (x - self.params["beta"]).T, lower=True, check_finite=False
        ).T  # (N, D)

        def pullback(grad_z, grad_log_det):
            # z_n = Ω⁻¹ (x_n − β): ∂L/∂x_n = a_n with Ωᵀ a_n = grad_z_n (a back substitution);
            # dz_n = −Ω⁻¹ dΩ z_n, so ∂L/∂Ω = −Σ_n a_n z_nᵀ; ∂L/∂β = −Σ_n a_n; log-det −Σ s per row.
            grad_x = solve_triangular(Omega, grad_z.T, lower=True, trans="T", check_finite=False).T
            grads = _raw_grads(-grad_x.T @ z, s, -grad_log_det.sum(), -grad_x.sum(axis=0))
            return grad_x, grads

        return z, np.full(len(x), -s.sum()), pullback
