"""What building a model from its description will allocate, checked before anything is built.

Constructing a layer allocates its parameters, so a description that declares ``Linear(dim=40000)``
beside tiny arrays would allocate 12.8 GB before the shapes could be compared. Two rules, applied
to the description alone, prevent that (docs/files.md, "What load refuses"):

1. Every size argument (every integer argument of a class without a formula below) is at most
   ``limit = max(the number of scalars the file's arrays hold, the length of its JSON)``. A
   parameter-free layer's dimension or a permutation's length is then bounded by the file.
2. The number of parameters the description implies (by the formulas below, from the library
   constructors' documented parameter shapes) is at most the number the file holds. Fewer is
   refused later, with the name of the missing array, when the built model's shapes are compared.

A registered class is bounded by rule 1 only, so its constructor should allocate no more than a
few times its integer arguments' product over its parameters' shapes; the shapes of what it built
are compared with the file's before any value is copied.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

from ..transformers.base import Transformer
from .classes import build, resolve
from .format import ModelFileError


class _Counter:
    """Counts the parameters a description implies (rules 1 and 2 of the module docstring)."""

    def __init__(self, where: str, allowed: dict[str, type], limit: int):
        self.where, self.allowed, self.limit = where, allowed, limit
        self.formulas = _formulas()

    def count(self, value: Any) -> int:
        """Parameters implied by ``value`` (a description, a list of them, or a plain value)."""
        if isinstance(value, list):
            return sum(self.count(item) for item in value)
        if not (isinstance(value, dict) and "class" in value):
            return 0
        cls, args = resolve(self.where, value, self.allowed)
        try:
            bound = _signature(cls).bind(**args)
        except TypeError as error:
            raise ModelFileError(f"{self.where}: cannot build {cls.__name__}: {error}") from error
        bound.apply_defaults()
        args = bound.arguments
        formula = self.formulas.get(cls)
        if formula is not None:
            try:
                return formula(_Args(self, cls.__name__, args))
            except ModelFileError:
                raise
            except Exception as error:  # crafted args of the wrong type
                raise ModelFileError(
                    f"{self.where}: cannot build {cls.__name__}: {type(error).__name__}: {error}"
                ) from error
        # A transformer holds no parameters (its host does); a registered class's own are
        # unknown here and bounded by rule 1.
        self._check_integers(cls.__name__, args)
        return sum(self.count(arg) for arg in args.values())

    def size(self, owner: str, name: str, value: Any) -> int:
        """A size argument as an int within the limit, or ModelFileError."""
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
            raise ModelFileError(f"{self.where}: {owner}: {name} must be an integer, got {value!r}")
        if not 0 <= value <= self.limit:
            raise ModelFileError(
                f"{self.where}: {owner}: {name}={value!r} is outside [0, {self.limit}]; a size may "
                f"not exceed the larger of the file's number of parameters and its JSON length"
            )
        return int(value)

    def _check_integers(self, owner: str, value: Any, name: str = "args") -> None:
        if isinstance(value, dict) and "class" not in value:
            for key, item in value.items():
                self._check_integers(owner, item, key)
        elif isinstance(value, list):
            for item in value:
                self._check_integers(owner, item, name)
        elif isinstance(value, int) and not isinstance(value, bool):
            self.size(owner, name, value)

    def n_params(self, description: Any) -> int:
        """P, the raw parameters per coordinate of the transformer ``description`` builds."""
        self.count(description)  # its size arguments first: a transformer is built to ask it
        transformer = build(self.where, description, self.allowed)
        if not isinstance(transformer, Transformer):
            raise ModelFileError(f"{self.where}: expected a transformer, got {transformer!r}")
        return self.size(type(transformer).__name__, "n_params", transformer.n_params)


class _Args:
    """One description's arguments (constructor defaults applied), read as sizes."""

    def __init__(self, counter: _Counter, owner: str, args: dict):
        self.counter, self.owner, self.args = counter, owner, args

    def size(self, name: str) -> int:
        return self.counter.size(self.owner, name, self.args[name])

    def sizes(self, name: str) -> list[int]:
        value = self.args[name]
        if not isinstance(value, (list, tuple)):
            raise ModelFileError(f"{self.counter.where}: {self.owner}: {name} must be a list")
        return [self.counter.size(self.owner, name, item) for item in value]

    def count(self, name: str) -> int:
        return self.counter.count(self.args[name])

    def n_params(self, name: str = "transformer") -> int:
        return self.counter.n_params(self.args[name])


@functools.lru_cache(maxsize=256)
def _signature(cls: type) -> inspect.Signature:
    return inspect.signature(cls)


def _mlp(widths: list[int]) -> int:
    """Weights (fan_in, fan_out) and biases (fan_out) of a fully connected net (npflows.nn.MLP)."""
    return sum(
        (fan_in + 1) * fan_out for fan_in, fan_out in zip(widths[:-1], widths[1:], strict=False)
    )


def _coupling(a: _Args) -> int:
    dim, context = a.size("dim"), a.size("context_dim")
    mask = a.args["mask"]
    if mask is None:
        n_b = dim - dim // 2
    elif isinstance(mask, list) and len(mask) == dim:
        n_b = sum(1 for m in mask if m is True)
    else:
        raise ModelFileError(f"{a.counter.where}: Coupling: mask must be a list of {dim} booleans")
    return _mlp([dim - n_b + context, *a.sizes("hidden"), n_b * a.n_params()])


def _autoregressive(a: _Args) -> int:
    dim = a.size("dim")
    return _mlp([dim + a.size("context_dim"), *a.sizes("hidden"), dim * a.n_params()])


def _orthogonal(a: _Args) -> int:
    dim = a.size("dim")
    reflections = dim if a.args["n_reflections"] is None else a.size("n_reflections")
    return (reflections + 1) * dim


def _spline_layer(transformer: type) -> Callable[[_Args], int]:
    def count(a: _Args) -> int:
        a.size("bins")
        return a.size("dim") * transformer(a.args["bins"], a.args["bound"]).n_params

    return count


def _parameter_free(a: _Args) -> int:
    a.size("dim")
    return 0


def _residual_block(a: _Args) -> int:
    """Weights and biases of g's net [D, *hidden, D], and LipSwish's β_raw per hidden unit. Its
    other integers (n_terms, n_exact_terms, n_probes, n_power_iterations, max_iter) count work
    per call, not anything built, so they are not sizes."""
    hidden = a.sizes("hidden")
    lipswish = sum(hidden) if a.args["activation"] == "lipswish" else 0
    return _mlp([a.size("dim"), *hidden, a.size("dim")]) + lipswish


def _image_shape(a: _Args) -> tuple[int, int, int]:
    """(C, H, W) of an image layer, each a size, and C·H·W (its dim) a size too."""
    shape = a.sizes("shape")
    if len(shape) != 3:
        raise ModelFileError(f"{a.counter.where}: {a.owner}: shape must be (C, H, W)")
    a.counter.size(a.owner, "C·H·W (the shape's number of entries)", shape[0] * shape[1] * shape[2])
    return shape[0], shape[1], shape[2]


def _image_parameter_free(a: _Args) -> int:
    _image_shape(a)
    return 0


def _invconv(a: _Args) -> int:
    c = _image_shape(a)[0]
    return 2 * c * (c + 1)  # the LULinear(C) of every pixel: lower, upper, log_scale, beta


def _image_coupling(a: _Args) -> int:
    """ConvNet(C_in → C_out·P): kernels 3·3·C_in·h, 1·1·h·h, 3·3·h·C_out·P and their biases, with
    (C_in, C_out) = (C, C) for a checkerboard and the two channel halves for a channel mask."""
    from ..transformers import AffineTransformer  # ImageCoupling's default (transformer=None)

    c, _, _ = _image_shape(a)
    hidden = a.size("hidden")
    n_params = AffineTransformer().n_params if a.args["transformer"] is None else a.n_params()
    if a.args["mask"] == "channel":
        c_b = c - c // 2 if a.args["parity"] == 0 else c // 2  # parity 0 transforms c ≥ ⌊C/2⌋
        c_in, c_out = c - c_b, c_b
    else:
        c_in = c_out = c
    out = c_out * n_params
    return 9 * c_in * hidden + hidden * hidden + 9 * hidden * out + 2 * hidden + out


def _formulas() -> dict[type, Callable[[_Args], int]]:
    """Parameter counts of the library's layers, from the shapes their docstrings give."""
    from .. import layers
    from ..distributions import StandardNormal
    from ..flow import Flow
    from ..transformers import PiecewiseLinearTransformer, RQSplineTransformer

    return {
        Flow: lambda a: a.count("layers") + a.count("base"),
        StandardNormal: _parameter_free,
        layers.Linear: lambda a: a.size("dim") * (a.size("dim") + 1),  # Omega (D, D), beta (D,)
        layers.Diagonal: lambda a: 2 * a.size("dim"),  # log_scale, beta
        layers.Triangular: lambda a: a.size("dim") * (a.size("dim") + 2),  # lower, log_diag, beta
        layers.LULinear: lambda a: 2 * a.size("dim") * (a.size("dim") + 1),  # lower, upper, s, beta
        layers.Orthogonal: _orthogonal,  # v (K, D), beta (D,)
        layers.Permutation: _parameter_free,
        layers.Elementwise: lambda a: a.size("dim") * a.n_params(),  # theta (D, P)
        layers.LeakyReLU: _parameter_free,
        layers.Sigmoid: _parameter_free,
        layers.Logit: _parameter_free,
        layers.PiecewiseLinear: _spline_layer(PiecewiseLinearTransformer),
        layers.RQSpline: _spline_layer(RQSplineTransformer),
        layers.Invert: lambda a: a.count("layer"),
        layers.Coupling: _coupling,
        layers.MAF: _autoregressive,
        layers.IAF: _autoregressive,
        layers.Planar: lambda a: 2 * a.size("dim") + 1,  # u (D,), w (D,), b (1,)
        layers.Radial: lambda a: a.size("dim") + 2,  # z0 (D,), alpha_raw (1,), beta_raw (1,)
        layers.ResidualBlock: _residual_block,
        layers.ActNorm: lambda a: 2 * _image_shape(a)[0],  # log_scale (C,), bias (C,)
        layers.InvConv1x1: _invconv,
        layers.ImageCoupling: _image_coupling,
        layers.Squeeze: _image_parameter_free,
        layers.PixelLogit: _image_parameter_free,
        layers.FactorOut: lambda a: _image_parameter_free(a) + a.count("inner"),
    }


def counted_classes() -> set[type]:
    """The classes whose parameter count the formulas give exactly (transformers hold none)."""
    return set(_formulas())


def check_buildable_size(
    where: str, description: Any, allowed: dict[str, type], n_scalars: int, json_bytes: int
) -> None:
    """Raise ModelFileError unless ``description`` implies at most the ``n_scalars`` parameters
    the file holds, all its sizes within bounds (rules 1 and 2 of the module docstring)."""
    counter = _Counter(where, allowed, max(n_scalars, json_bytes))
    implied = counter.count(description)
    if implied > n_scalars:
        raise ModelFileError(
            f"{where}: the description implies {implied} parameters, but the file's arrays hold "
            f"only {n_scalars} (an array is missing or the description was edited); refusing "
            f"before building it"
        )
