"""npflows: normalizing flows in pure NumPy with hand-derived gradients.

Directions follow Prince, *Understanding Deep Learning*, ch. 16: ``forward`` is the generative map
x = f[z], ``inverse`` the normalizing map z = f⁻¹[x]. (nflows and zuko call the normalizing map
"forward".)
"""

from . import datasets, estimator, flows, nn, optim, schedules, targets, testing, transformers, tree
from .dequantization import Pixels, bits_per_dim
from .distributions import StandardNormal
from .flow import Flow
from .io import ModelFileError, load, save
from .layer import Layer
from .layers import (
    IAF,
    MAF,
    ActNorm,
    Coupling,
    Diagonal,
    Elementwise,
    FactorOut,
    ImageCoupling,
    InvConv1x1,
    Invert,
    LeakyReLU,
    Linear,
    Logit,
    LULinear,
    Orthogonal,
    Permutation,
    PiecewiseLinear,
    PixelLogit,
    Planar,
    Radial,
    ResidualBlock,
    RQSpline,
    Sigmoid,
    Squeeze,
    Triangular,
)
from .layers.residual import ConvergenceError
from .layers.standardize import Standardize, standardized
from .train import History, TrainingDiverged, fit, fit_lbfgs
from .variational import VIResult, fit_to_density

__version__ = "0.1.0"

__all__ = [
    "ActNorm",
    "FactorOut",
    "ImageCoupling",
    "InvConv1x1",
    "PixelLogit",
    "Pixels",
    "Squeeze",
    "bits_per_dim",
    "Coupling",
    "Diagonal",
    "Elementwise",
    "Flow",
    "History",
    "IAF",
    "Invert",
    "LULinear",
    "Layer",
    "LeakyReLU",
    "Linear",
    "Logit",
    "MAF",
    "ModelFileError",
    "Orthogonal",
    "Permutation",
    "PiecewiseLinear",
    "RQSpline",
    "Sigmoid",
    "StandardNormal",
    "TrainingDiverged",
    "Triangular",
    "VIResult",
    "datasets",
    "estimator",
    "fit",
    "fit_lbfgs",
    "fit_to_density",
    "flows",
    "load",
    "nn",
    "optim",
    "save",
    "schedules",
    "targets",
    "testing",
    "transformers",
    "tree",
    "Standardize",
    "standardized",
    "Planar",
    "Radial",
    "ResidualBlock",
    "ConvergenceError",
]
