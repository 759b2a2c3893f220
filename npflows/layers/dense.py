"""A dense linear flow: any invertible matrix Ω and an offset β.

Book: ch. 16, "Linear flows": f[h] = β + Ω h, f⁻¹[h′] = Ω⁻¹(h′ − β), log|det ∂f/∂h| = log|det Ω|.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy.linalg import LinAlgWarning, lu_factor, lu_solve
from scipy.linalg.lapack import dgecon

from ..layer import Layer, check_int


def _log_abs_det(Omega):
    """log|det Ω| by ``np.linalg.slogdet``; ValueError if Ω is singular or not finite."""
    sign, log_abs_det = np.linalg.slogdet(Omega)
    if sign == 0 or not np.isfinite(log_abs_det):
        raise ValueError(f"Omega must be finite and invertible, but log|det Omega| = {log_abs_det}")
    return log_abs_det


def _lu(Omega):
    """The LU factors of Ω; ValueError if Ω is numerically singular.

    Numerically singular means a reciprocal condition number (LAPACK ``gecon``, 1-norm) below machine
    epsilon, the test ``scipy.linalg.solve`` warns on: a solve would then return noise.
    """
    with warnings.catch_warnings():  # an exactly singular Ω is reported below, as a ValueError
        warnings.simplefilter("ignore", LinAlgWarning)
        lu_piv = lu_factor(Omega, check_finite=False)
    rcond, _ = dgecon(lu_piv[0], np.linalg.norm(Omega, 1))
    if not rcond >= np.finfo(float).eps:
        raise ValueError(
            f"Omega is numerically singular (reciprocal condition number {rcond:.3g}), so it has "
            "no usable inverse"
        )
    return lu_piv


def _lu_log_abs_det(lu_piv):
    """log|det Ω| = Σ_i log|U_ii| from the LU factors P L U of Ω (L has a unit diagonal)."""
    return float(np.log(np.abs(np.diag(lu_piv[0]))).sum())


def _inverse_transpose(lu_piv):
    """Ω⁻ᵀ from the LU factors of Ω, by solving Ωᵀ X = I (no second factorization)."""
    lu = lu_piv[0]
    return lu_solve(lu_piv, np.eye(len(lu), dtype=lu.dtype), trans=1)


class Linear(Layer):
    """x = Ω z + β with a dense Ω (row-vector code: ``x = z @ Omega.T + beta``).

    Book: ch. 16, "Linear flows": f[h] = β + Ω h.

    ``params == {"Omega": Ω (D, D), "beta": β (D,)}``, used as they are (no constraint); they start
    at Ω = I, β = 0, the identity map. Ω must stay invertible: a singular Ω raises ValueError.
    Forward log-det: log|det Ω| (by ``slogdet``), the same for every row, shape (N,); the inverse's
    is −log|det Ω|. The pullbacks and the inverse use one LU factorization per call, which gives
    the log-det (Σ log|U_ii|), the solves and Ω⁻ᵀ.
    Cost: O(D³) per call for the factorization (and for the log-det), plus O(N D²).
    """

    def __init__(self, dim: int):
        self.dim = check_int(dim, "dim")
        self.params = {"Omega": np.eye(self.dim), "beta": np.zeros(self.dim)}

    def get_config(self) -> dict:
        return {"dim": self.dim}

    def _forward(self, z, context):
        Omega, beta = self.params["Omega"], self.params["beta"]
        return z @ Omega.T + beta, np.full(len(z), _log_abs_det(Omega))

    def _forward_vjp(self, z, context):
        Omega, beta = self.params["Omega"], self.params["beta"]
        lu_piv = _lu(Omega)  # refuses a numerically singular Ω, whose Ω⁻ᵀ the pullback needs
        log_abs_det = _lu_log_abs_det(lu_piv)
        x = z @ Omega.T + beta  # (N, D)

        def pullback(grad_x, grad_log_det):
            # x_n = Ω z_n + β: ∂L/∂z_n = Ωᵀ grad_x_n, ∂L/∂Ω = Σ_n grad_x_n z_nᵀ, ∂L/∂β = Σ_n grad_x_n.
            # log|det Ω| is in every row: ∂ log|det Ω|/∂Ω = Ω⁻ᵀ.
            Omega_inv_T = _inverse_transpose(lu_piv)
            grad_Omega = grad_x.T @ z + grad_log_det.sum() * Omega_inv_T
            return grad_x @ Omega, {"Omega": grad_Omega, "beta": grad_x.sum(axis=0)}

        return x, np.full(len(z), log_abs_det), pullback

    def _inverse(self, x, context):
        Omega, beta = self.params["Omega"], self.params["beta"]
        lu_piv = _lu(Omega)
        z = lu_solve(lu_piv, (x - beta).T, check_finite=False).T
        return z, np.full(len(x), -_lu_log_abs_det(lu_piv))

    def _inverse_vjp(self, x, context):
        Omega, beta = self.params["Omega"], self.params["beta"]
        lu_piv = _lu(Omega)
        log_abs_det = _lu_log_abs_det(lu_piv)
        z = lu_solve(lu_piv, (x - beta).T, check_finite=False).T  # z_n = Ω⁻¹ (x_n − β), (N, D)

        def pullback(grad_z, grad_log_det):
            # ∂L/∂x_n = Ω⁻ᵀ grad_z_n, solved as Ωᵀ a_n = grad_z_n; ∂L/∂β = −Σ_n a_n.
            grad_x = lu_solve(lu_piv, grad_z.T, trans=1, check_finite=False).T
            # dz_n = −Ω⁻¹ dΩ Ω⁻¹ (x_n − β) = −Ω⁻¹ dΩ z_n, so ∂L/∂Ω = −Σ_n a_n z_nᵀ.
            # The log-det −log|det Ω| adds −Ω⁻ᵀ per row.
            Omega_inv_T = _inverse_transpose(lu_piv)
            grad_Omega = -grad_x.T @ z - grad_log_det.sum() * Omega_inv_T
            return grad_x, {"Omega": grad_Omega, "beta": -grad_x.sum(axis=0)}

        return z, np.full(len(x), -log_abs_det), pullback
