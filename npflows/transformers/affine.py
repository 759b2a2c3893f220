"""Affine and additive transformers (RealNVP, Dinh et al. 2017, arXiv:1605.08803; NICE, Dinh et al.
2015, arXiv:1410.8516). Book: ch. 16, "Coupling flows"."""

from __future__ import annotations

import numpy as np

from .base import Transformer


class AffineTransformer(Transformer):
    """h(u; θ) = u · exp(s) + t, with θ = (t, s̃) raw and log-scale s = c · tanh(s̃ / c).

    log h′ = s. The soft clamp keeps |s| < c so that one coupling layer can never scale by more than
    exp(c) (a common cause of diverging RealNVP training); ``clamp=None`` uses s = s̃ unclamped.
    With the clamp, ds/ds̃ = 1 − tanh²(s̃ / c). Identity at θ = (0, 0).

    Args:
        clamp: c > 0, or None for no clamp. Default 5, so scales stay within [e⁻⁵, e⁵] per layer.
    """

    n_params = 2

    def __init__(self, clamp: float | None = 5.0):
        if clamp is not None and not (np.isfinite(clamp) and clamp > 0):
            raise ValueError(f"clamp must be None or a positive finite number, got {clamp!r}")
        self.clamp = None if clamp is None else float(clamp)

    def get_config(self) -> dict:
        return {"clamp": self.clamp}

    def _log_scale(self, s_raw):
        """s and ds/ds̃."""
        if self.clamp is None:
            return s_raw, 1.0
        tanh = np.tanh(s_raw / self.clamp)
        return self.clamp * tanh, 1.0 - tanh * tanh

    def forward_vjp(self, u, theta):
        return self._forward_vjp(u, theta[..., 0], *self._log_scale(theta[..., 1]))

    def _forward_vjp(self, u, t, s, ds_dsraw):
        """``forward_vjp`` given t, the log-scale s and ds/ds̃."""
        scale = np.exp(s)
        y = u * scale + t

        def pullback(grad_y, grad_log_deriv):
            # y = u e^s + t: dy/du = e^s, dy/dt = 1, dy/ds = u e^s; log h′ = s.
            grad_s = grad_y * u * scale + grad_log_deriv
            grad_theta = np.stack([grad_y, grad_s * ds_dsraw], axis=-1)
            return grad_y * scale, grad_theta

        return y, s, pullback

    def _inverse_parts(self, y, theta):
        # u = (y − t) e^{−s}; the forward pass at u reuses s, and ℓ_u = 0: log h′ = s is free of u.
        t = theta[..., 0]
        s, ds_dsraw = self._log_scale(theta[..., 1])
        u = (y - t) * np.exp(-s)
        _, log_deriv, pullback = self._forward_vjp(u, t, s, ds_dsraw)
        return u, log_deriv, pullback, lambda: 0.0


class AdditiveTransformer(Transformer):
    """h(u; θ) = u + t with θ = (t,); volume preserving, log h′ = 0 (NICE)."""

    n_params = 1

    def forward_vjp(self, u, theta):
        y = u + theta[..., 0]

        def pullback(grad_y, grad_log_deriv):
            return grad_y, grad_y[..., None]

        return y, np.zeros_like(u), pullback

    def _solve(self, y, theta):
        return y - theta[..., 0]

    def _inverse_parts(self, y, theta):
        u, log_deriv, pullback, _ = super()._inverse_parts(y, theta)
        return u, log_deriv, pullback, lambda: 0.0  # log h′ = 0
