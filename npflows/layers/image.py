"""What every layer on images shares: its event shape (C, H, W) and the check of that argument.

Book: ch. 16, "Multi-scale flows". An image layer is an ordinary :class:`~npflows.Layer` whose
x and z have shape (N, C, H, W) instead of (N, D); ``dim`` is the number of pixels times channels,
D = C·H·W, and ``log_det`` still has shape (N,). There is one contract: the vector layers are the
case ``event_shape == (dim,)``. Layers that reshape (:class:`Squeeze`, :class:`FactorOut`) give a
``latent_shape`` (their z) different from their ``event_shape`` (their x); a :class:`~npflows.Flow`
checks that each layer's x has the shape of the next one's z. See docs/multiscale.md.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..layer import Layer


def check_image_shape(shape: Sequence[int], name: str = "shape") -> tuple[int, int, int]:
    """``shape`` as a tuple (C, H, W) of positive ints, or a ValueError naming ``name``."""
    try:
        values = tuple(shape)
    except TypeError:
        values = None
    if (
        values is None
        or len(values) != 3
        or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in values)
        or min(values) < 1
    ):
        raise ValueError(f"{name} must be (C, H, W), three positive integers, got {shape!r}")
    return tuple(int(v) for v in values)


class ImageLayer(Layer):
    """A layer whose x has shape (N, C, H, W); ``shape`` is (C, H, W) and ``dim`` = C·H·W."""

    shape: tuple[int, int, int]

    def _set_shape(self, shape) -> None:
        self.shape = check_image_shape(shape)
        self.dim = int(np.prod(self.shape))

    @property
    def event_shape(self) -> tuple[int, ...]:
        return self.shape
