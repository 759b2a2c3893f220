"""The invertible 1×1 convolution of Glow: one learned C×C matrix applied at every pixel."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..layer import RNGLike
from .image import ImageLayer
from .lu import LULinear


class InvConv1x1(ImageLayer):
    """x[n, :, h, w] = Ω z[n, :, h, w] + β at every pixel, Ω = P L (U + D) (Kingma & Dhariwal 2018,
    arXiv:1807.03039, §3.2, the LU-decomposed form).

    Book: ch. 16, "Multi-scale flows" ("permuted between layers using 1×1 convolutions") and "Linear
    flows" for the parameterization, which is that of :class:`~npflows.LULinear` on the C channels
    (the same raw parameters, the same formulas): L unit lower triangular, U strictly upper
    triangular, D = diag(sign ⊙ exp(s)), P a fixed permutation. The map is the same at every one of
    the H·W pixels, so log|det ∂x/∂z| = H·W·log|det Ω| = H·W·Σ_c s_c per row (forward); the
    inverse's is its negative. Cost O(C²) per pixel; the inverse is two triangular solves.

    Args:
        shape: (C, H, W).
        perm, sign, rng: as :class:`~npflows.LULinear` (None: a permutation drawn from ``rng``,
            signs +1).

    ``params == {"lower": (C, C), "upper": (C, C), "log_scale": s (C,), "beta": β (C,)}``, exactly
    those of ``LULinear(C)``; all start at zero, so Ω = P diag(sign), a channel permutation.
    """

    def __init__(
        self,
        shape: Sequence[int],
        *,
        perm: Sequence[int] | None = None,
        sign: Sequence[int] | None = None,
        rng: RNGLike = None,
    ):
        self._set_shape(shape)
        self.linear = LULinear(self.shape[0], perm=perm, sign=sign, rng=rng)
        self.params = self.linear.params

    def get_config(self) -> dict:
        return {
            "shape": list(self.shape),
            **{k: v for k, v in self.linear.get_config().items() if k != "dim"},
        }

    def _per_pixel(self, h, linear_vjp):
        """Run ``linear_vjp`` on every pixel's channel vector: (N, C, H, W) ↔ (N·H·W, C) rows.

        It is the LU layer's unchecked pass, as a Flow calls its layers: the image was checked
        once at this layer's public boundary, so the rows are not checked again."""
        n, (c, height, width) = len(h), self.shape
        rows = h.transpose(0, 2, 3, 1).reshape(-1, c)
        out_rows, log_det_rows, rows_pullback = linear_vjp(rows)
        out = out_rows.reshape(n, height, width, c).transpose(0, 3, 1, 2)
        log_det = log_det_rows.reshape(n, height * width).sum(axis=1)  # Σ over the pixels

        def pullback(grad_out, grad_log_det):
            # Each pixel's log-det enters the row's sum with weight 1: it receives grad_log_det[n].
            grad_rows, grads = rows_pullback(
                grad_out.transpose(0, 2, 3, 1).reshape(-1, c),
                np.repeat(grad_log_det, height * width),
            )
            return grad_rows.reshape(n, height, width, c).transpose(0, 3, 1, 2), grads

        return out, log_det, pullback

    def _forward_vjp(self, z, context):
        return self._per_pixel(z, lambda rows: self.linear._forward_vjp(rows, None))

    def _inverse_vjp(self, x, context):
        return self._per_pixel(x, lambda rows: self.linear._inverse_vjp(rows, None))
