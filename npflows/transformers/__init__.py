"""Elementwise monotone maps y = h(u; θ), shared by elementwise, coupling and autoregressive layers."""

from .affine import AdditiveTransformer, AffineTransformer
from .base import Transformer
from .leaky_relu import LeakyReLUTransformer
from .sigmoid import SigmoidTransformer

__all__ = [
    "AdditiveTransformer",
    "AffineTransformer",
    "LeakyReLUTransformer",
    "SigmoidTransformer",
    "Transformer",
]
