"""The prebuilt flows by name: the one list that the command line and ``FlowDensity`` read.

Each name maps to a builder called as ``builder(dim, hidden=(H, H), rng=rng, **options)``, where
``options`` may hold ``n_layers`` (only when the user gave it) and, from ``FlowDensity``'s
``flow_kwargs``, any other keyword of the builder. It returns a :class:`~npflows.Flow` from the
base up, without a data-side standardization (the callers add :class:`~npflows.Standardize`).
Flows whose layers lack ``inverse_vjp`` (IAF) cannot be fitted to data; the callers say so.

To offer a new prebuilt flow everywhere, add one line to ``BUILDERS``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial

from . import flows
from .flow import Flow
from .layer import RNGLike
from .layers.diagonal import Diagonal
from .layers.elementwise import RQSpline

__all__ = ["BUILDERS", "build"]


def gaussian(
    dim: int, *, hidden: Sequence[int] = (), rng: RNGLike = None, n_layers: None = None
) -> Flow:
    """A diagonal Gaussian: one trainable :class:`Diagonal` (``hidden`` and ``rng`` are unused)."""
    _no_layers_option("gaussian", n_layers)
    return Flow([Diagonal(dim)])


def spline(
    dim: int,
    *,
    bins: int = 16,
    bound: float = 4.0,
    hidden: Sequence[int] = (),
    rng: RNGLike = None,
    n_layers: None = None,
) -> Flow:
    """A :class:`Diagonal`, then a rational-quadratic spline of ``bins`` bins on [−bound, bound]
    per coordinate (no conditioner: ``hidden`` and ``rng`` are unused); for 1-D data."""
    _no_layers_option("spline", n_layers)
    return Flow([Diagonal(dim), RQSpline(dim, bins=bins, bound=bound)])


BUILDERS: dict[str, Callable[..., Flow]] = {
    "gaussian": gaussian,
    "spline": spline,
    "nsf": flows.NSF,
    "nsf-large": partial(flows.NSF, n_layers=8, bins=32, bound=3.0),  # see flows.NSF
    "realnvp": flows.RealNVP,
    "nice": flows.NICE,
    "piecewise-linear": flows.PiecewiseLinearFlow,
    "maf": flows.MAF,
    "maf-spline": partial(flows.MAF, transformer="spline"),
    "iaf": flows.IAF,
    "iaf-spline": partial(flows.IAF, transformer="spline"),
    "planar": lambda dim, hidden=None, **kw: flows.PlanarFlow(dim, **kw),
    "radial": lambda dim, hidden=None, **kw: flows.RadialFlow(dim, **kw),
    "resflow": flows.ResidualFlow,
}
"""name -> builder of :mod:`npflows.flows` (or of this module); add a new flow with one line."""


def build(name: str, dim: int, **options) -> Flow:
    """``BUILDERS[name](dim, **options)``, or ValueError listing the names for an unknown one."""
    if not isinstance(name, str) or name not in BUILDERS:
        raise ValueError(f"flow must be one of {sorted(BUILDERS)}, got {name!r}")
    return BUILDERS[name](dim, **options)


def _no_layers_option(name: str, n_layers) -> None:
    if n_layers is not None:
        raise ValueError(f"the {name} flow has a fixed set of layers; n_layers does not apply")
