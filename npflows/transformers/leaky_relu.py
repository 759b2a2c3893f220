"""Leaky ReLU transformer (book: ch. 16, "Elementwise flows": a fixed invertible nonlinearity)."""

from __future__ import annotations

import numpy as np

from ._checks import check_finite, positive_finite
from .base import Transformer


class LeakyReLUTransformer(Transformer):
    """h(u) = u for u ≥ 0, α u for u < 0, with fixed α > 0; log h′(u) = log α for u < 0, else 0.

    No parameters (P = 0, no blocks). The derivative jumps at u = 0, where we take the right branch.
    With α > 1 the forward map, with α < 1 its inverse, can overflow for |u| near the largest
    float; that is refused with a ValueError.
    """

    def __init__(self, alpha: float = 0.1):
        self.alpha = positive_finite(alpha, "alpha")

    def get_config(self) -> dict:
        return {"alpha": self.alpha}

    def forward_vjp(self, u, theta):
        negative = u < 0
        slope = np.where(negative, self.alpha, 1.0)
        y = check_finite(slope * u, "y = α u", u, "u")
        log_deriv = np.where(negative, np.log(self.alpha), 0.0)

        def pullback(grad_y, grad_log_deriv):
            # dy/du = slope; log h′ is piecewise constant, so it sends nothing back.
            return grad_y * slope, np.zeros(theta.shape)

        return y, log_deriv, pullback

    def _solve(self, y, theta):
        return check_finite(np.where(y < 0, y / self.alpha, y), "u = y / α", y, "y")
