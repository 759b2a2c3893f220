"""Affine and additive transformers (RealNVP, Dinh et al. 2017, arXiv:1605.08803; NICE, Dinh et al.
2015, arXiv:1410.8516). Book: ch. 16, "Coupling flows"."""

from __future__ import annotations

import numpy as np

from ._checks import check_finite, positive_finite
from .base import Transformer


class AffineTransformer(Transformer):
    """h(u; θ) = u · exp(s) + t, with θ = (t, s̃) raw and log-scale s = c · tanh(s̃ / c).

    Blocks: ``shift`` () = t and ``log_scale`` () = s̃, the raw log-scale before the clamp.

    log h′ = s. The soft clamp keeps |s| < c so that one coupling layer can never scale by more than
    exp(c) (a common cause of diverging RealNVP training); ``clamp=None`` uses s = s̃ unclamped.
    With the clamp, ds/ds̃ = 1 − tanh²(s̃ / c). Identity at θ = (0, 0).

    Args:
        clamp: c > 0, or None for no clamp. Default 5, so scales stay within [e⁻⁵, e⁵] per layer.
    """

    blocks = (("shift", ()), ("log_scale", ()))

    def __init__(self, clamp: float | None = 5.0):
        self.clamp = None if clamp is None else positive_finite(clamp, "clamp", none_ok=True)

    def get_config(self) -> dict:
        return {"clamp": self.clamp}

    def _log_scale(self, s_raw):
        """s and ds/ds̃."""
        if self.clamp is None:
            return s_raw, 1.0
        tanh = np.tanh(s_raw / self.clamp)
        return self.clamp * tanh, 1.0 - tanh * tanh

    def forward_vjp(self, u, theta):
        blocks = self.split_params(theta)
        s, ds_dsraw = self._log_scale(blocks["log_scale"])
        y, _, pullback = self._forward_vjp(u, blocks["shift"], s, ds_dsraw, np.exp(s))
        return check_finite(y, "y = u·exp(s) + t", u, "u"), s, pullback

    def _forward_vjp(self, u, t, s, ds_dsraw, scale=None):
        """``forward_vjp`` given t, the log-scale s, ds/ds̃ and e^s; y is None without e^s (the
        inverse, which needs only the pullback here), and the pullback computes e^s then."""
        y = None if scale is None else u * scale + t

        def pullback(grad_y, grad_log_deriv):
            # y = u e^s + t: dy/du = e^s, dy/dt = 1, dy/ds = u e^s; log h′ = s.
            scale_ = np.exp(s) if scale is None else scale
            grad_s = grad_y * u * scale_ + grad_log_deriv
            grad_theta = self.join_params({"shift": grad_y, "log_scale": grad_s * ds_dsraw})
            return grad_y * scale_, grad_theta

        return y, s, pullback

    def _inverse_parts(self, y, theta):
        # u = (y − t) e^{−s}; the forward pass at u reuses s, and ℓ_u = 0: log h′ = s is free of u.
        blocks = self.split_params(theta)
        t = blocks["shift"]
        s, ds_dsraw = self._log_scale(blocks["log_scale"])
        u = check_finite((y - t) * np.exp(-s), "u = (y − t)·exp(−s)", y, "y")
        _, log_deriv, pullback = self._forward_vjp(u, t, s, ds_dsraw)
        return u, log_deriv, pullback, lambda: 0.0


class AdditiveTransformer(Transformer):
    """h(u; θ) = u + t with θ = (t,); volume preserving, log h′ = 0 (NICE).

    Blocks: ``shift`` () = t.
    """

    blocks = (("shift", ()),)

    def forward_vjp(self, u, theta):
        y = check_finite(u + self.split_params(theta)["shift"], "y = u + t", u, "u")

        def pullback(grad_y, grad_log_deriv):
            return grad_y, self.join_params({"shift": grad_y})

        return y, np.zeros_like(u), pullback

    def _solve(self, y, theta):
        return check_finite(y - self.split_params(theta)["shift"], "u = y − t", y, "y")

    def _inverse_parts(self, y, theta):
        u, log_deriv, pullback, _ = super()._inverse_parts(y, theta)
        return u, log_deriv, pullback, lambda: 0.0  # log h′ = 0
