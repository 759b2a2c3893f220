"""Elementwise monotone maps y = h(u; θ), shared by elementwise, coupling and autoregressive layers."""

from .affine import AdditiveTransformer, AffineTransformer
from .base import Transformer
from .leaky_relu import LeakyReLUTransformer
from .piecewise_linear import PiecewiseLinearTransformer
from .rq_spline import RQSplineTransformer
from .sigmoid import SigmoidTransformer

__all__ = [
    "AdditiveTransformer",
    "AffineTransformer",
    "LeakyReLUTransformer",
    "PiecewiseLinearTransformer",
    "RQSplineTransformer",
    "SigmoidTransformer",
    "Transformer",
]
