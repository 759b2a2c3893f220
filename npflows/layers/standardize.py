"""A fixed standardizing affine map on the data side of a flow, and how to estimate it from data.

Book: ch. 16, "Linear flows", with a fixed diagonal Ω = diag(scale): f[h] = mean + scale ⊙ h,
log|det Ω| = Σ_d log scale_d. Placed last in a :class:`~npflows.Flow` (next to the data), it lets
the layers below see roughly standardized data while the flow's density stays a density of the
data itself, in data units: log p(x) = log p_inner(u) − Σ_d log scale_d with u = (x − mean) / scale.
Nothing of it is trained, so fitting is scale-equivariant: for data a·x the map absorbs a exactly
and NLL(a·x) = NLL(x) + D log a.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..layer import Layer, check_array

MIN_ROWS = 3
"""Rows :meth:`Standardize.from_data` needs: with fewer, a mean and a spread mean nothing."""

RELATIVE_SPREAD_MIN = 1e-12
"""A column is (nearly) constant, and refused, when its standard deviation s_d (population, ddof 0)
is at most ``RELATIVE_SPREAD_MIN · max_n |x_nd|``: its spread is then a few thousand float64 ulps of
its values at most (eps = 2.2e-16), rounding noise rather than data. An all-zero column counts."""

_TINY = np.finfo(np.float64).tiny  # the smallest normal float64, ≈ 2.2e-308


class Standardize(Layer):
    """x = mean + scale ⊙ h: a fixed (non-trainable) affine map, scale > 0.

    Book: ch. 16, "Linear flows": f[h] = β + Ω h with Ω = diag(scale), β = mean, both constants.

    Args:
        mean: (D,) finite offsets.
        scale: (D,) finite scales, each at least the smallest normal float64 (≈ 2.2e-308), so that
            1 / scale is finite.

    No parameters (``params == {}``); ``mean`` and ``scale`` are stored in ``get_config`` as
    float lists (JSON keeps every float64 exactly), so save/load restores them bit for bit.
    Forward log-det: Σ_d log scale_d for every row, shape (N,); the inverse's is −Σ_d log scale_d.
    A finite input whose image overflows float64 (or the input's dtype) raises ValueError.
    Build one from data with :meth:`from_data`, or put one on a flow with :func:`standardized`.
    Cost: O(D) per row.
    """

    def __init__(self, mean: Sequence[float], scale: Sequence[float]):
        self.mean = _vector(mean, "mean")
        self.scale = _vector(scale, "scale")
        if self.mean.shape != self.scale.shape:
            raise ValueError(
                f"mean and scale must have the same length, got {self.mean.size} and "
                f"{self.scale.size}"
            )
        small = np.flatnonzero(~(self.scale >= _TINY))
        if small.size:
            raise ValueError(
                f"scale must be at least {_TINY:.3g} (the smallest normal float64), got "
                f"{self.scale[small[0]]!r} at index {small[0]}"
            )
        self.dim = self.mean.size
        self.log_det = float(np.log(self.scale).sum())
        self.params = {}

    @classmethod
    def from_data(cls, x) -> Standardize:
        """The map whose inverse standardizes ``x`` (N, D): mean = the column means, scale = the
        column standard deviations (population, ddof 0).

        Each column is first divided by 2^e, the power of two just above its largest magnitude
        (exact: only the exponent changes), so squaring cannot overflow or underflow: data at
        1e-200 and 1e200 get their true means and spreads. The deviations are taken from the
        mean (two passes, no cancellation).

        Raises:
            ValueError: for fewer than ``MIN_ROWS`` rows; for a (nearly) constant column (see
                ``RELATIVE_SPREAD_MIN``), naming it (from 1); for a spread below the smallest
                normal float64; and for data that is not a finite float array of shape (N, D).
        """
        x = np.asarray(x)
        if x.ndim != 2:
            raise ValueError(f"x must have shape (N, D), got shape {x.shape}")
        x = check_array(x, x.shape[1]).astype(np.float64, copy=False)
        if len(x) < MIN_ROWS:
            raise ValueError(
                f"standardizing needs at least {MIN_ROWS} rows to estimate each column's mean "
                f"and spread, got {len(x)}"
            )
        magnitude = np.abs(x).max(axis=0)  # (D,)
        _, exponent = np.frexp(magnitude)  # magnitude < 2^exponent (exponent 0 for a zero column)
        u = np.ldexp(x, -exponent)  # (N, D), every |u| < 1
        u_mean = u.mean(axis=0)
        u_std = np.sqrt(np.mean((u - u_mean) ** 2, axis=0))
        mean, std = np.ldexp(u_mean, exponent), np.ldexp(u_std, exponent)
        for d in range(x.shape[1]):
            if not u_std[d] > RELATIVE_SPREAD_MIN * np.ldexp(magnitude[d], -exponent[d]):
                raise ValueError(
                    f"column {d + 1} of the data is (nearly) constant: its standard deviation "
                    f"{std[d]:.3g} is at most {RELATIVE_SPREAD_MIN:g} times its largest "
                    f"magnitude {magnitude[d]:.3g}; a density needs spread in every column "
                    "(drop the column, or add noise on the scale of its precision)"
                )
            if std[d] < _TINY:
                raise ValueError(
                    f"column {d + 1} of the data has a standard deviation of {std[d]:.3g}, below "
                    f"the smallest normal float64 ({_TINY:.3g}); rescale the data first"
                )
        return cls(mean.tolist(), std.tolist())

    def get_config(self) -> dict:
        return {"mean": self.mean.tolist(), "scale": self.scale.tolist()}

    def _map(self, h, into_data: bool, name: str) -> np.ndarray:
        # Computed in float64, then checked in the input's dtype: a finite h can map past its range.
        with np.errstate(over="ignore", invalid="ignore"):
            out = self.mean + self.scale * h if into_data else (h - self.mean) / self.scale
            out = out.astype(h.dtype, copy=False)
        bad = ~np.isfinite(out)
        if bad.any():
            row, col = np.argwhere(bad)[0]
            raise ValueError(
                f"{name} row {row}, column {col + 1} is too far from the mean for this "
                f"Standardize (mean {self.mean[col]:.3g}, scale {self.scale[col]:.3g}): its image "
                f"overflows {h.dtype} (see docs/ranges.md)"
            )
        return out

    def _forward_vjp(self, z, context):
        x = self._map(z, True, "z")
        scale = self.scale

        def pullback(grad_x, grad_log_det):
            # x = mean + scale ⊙ z: dx/dz = diag(scale); the log-det is constant, no parameters.
            return grad_x * scale, {}

        return x, np.full(len(z), self.log_det), pullback

    def _inverse_vjp(self, x, context):
        z = self._map(x, False, "x")
        inv_scale = 1.0 / self.scale  # finite: scale ≥ the smallest normal float64

        def pullback(grad_z, grad_log_det):
            # z = (x − mean) / scale: dz/dx = diag(1 / scale); the log-det is constant.
            return grad_z * inv_scale, {}

        return z, np.full(len(x), -self.log_det), pullback


def standardized(flow: Layer, x) -> Layer:
    """``flow`` with a :class:`Standardize` estimated from ``x`` (N, D) on its data side.

    A :class:`~npflows.Flow` gets it appended to its layers (same base density, same layer
    objects); any other layer is wrapped in a new ``Flow([layer, Standardize])``. The result's
    ``log_prob`` is a density of the data itself, in data units; train it on the same ``x``
    (unstandardized): the fixed map hands the layers below standardized values. The estimate's
    refusals are those of :meth:`Standardize.from_data`.
    """
    from ..flow import Flow  # imported here so that the layers package never needs flow.py

    if not isinstance(flow, Layer):
        raise TypeError(f"flow must be a Flow or a Layer, got {type(flow).__name__}")
    data_side = Standardize.from_data(x)
    if data_side.dim != flow.dim:
        raise ValueError(f"x has {data_side.dim} columns; the flow has dim {flow.dim}")
    if isinstance(flow, Flow):
        return Flow([*flow.layers, data_side], base=flow.base)
    return Flow([flow, data_side])


def _vector(values, name: str) -> np.ndarray:
    """``values`` as a finite float64 vector (D,), D ≥ 1, or ValueError/TypeError naming it."""
    if isinstance(values, (str, bytes)) or values is None:
        raise TypeError(f"{name} must be a sequence of numbers, got {type(values).__name__}")
    array = np.asarray(values)
    if array.dtype.kind not in "iuf":
        raise TypeError(f"{name} must be a sequence of real numbers, got dtype {array.dtype}")
    array = array.astype(np.float64)
    if array.ndim != 1 or array.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D sequence, got shape {array.shape}")
    bad = np.flatnonzero(~np.isfinite(array))
    if bad.size:
        raise ValueError(f"{name} must be finite, got {array[bad[0]]!r} at index {bad[0]}")
    return array
