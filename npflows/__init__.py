"""npflows: normalizing flows in pure NumPy with hand-derived gradients.

Directions follow Prince, *Understanding Deep Learning*, ch. 16: ``forward`` is the generative map
x = f[z], ``inverse`` the normalizing map z = f⁻¹[x]. (nflows and zuko call the normalizing map
"forward".)
"""

from .distributions import StandardNormal
from .flow import Flow
from .layer import Layer
from .layers import Elementwise, Invert, LeakyReLU, Logit, Sigmoid

__version__ = "0.1.0"

__all__ = [
    "Elementwise",
    "Flow",
    "Invert",
    "Layer",
    "LeakyReLU",
    "Logit",
    "Sigmoid",
    "StandardNormal",
]
