"""An LU-parametrized linear flow: a dense Ω whose determinant and inverse cost O(D²).

Book: ch. 16, "Linear flows": Ω = P L (U + D) with P a fixed permutation, L unit lower triangular,
U strictly upper triangular and D diagonal, so log|det Ω| = Σ_d log|D_dd|.
Glow's 1×1 convolution uses the same parametrization: Kingma & Dhariwal, 2018, arXiv:1807.03039.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.linalg import solve_triangular

from ..layer import Layer, RNGLike, as_rng, check_int
from .permutation import check_perm


def _raw_grads(grad_L, grad_W, diag, grad_s, grad_beta):
    """∂L/∂L and ∂L/∂W (W = U + D) → raw parameters: L_ij = lower_ij (i > j), W_ij = upper_ij
    (i < j), W_dd = sign_d exp(s_d) = diag_d, so ∂W_dd/∂s_d = diag_d."""
    return {
        "lower": np.tril(grad_L, -1),
        "upper": np.triu(grad_W, 1),
        "log_scale": grad_s + np.diag(grad_W) * diag,
        "beta": grad_beta,
    }


class LULinear(Layer):
    """x = P L (U + D) z + β, (P h)_i = h_{perm[i]}, D = diag(sign ⊙ exp(s)).

    Book: ch. 16, "Linear flows": f[h] = β + Ω h with Ω = P L (U + D).

    Args:
        dim: D.
        perm: the fixed permutation, a sequence holding each of 0, …, D − 1 once; None draws one
            from ``rng``. P is the matrix with P_{i, perm[i]} = 1.
        sign: the fixed signs of D's diagonal, a sequence of ±1; None means all +1.
        rng: None, an int seed or a Generator; used only for ``perm=None``.

    ``params == {"lower": (D, D), "upper": (D, D), "log_scale": s (D,), "beta": β (D,)}``, raw:
    L = tril(lower, −1) + I, U = triu(upper, 1); the other entries of ``lower`` and ``upper`` are
    unused (zero gradient). All start at zero, so Ω = P diag(sign).
    Forward log-det: log|det Ω| = Σ_d s_d for every row, shape (N,); the inverse's is −Σ_d s_d.
    Cost: O(D²) per row; the inverse is two triangular solves.
    """

    def __init__(
        self,
        dim: int,
        perm: Sequence[int] | None = None,
        sign: Sequence[int] | None = None,
        rng: RNGLike = None,
    ):
        d = self.dim = check_int(dim, "dim")
        self.perm = check_perm(as_rng(rng).permutation(d) if perm is None else perm, d)
        sign = np.ones(d, dtype=int) if sign is None else np.asarray(sign)
        if sign.shape != (d,) or sign.dtype.kind not in "iuf" or not np.all(np.abs(sign) == 1):
            raise ValueError(f"sign must be a sequence of {d} values, each +1 or -1, got {sign!r}")
        self.sign = sign.astype(int)
        self.params = {
            "lower": np.zeros((d, d)),
            "upper": np.zeros((d, d)),
            "log_scale": np.zeros(d),
            "beta": np.zeros(d),
        }

    def get_config(self) -> dict:
        return {"dim": self.dim, "perm": self.perm.tolist(), "sign": self.sign.tolist()}

    def _factors(self):
        """L (unit lower triangular), W = U + D (upper triangular) and the diagonal of D."""
        p = self.params
        scale = np.exp(p["log_scale"])
        diag = np.where(self.sign < 0, -scale, scale)  # sign ⊙ exp(s), in the parameters' dtype
        L = np.tril(p["lower"], -1) + np.eye(self.dim, dtype=p["lower"].dtype)
        W = np.triu(p["upper"], 1) + np.diag(diag)
        return L, W, diag

    def _forward_vjp(self, z, context):
        L, W, diag = self._factors()
        perm, s = self.perm, self.params["log_scale"]
        h1 = z @ W.T  # h1 = (U + D) z, (N, D)
        h2 = h1 @ L.T  # h2 = L h1
        x = h2[:, perm] + self.params["beta"]  # x = P h2 + β

        def pullback(grad_x, grad_log_det):
            # x = P h2 + β: grad_h2[:, perm[i]] = grad_x[:, i].
            grad_h2 = np.empty_like(grad_x)
            grad_h2[:, perm] = grad_x
            # h2 = L h1: ∂L/∂h1 = Lᵀ grad_h2, ∂L/∂L = Σ_n grad_h2_n h1_nᵀ.
            grad_h1 = grad_h2 @ L
            # h1 = W z: ∂L/∂z = Wᵀ grad_h1, ∂L/∂W = Σ_n grad_h1_n z_nᵀ. Log-det Σ s per row.
            grads = _raw_grads(
                grad_h2.T @ h1, grad_h1.T @ z, diag, grad_log_det.sum(), grad_x.sum(axis=0)
            )
            return grad_h1 @ W, grads

        return x, np.full(len(z), s.sum()), pullback

    def _inverse_vjp(self, x, context):
        L, W, diag = self._factors()
        perm, s = self.perm, self.params["log_scale"]
        shifted = x - self.params["beta"]
        h2 = np.empty_like(shifted)
        h2[:, perm] = shifted  # h2 = P⁻¹ (x − β)
        h1 = solve_triangular(
            L, h2.T, lower=True, unit_diagonal=True, check_finite=False
        ).T  # h1 = L⁻¹ h2
        z = solve_triangular(W, h1.T, lower=False, check_finite=False).T  # z = W⁻¹ h1, (N, D)

        def pullback(grad_z, grad_log_det):
            # z = W⁻¹ h1: ∂L/∂h1 = W⁻ᵀ grad_z; dz = −W⁻¹ dW z, so ∂L/∂W = −Σ_n grad_h1_n z_nᵀ.
            grad_h1 = solve_triangular(W, grad_z.T, lower=False, trans="T", check_finite=False).T
            # h1 = L⁻¹ h2 likewise: ∂L/∂h2 = L⁻ᵀ grad_h1, ∂L/∂L = −Σ_n grad_h2_n h1_nᵀ.
            grad_h2 = solve_triangular(
                L, grad_h1.T, lower=True, unit_diagonal=True, trans="T", check_finite=False
            ).T
            # h2[:, perm[i]] = x[:, i] − β_i, so ∂L/∂x[:, i] = grad_h2[:, perm[i]]. Log-det −Σ s.
            grad_x = grad_h2[:, perm]
            grads = _raw_grads(
                -grad_h2.T @ h1, -grad_h1.T @ z, diag, -grad_log_det.sum(), -grad_x.sum(axis=0)
            )
            return grad_x, grads

        return z, np.full(len(x), -s.sum()), pullback
