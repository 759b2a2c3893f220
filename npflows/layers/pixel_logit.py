"""The logit of pixel intensities: [0, 1] data sent to ℝ before a flow (RealNVP, arXiv:1605.08803,
§4.1)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .image import ImageLayer


class PixelLogit(ImageLayer):
    """z = logit(α + (1 − 2α) x) entrywise, x = (σ(z) − α) / (1 − 2α) (generative direction).

    Book: ch. 16, "Elementwise flows" (a fixed elementwise flow); RealNVP's preprocessing of
    dequantized pixels. Dequantized pixels x = (k + u)/L fill [0, 1]; the logit sends them to ℝ,
    where the boxes of the darkest and brightest levels become unbounded intervals that an affine
    flow can fit. α keeps the logit finite at x = 0 and 1. The normalizing direction (``inverse``)
    needs α + (1 − 2α) x in (0, 1), i.e. x in (−α/(1 − 2α), (1 − α)/(1 − 2α)) ⊃ [0, 1], and refuses
    other x with a ValueError. Being part of the flow, its log-det enters log p(x), so the density
    (and the bits/dim) stays on the [0, 1] scale of x:

        log|det ∂x/∂z| = Σ_entries [log σ(z) + log σ(−z)] − D log(1 − 2α)   (forward; the inverse's
        is its negative, Σ [log(1 − 2α) − log p − log(1 − p)] with p = α + (1 − 2α) x).

    Args:
        shape: (C, H, W).
        alpha: α in [0, ½); default 0.05. No parameters.
    """

    def __init__(self, shape: Sequence[int], alpha: float = 0.05):
        self._set_shape(shape)
        if isinstance(alpha, bool) or not (np.isfinite(alpha) and 0 <= alpha < 0.5):
            raise ValueError(f"alpha must be in [0, 0.5), got {alpha!r}")
        self.alpha = float(alpha)
        self.params: dict = {}

    def get_config(self) -> dict:
        return {"shape": list(self.shape), "alpha": self.alpha}

    def _forward_vjp(self, z, context):
        a = self.alpha
        s = 0.5 * (1.0 + np.tanh(0.5 * z))  # σ(z) without overflow
        x = (s - a) / (1.0 - 2.0 * a)
        # log σ(z) + log σ(−z) = −softplus(−z) − softplus(z)
        log_deriv = -np.logaddexp(0.0, -z) - np.logaddexp(0.0, z) - np.log1p(-2.0 * a)
        n = len(z)

        def pullback(grad_x, grad_log_det):
            # dx/dz = σ(1 − σ)/(1 − 2α); d/dz [log σ(z) + log σ(−z)] = (1 − σ) − σ = 1 − 2σ.
            grad_z = grad_x * (s * (1.0 - s) / (1.0 - 2.0 * a))
            grad_z += grad_log_det.reshape(n, 1, 1, 1) * (1.0 - 2.0 * s)
            return grad_z, {}

        return x, log_deriv.reshape(n, -1).sum(axis=1) if n else np.zeros(0, z.dtype), pullback

    def _inverse_vjp(self, x, context):
        a = self.alpha
        p = a + (1.0 - 2.0 * a) * x
        outside = ~((p > 0) & (p < 1))
        if outside.any():
            first = np.argwhere(outside)[0]
            raise ValueError(
                f"x must lie in ({-a / (1 - 2 * a):.4g}, {(1 - a) / (1 - 2 * a):.4g}) for the pixel "
                f"logit (alpha={a}); x[{', '.join(map(str, first))}] = {x[tuple(first)]!r}"
            )
        z = np.log(p) - np.log1p(-p)
        log_deriv = np.log1p(-2.0 * a) - np.log(p) - np.log1p(-p)
        n = len(x)

        def pullback(grad_z, grad_log_det):
            # dz/dx = (1 − 2α)/(p(1 − p)); d/dx [−log p − log(1 − p)] = −(1 − 2α)(1 − 2p)/(p(1 − p)).
            dz_dx = (1.0 - 2.0 * a) / (p * (1.0 - p))
            grad_x = grad_z * dz_dx - grad_log_det.reshape(n, 1, 1, 1) * (1.0 - 2.0 * p) * dz_dx
            return grad_x, {}

        return z, log_deriv.reshape(n, -1).sum(axis=1) if n else np.zeros(0, x.dtype), pullback
