"""npflows: normalizing flows in pure NumPy with hand-derived gradients.

Directions follow Prince, *Understanding Deep Learning*, ch. 16: ``forward`` is the generative map
x = f[z], ``inverse`` the normalizing map z = f⁻¹[x]. (nflows and zuko call the normalizing map
"forward".)
"""

from . import datasets
from .distributions import StandardNormal
from .flow import Flow
from .io import ModelFileError, load, save
from .layer import Layer
from .layers import (
    IAF,
    MAF,
    Coupling,
    Diagonal,
    Elementwise,
    Invert,
    LeakyReLU,
    Linear,
    Logit,
    LULinear,
    Orthogonal,
    Permutation,
    PiecewiseLinear,
    RQSpline,
    Sigmoid,
    Triangular,
)
from .train import History, TrainingDiverged, fit, fit_lbfgs

__version__ = "0.1.0"

__all__ = [
    "IAF",
    "MAF",
    "Coupling",
    "Diagonal",
    "Elementwise",
    "Flow",
    "History",
    "Invert",
    "LULinear",
    "Layer",
    "LeakyReLU",
    "Linear",
    "Logit",
    "ModelFileError",
    "Orthogonal",
    "Permutation",
    "PiecewiseLinear",
    "RQSpline",
    "Sigmoid",
    "StandardNormal",
    "TrainingDiverged",
    "Triangular",
    "datasets",
    "fit",
    "fit_lbfgs",
    "load",
    "save",
]
