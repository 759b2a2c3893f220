"""An orthogonal linear flow: a product of Householder reflections and an offset.

Book: ch. 16, "Linear flows": with Ω orthogonal, Ω⁻¹ = Ωᵀ and log|det Ω| = 0.
Householder parametrization: Tomczak & Welling, 2016, arXiv:1611.09630.
"""

from __future__ import annotations

import numpy as np

from ..layer import Layer, RNGLike, as_rng, check_int


def _reflect(h, v):
    """h H_v for rows h (N, D): H_v = I − 2 v vᵀ/‖v‖² is symmetric, so this is H_v applied to each row.

    ‖v‖² is clamped at the smallest positive normal float of v's dtype, so v = 0 acts as the identity instead of 0/0.
    """
    q = max(v @ v, np.finfo(v.dtype).tiny)
    return h - (2.0 / q) * np.outer(h @ v, v)


def _reflect_back(y, grad_y, v):
    """Backward step of y = H_v h: returns h, ∂L/∂h and ∂L/∂v from y, ∂L/∂y.

    H_v is its own inverse, so h = H_v y is recomputed instead of stored (memory O(N D), not O(N D K)).
    With q = ‖v‖², y_n = h_n − 2 (h_n·v) v / q and g_n = ∂L/∂y_n:
      ∂L/∂h_n = H_v g_n,
      ∂L/∂v = −(2/q) Σ_n [(g_n·v) h_n + (h_n·v) g_n − 2 (h_n·v)(g_n·v) v / q].
    """
    h = _reflect(y, v)
    q = max(v @ v, np.finfo(v.dtype).tiny)
    h_v, g_v = h @ v, grad_y @ v  # (N,)
    grad_v = -(2.0 / q) * (g_v @ h + h_v @ grad_y - (2.0 / q) * (h_v @ g_v) * v)
    return h, _reflect(grad_y, v), grad_v


class Orthogonal(Layer):
    """x = Ω z + β with Ω = H_{v_1} H_{v_2} ⋯ H_{v_K}, H_v = I − 2 v vᵀ/‖v‖² (z meets H_{v_K} first).

    Book: ch. 16, "Linear flows": f[h] = β + Ω h, Ω orthogonal.

    Args:
        dim: D.
        n_reflections: K, default D (any orthogonal Ω with det (−1)^K is then reachable).
        rng: None, an int seed or a Generator for the initial v ~ N(0, 1).

    ``params == {"v": rows v_1, …, v_K (K, D), "beta": β (D,)}``, raw: each v is used through
    v/‖v‖ only, with ‖v‖² clamped at ``np.finfo(v.dtype).tiny``. β starts at 0.
    Log-det 0 both ways, shape (N,). Inverse: Ω⁻¹ = Ωᵀ = H_{v_K} ⋯ H_{v_1}.
    Cost: O(K D) per row, the reflections applied to the batch directly (Ω is never formed).
    """

    def __init__(self, dim: int, n_reflections: int | None = None, rng: RNGLike = None):
        self.dim = check_int(dim, "dim")
        k = self.dim if n_reflections is None else check_int(n_reflections, "n_reflections")
        v = as_rng(rng).standard_normal((k, self.dim))
        self.params = {"v": v, "beta": np.zeros(self.dim)}

    def get_config(self) -> dict:
        return {"dim": self.dim, "n_reflections": len(self.params["v"])}

    def _forward_vjp(self, z, context):
        v, beta = self.params["v"], self.params["beta"]
        h = z
        for k in reversed(range(len(v))):  # h ← H_{v_k} h for k = K, …, 1
            h = _reflect(h, v[k])
        x = h + beta

        def pullback(grad_x, grad_log_det):
            # Undo the reflections from the last applied (v_1) to the first (v_K); log-det is 0.
            y, grad_h, grad_v = x - beta, grad_x, np.zeros_like(v)
            for k in range(len(v)):
                y, grad_h, grad_v[k] = _reflect_back(y, grad_h, v[k])
            return grad_h, {"v": grad_v, "beta": grad_x.sum(axis=0)}

        return x, np.zeros(len(z)), pullback

    def _inverse_vjp(self, x, context):
        v, beta = self.params["v"], self.params["beta"]
        h = x - beta
        for k in range(len(v)):  # h ← H_{v_k} h for k = 1, …, K
            h = _reflect(h, v[k])
        z = h

        def pullback(grad_z, grad_log_det):
            # Undo the reflections from the last applied (v_K) to the first (v_1); log-det is 0.
            y, grad_h, grad_v = z, grad_z, np.zeros_like(v)
            for k in reversed(range(len(v))):
                y, grad_h, grad_v[k] = _reflect_back(y, grad_h, v[k])
            return grad_h, {"v": grad_v, "beta": -grad_h.sum(axis=0)}

        return z, np.zeros(len(x)), pullback
