"""A diagonal linear flow: a positive scale per coordinate and an offset.

Book: ch. 16, "Linear flows", with Ω = diag(exp(s)): f[h] = β + exp(s) ⊙ h, log|det Ω| = Σ_d s_d.
"""

from __future__ import annotations

import numpy as np

from ..layer import Layer, check_int


class Diagonal(Layer):
    """x = exp(s) ⊙ z + β, i.e. Ω = diag(exp(s)).

    Book: ch. 16, "Linear flows": f[h] = β + Ω h.

    ``params == {"log_scale": s (D,), "beta": β (D,)}``, raw; the scale is exp(s) > 0. They start at
    zero, the identity map. Forward log-det: Σ_d s_d for every row, shape (N,); the inverse's is
    −Σ_d s_d. Cost: O(D) per row.
    """

    def __init__(self, dim: int):
        self.dim = check_int(dim, "dim")
        self.params = {"log_scale": np.zeros(self.dim), "beta": np.zeros(self.dim)}

    def get_config(self) -> dict:
        return {"dim": self.dim}

    def _forward_vjp(self, z, context):
        s, beta = self.params["log_scale"], self.params["beta"]
        scale = np.exp(s)  # (D,)
        x = z * scale + beta  # (N, D)

        def pullback(grad_x, grad_log_det):
            # x = z e^s + β: dx/dz = e^s, dx/ds = z e^s, dx/dβ = 1; every row's log-det is Σ s.
            grad_s = (grad_x * z * scale).sum(axis=0) + grad_log_det.sum()
            return grad_x * scale, {"log_scale": grad_s, "beta": grad_x.sum(axis=0)}

        return x, np.full(len(z), s.sum()), pullback

    def _inverse_vjp(self, x, context):
        s, beta = self.params["log_scale"], self.params["beta"]
        inv_scale = np.exp(-s)  # (D,)
        z = (x - beta) * inv_scale  # (N, D)

        def pullback(grad_z, grad_log_det):
            # z = (x − β) e^{−s}: dz/dx = e^{−s}, dz/dβ = −e^{−s}, dz/ds = −z; log-det −Σ s.
            grad_x = grad_z * inv_scale
            grad_s = -(grad_z * z).sum(axis=0) - grad_log_det.sum()
            return grad_x, {"log_scale": grad_s, "beta": -grad_x.sum(axis=0)}

        return z, np.full(len(x), -s.sum()), pullback
