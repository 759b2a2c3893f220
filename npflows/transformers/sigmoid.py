"""Sigmoid transformer: maps ℝ onto an open interval, for data with bounded support."""

from __future__ import annotations

import numpy as np

from ._checks import finite_real
from .base import Transformer


def log_sigmoid(u):
    """log σ(u) = −softplus(−u), stable for large |u|."""
    return -np.logaddexp(0.0, -u)


class SigmoidTransformer(Transformer):
    """h(u) = a + (b − a) σ(u), σ(u) = 1 / (1 + e^{−u}), from ℝ onto (a, b). No parameters.

    log h′(u) = log(b − a) + log σ(u) + log σ(−u). The inverse is the logit,
    u = log(y − a) − log(b − a − (y − a)); y must lie strictly inside (a, b).
    In float64, σ(u) rounds to 1 for u > 36.7, so the forward map is only invertible to the last bit
    for |u| below about 36; h′ is computed from u itself, so log-dets stay exact there.
    No parameters (P = 0, no blocks).
    """

    def __init__(self, low: float = 0.0, high: float = 1.0):
        low, high = finite_real(low, "low"), finite_real(high, "high")
        if not (low < high and np.isfinite(high - low)):
            raise ValueError(
                f"need low < high with a finite width high − low, got low={low!r}, high={high!r}"
            )
        self.low, self.high = low, high

    def get_config(self) -> dict:
        return {"low": self.low, "high": self.high}

    def check_range(self, y, name):
        outside = (y <= self.low) | (y >= self.high)
        if outside.any():
            raise ValueError(
                f"{name} must lie strictly inside ({self.low}, {self.high}); "
                f"{int(outside.sum())} value(s) do not, e.g. {float(y[outside][0])!r}"
            )

    def forward_vjp(self, u, theta):
        width = self.high - self.low
        log_sig_pos, log_sig_neg = log_sigmoid(u), log_sigmoid(-u)
        sig_pos, sig_neg = np.exp(log_sig_pos), np.exp(log_sig_neg)
        y = self.low + width * sig_pos
        log_deriv = np.log(width) + log_sig_pos + log_sig_neg
        deriv = np.exp(log_deriv)  # (b − a) σ(u) σ(−u), accurate in both tails

        def pullback(grad_y, grad_log_deriv):
            # d/du [log σ(u) + log σ(−u)] = σ(−u) − σ(u).
            grad_u = grad_y * deriv + grad_log_deriv * (sig_neg - sig_pos)
            return grad_u, np.zeros(theta.shape)

        return y, log_deriv, pullback

    def _solve(self, y, theta):
        return np.log(y - self.low) - np.log(self.high - y)
