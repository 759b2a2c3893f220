"""Squeeze: trade space for channels, (C, H, W) ↔ (4C, H/2, W/2) (RealNVP, arXiv:1605.08803, §3.6)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .image import ImageLayer


class Squeeze(ImageLayer):
    """z[n, 4c + 2i + j, h, w] = x[n, c, 2h + i, 2w + j]: each 2×2 block of pixels becomes 4 channels.

    Book: ch. 16, "Multi-scale flows". The normalizing direction (``inverse``, x → z) squeezes
    x of shape (N, C, H, W) into z of shape (N, 4C, H/2, W/2); ``forward`` (z → x) undoes it. The
    channel order is fixed: output channel 4c + 2i + j holds input channel c at the pixel offset
    (i, j) ∈ {0, 1}² of each block (row offset i, column offset j), so channels 4c … 4c + 3 are the
    top-left, top-right, bottom-left and bottom-right pixels of channel c. (Other libraries differ:
    check the order before moving weights across.) A permutation of the coordinates: log-det 0 in
    both directions; no parameters.

    Args:
        shape: (C, H, W) of x, with H and W even.

    ``event_shape`` = (C, H, W) (x), ``latent_shape`` = (4C, H/2, W/2) (z).
    """

    def __init__(self, shape: Sequence[int]):
        self._set_shape(shape)
        c, h, w = self.shape
        if h % 2 or w % 2:
            raise ValueError(f"Squeeze needs an even height and width, got shape {self.shape}")
        self.params: dict = {}

    @property
    def latent_shape(self) -> tuple[int, ...]:
        c, h, w = self.shape
        return (4 * c, h // 2, w // 2)

    def get_config(self) -> dict:
        return {"shape": list(self.shape)}

    def _squeeze(self, x):
        """(N, C, H, W) → (N, 4C, H/2, W/2): axes (n, c, h, i, w, j) → (n, c, i, j, h, w)."""
        n = len(x)
        c, h, w = self.shape
        blocks = x.reshape(n, c, h // 2, 2, w // 2, 2)
        return blocks.transpose(0, 1, 3, 5, 2, 4).reshape(n, 4 * c, h // 2, w // 2)

    def _unsqueeze(self, z):
        """The inverse of :meth:`_squeeze`: (N, 4C, H/2, W/2) → (N, C, H, W)."""
        n = len(z)
        c, h, w = self.shape
        blocks = z.reshape(n, c, 2, 2, h // 2, w // 2)
        return blocks.transpose(0, 1, 4, 2, 5, 3).reshape(n, c, h, w)

    def _forward_vjp(self, z, context):
        # A permutation: its pullback is the inverse permutation, and the log-det (0) has none.
        def pullback(grad_x, grad_log_det):
            return self._squeeze(grad_x), {}

        return self._unsqueeze(z), np.zeros(len(z), dtype=z.dtype), pullback

    def _inverse_vjp(self, x, context):
        def pullback(grad_z, grad_log_det):
            return self._unsqueeze(grad_z), {}

        return self._squeeze(x), np.zeros(len(x), dtype=x.dtype), pullback
