"""The layer contract shared by every flow, and the input checks all layers use.

A layer maps in two directions (docs/conventions.md, which follows the book):

- ``forward(z) -> (x, log_det)``: the generative direction x = f[z];
  ``log_det[n] = log|det ∂f/∂z|`` at ``z[n]``.
- ``inverse(x) -> (z, log_det)``: the normalizing direction z = f⁻¹[x];
  ``log_det[n] = log|det ∂f⁻¹/∂x|`` at ``x[n]``, minus the forward log-det at ``z[n]``.

nflows and zuko call the normalizing direction "forward"; npflows follows the book.

``forward_vjp`` and ``inverse_vjp`` return a third value, ``pullback(grad_out, grad_log_det) ->
(grad_in, grads)``: given ∂L/∂(output) of shape (N, D) and ∂L/∂(log_det) of shape (N,) for any scalar
loss L, it returns ∂L/∂(input) and ∂L/∂(each parameter), ``grads`` mirroring ``params``. Either
gradient may be ``None``, meaning zero. Cotangents are checked like inputs (:func:`check_grad`:
finite, real, the right shape). dtypes: ∂L/∂(input) has the input's dtype and every gradient its
parameter's dtype, so a float32 layer fed float32 returns float32 gradients throughout.

Subclasses implement the private methods ``_forward_vjp(z, context)`` and ``_inverse_vjp(x,
context)`` (and, where it is cheaper, ``_forward`` and ``_inverse``) on arrays that are already
checked; the public methods check their input once, call them, and keep the input's dtype.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable
from typing import Any

import numpy as np

from .tree import Tree, cast, leaves, leaves_with_paths, tree_map

Pullback = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, Tree]]
RNGLike = None | int | np.random.Generator


def as_rng(rng: RNGLike) -> np.random.Generator:
    """A ``numpy.random.Generator`` from ``None`` (fresh entropy), an int seed or a Generator."""
    if rng is None or isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        return np.random.default_rng(rng)
    if isinstance(rng, np.random.Generator):
        return rng
    raise ValueError(
        f"rng must be None, an int or a numpy.random.Generator, got {type(rng).__name__}"
    )


def check_int(value: Any, name: str, minimum: int = 1) -> int:
    """``value`` as an int if it is an integer ≥ ``minimum``; else an error naming ``name``.

    Python and numpy integers are accepted. A bool (an int subclass, but never meant as a count)
    and anything that is not a number raise TypeError; other numbers (floats, even 3.0, inf and
    NaN, or integers below ``minimum``) raise ValueError. This one check serves every size and
    count in the package: dims, widths, bins, layers, epochs, steps, sample counts.
    """
    what = {0: "a non-negative integer", 1: "a positive integer"}.get(
        minimum, f"an integer ≥ {minimum}"
    )
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (numbers.Number, np.number)):
        raise TypeError(f"{name} must be {what}, got {type(value).__name__} {value!r}")
    if isinstance(value, (int, np.integer)) and value >= minimum:
        return int(value)
    raise ValueError(f"{name} must be {what}, got {value!r}")


def check_array(
    x: Any, dim: int | tuple[int, ...], name: str = "x", n: int | None = None
) -> np.ndarray:
    """Return ``x`` as a float array of shape (N, dim) with finite values, or raise ValueError.

    ``dim`` is an int D (rows of width D) or an event shape such as (C, H, W) (images: x of shape
    (N, C, H, W)). float32 and float64 are accepted and kept; other dtypes are refused rather than
    converted, so that an integer array of pixel values is never silently treated as data in [0, 1].
    """
    event_shape = (dim,) if isinstance(dim, (int, np.integer)) else tuple(dim)
    x = np.asarray(x)
    if x.dtype not in (np.float32, np.float64):
        raise ValueError(
            f"{name} must be a float32 or float64 array, got dtype {x.dtype}"
            + ("; convert it with .astype(float)" if x.dtype.kind in "iub" else "")
        )
    if x.shape[1:] != event_shape:
        shape = ", ".join(map(str, event_shape))
        raise ValueError(f"{name} must have shape (N, {shape}), got shape {x.shape}")
    if n is not None and x.shape[0] != n:
        raise ValueError(f"{name} must have {n} rows to match the data, got {x.shape[0]}")
    if not np.isfinite(x).all():
        bad = ~np.isfinite(x)
        row = int(np.argwhere(bad)[0, 0])
        raise ValueError(
            f"{name} must be finite, but has {int(bad.sum())} NaN or inf value(s), the first in row {row}"
        )
    return x


def check_result(results, source: np.ndarray, what: str) -> None:
    """Raise ValueError when a finite ``source`` gave a NaN or inf among ``results`` (arrays or
    trees, ``None`` skipped): an overflow, refused instead of returned (see docs/ranges.md)."""
    for result in results:
        for leaf in [] if result is None else leaves(result):
            if not np.isfinite(leaf).all():
                raise ValueError(
                    f"{what} overflows the {leaf.dtype} range (NaN or inf) for an input whose "
                    f"largest |value| is {np.abs(source).max():.3g}; see docs/ranges.md for the "
                    "inputs and parameters with finite results"
                )


def check_grad(g: Any, shape: tuple[int, ...], name: str, dtype=np.float64) -> np.ndarray:
    """Return a cotangent as a finite array of ``shape`` and ``dtype``; ``None`` means zero.

    Real floats and integers are converted to ``dtype`` (a cotangent is a number per entry, and an
    integer one is exact in float). Everything else is refused with a ValueError naming it: bool
    (a mask, not a gradient), complex (casting would drop the imaginary part), object and strings,
    and NaN or inf (they would only turn every gradient into NaN).
    """
    if g is None:
        return np.zeros(shape, dtype=dtype)
    g = np.asarray(g)
    if g.dtype.kind not in "iuf":
        raise ValueError(f"{name} must be a real float or integer array, got dtype {g.dtype}")
    if g.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {g.shape}")
    g = g.astype(dtype, copy=False)
    bad = ~np.isfinite(g)
    if bad.any():
        raise ValueError(
            f"{name} must be finite, but has {int(bad.sum())} NaN or inf value(s), "
            f"the first at index {tuple(int(i) for i in np.argwhere(bad)[0])}"
        )
    return g


class Layer:
    """Base class of every flow layer: input checks, dtype handling and the public methods.

    Attributes:
        dim: the number D of coordinates of x and z.
        event_shape, latent_shape: the shape of one x and of one z, ``(dim,)`` unless the layer
            acts on images ((C, H, W), with D = C·H·W) or reshapes (:class:`~npflows.Squeeze`).
        context_dim: the width of the context vector a conditional layer takes (0: none).
        params: nested dict of the raw float64 arrays the optimizer changes. They are live: changing
            an array in place changes the layer.
        has_forward_vjp, has_inverse_vjp: whether each direction offers its pullback.
    """

    dim: int
    context_dim: int = 0
    params: dict
    has_forward_vjp: bool = True
    has_inverse_vjp: bool = True
    max_abs_input: float | None = None
    """The largest |entry| the layer accepts (None: any finite value); larger ones are refused
    with a ValueError naming the first, for layers whose results would otherwise overflow."""

    @property
    def event_shape(self) -> tuple[int, ...]:
        """The shape of one x (the data side): ``(dim,)`` for layers on vectors."""
        return (self.dim,)

    @property
    def latent_shape(self) -> tuple[int, ...]:
        """The shape of one z (the base side): ``event_shape`` unless the layer reshapes."""
        return self.event_shape

    # -- to implement -------------------------------------------------------------------------
    def _forward_vjp(self, z: np.ndarray, context: np.ndarray | None):
        raise NotImplementedError(f"{type(self).__name__} does not offer forward_vjp")

    def _inverse_vjp(self, x: np.ndarray, context: np.ndarray | None):
        raise NotImplementedError(f"{type(self).__name__} does not offer inverse_vjp")

    def _forward(self, z: np.ndarray, context: np.ndarray | None):
        return self._forward_vjp(z, context)[:2]

    def _inverse(self, x: np.ndarray, context: np.ndarray | None):
        return self._inverse_vjp(x, context)[:2]

    def get_config(self) -> dict:
        """Constructor arguments (JSON types) that rebuild this layer with the same shapes."""
        raise NotImplementedError

    # -- public ---------------------------------------------------------------------------------
    def forward(self, z, context=None) -> tuple[np.ndarray, np.ndarray]:
        """Generative direction x = f[z]. Returns ``x`` (N, D) and ``log|det ∂f/∂z|`` (N,)."""
        z, context = self._check(z, context, "z", self.latent_shape)
        x, log_det = self._forward(z, context)
        check_result((x, log_det), z, f"{type(self).__name__}.forward")
        return x.astype(z.dtype, copy=False), log_det.astype(z.dtype, copy=False)

    def inverse(self, x, context=None) -> tuple[np.ndarray, np.ndarray]:
        """Normalizing direction z = f⁻¹[x]. Returns ``z`` (N, D) and ``log|det ∂f⁻¹/∂x|`` (N,)."""
        x, context = self._check(x, context, "x", self.event_shape)
        z, log_det = self._inverse(x, context)
        check_result((z, log_det), x, f"{type(self).__name__}.inverse")
        return z.astype(x.dtype, copy=False), log_det.astype(x.dtype, copy=False)

    def forward_vjp(self, z, context=None) -> tuple[np.ndarray, np.ndarray, Pullback]:
        """``forward`` and its pullback ``(grad_x, grad_log_det) -> (grad_z, grads)``."""
        z, context = self._check(z, context, "z", self.latent_shape)
        if not self.has_forward_vjp:
            raise NotImplementedError(f"{type(self).__name__} does not offer forward_vjp")
        x, log_det, pullback = self._forward_vjp(z, context)
        check_result((x, log_det), z, f"{type(self).__name__}.forward_vjp")
        return self._public(z, x, log_det, pullback, "grad_x")

    def inverse_vjp(self, x, context=None) -> tuple[np.ndarray, np.ndarray, Pullback]:
        """``inverse`` and its pullback ``(grad_z, grad_log_det) -> (grad_x, grads)``."""
        x, context = self._check(x, context, "x", self.event_shape)
        if not self.has_inverse_vjp:
            raise NotImplementedError(f"{type(self).__name__} does not offer inverse_vjp")
        z, log_det, pullback = self._inverse_vjp(x, context)
        check_result((z, log_det), x, f"{type(self).__name__}.inverse_vjp")
        return self._public(x, z, log_det, pullback, "grad_z")

    # -- helpers ------------------------------------------------------------------------------------
    def _check(self, h, context, name, shape=None):
        h = check_array(h, self.dim if shape is None else shape, name)
        if self.max_abs_input is not None and h.dtype == np.float64:  # float32 cannot exceed it
            big = np.abs(h) > self.max_abs_input
            if big.any():
                index = tuple(int(i) for i in np.argwhere(big)[0])
                raise ValueError(
                    f"{type(self).__name__} accepts inputs with |entries| ≤ "
                    f"{self.max_abs_input:g}, but {name}[{', '.join(map(str, index))}] = {h[index]:g}"
                )
        return h, self._check_context(context, len(h))

    def _check_context(self, context, n):
        if self.context_dim:
            if context is None:
                raise ValueError(
                    f"{type(self).__name__} is conditional: pass context of shape (N, {self.context_dim})"
                )
            return check_array(context, self.context_dim, "context", n=n)
        if context is not None:
            raise ValueError(f"{type(self).__name__} is not conditional, but a context was given")
        return None

    def _public(self, h_in, h_out, log_det, pullback, grad_name):
        """The outputs in the input's dtype, and the pullback with checked cotangents.

        The cotangents are cast to the dtype the pass computed in (that of its output); ∂L/∂input
        is returned in the input's dtype and every parameter gradient in its parameter's dtype.
        """
        dtype, shape = h_in.dtype, h_out.shape
        params = self.params

        def checked_pullback(grad_out=None, grad_log_det=None):
            grad_in, grads = pullback(
                check_grad(grad_out, shape, grad_name, h_out.dtype),
                check_grad(grad_log_det, shape[:1], "grad_log_det", h_out.dtype),
            )
            grads = tree_map(lambda g, p: g.astype(p.dtype, copy=False), grads, params)
            check_result((grad_in, grads), h_in, "the pullback's gradient")
            return grad_in.astype(dtype, copy=False), grads

        return h_out.astype(dtype, copy=False), log_det.astype(dtype, copy=False), checked_pullback

    @property
    def dtype(self) -> np.dtype:
        """The dtype of the parameters (float64 unless :meth:`astype` changed it)."""
        first = next(leaves_with_paths(self.params), None)  # lazily: only the first leaf
        return np.dtype(np.float64) if first is None else first[1].dtype

    def astype(self, dtype) -> Layer:
        """Cast every parameter to ``dtype`` (float32 or float64) in place; returns self.

        Computations follow the dtype of their inputs and parameters, so a float32 flow fed float32
        data computes in float32: about twice the speed of BLAS-bound steps, at ~1e-7 relative
        precision instead of ~1e-16. Optimizers built before the cast must be rebuilt.
        """
        if np.dtype(dtype) not in (np.float32, np.float64):
            raise ValueError(f"dtype must be float32 or float64, got {dtype!r}")
        cast(self.params, dtype)
        return self

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


def describe(obj) -> dict:
    """``{"class": name, "args": config}``: the JSON description that ``npflows.io`` rebuilds."""
    return {"class": type(obj).__name__, "args": obj.get_config()}
