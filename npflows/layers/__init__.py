"""Flow layers: linear, elementwise, and the wrappers that combine them."""

from .elementwise import Elementwise, LeakyReLU, Sigmoid
from .invert import Invert, Logit

__all__ = ["Elementwise", "Invert", "LeakyReLU", "Logit", "Sigmoid"]
