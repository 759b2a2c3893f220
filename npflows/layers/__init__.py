"""Flow layers: linear, elementwise, coupling, autoregressive, residual, and wrappers."""

from .autoregressive import IAF, MAF
from .coupling import Coupling
from .dense import Linear
from .diagonal import Diagonal
from .elementwise import Elementwise, LeakyReLU, PiecewiseLinear, RQSpline, Sigmoid
from .invert import Invert, Logit
from .lu import LULinear
from .orthogonal import Orthogonal
from .permutation import Permutation
from .standardize import Standardize, standardized
from .planar import Planar
from .radial import Radial
from .residual import ResidualBlock, lipschitz_bound
from .triangular import Triangular

__all__ = [
    "IAF",
    "MAF",
    "Coupling",
    "Diagonal",
    "Elementwise",
    "Invert",
    "LULinear",
    "LeakyReLU",
    "Linear",
    "Logit",
    "Orthogonal",
    "Permutation",
    "PiecewiseLinear",
    "RQSpline",
    "Sigmoid",
    "Triangular",
    "Standardize",
    "standardized",
    "Planar",
    "Radial",
    "ResidualBlock",
    "lipschitz_bound",
]
