"""Flow layers: linear, elementwise, coupling, autoregressive, residual, image (multi-scale), and
wrappers."""

from .actnorm import ActNorm
from .autoregressive import IAF, MAF
from .coupling import Coupling
from .dense import Linear
from .diagonal import Diagonal
from .elementwise import Elementwise, LeakyReLU, PiecewiseLinear, RQSpline, Sigmoid
from .factor_out import FactorOut
from .image_coupling import ImageCoupling
from .invconv import InvConv1x1
from .invert import Invert, Logit
from .lu import LULinear
from .orthogonal import Orthogonal
from .permutation import Permutation
from .pixel_logit import PixelLogit
from .planar import Planar
from .radial import Radial
from .residual import ResidualBlock, lipschitz_bound
from .squeeze import Squeeze
from .standardize import Standardize, standardized
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
    "ActNorm",
    "FactorOut",
    "ImageCoupling",
    "InvConv1x1",
    "PixelLogit",
    "Squeeze",
]
